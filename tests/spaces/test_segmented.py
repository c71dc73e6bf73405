"""The segmented space: uniform recipes are points of it, a point's plan round-trips, deviations stay on the grid,
a mixed plan changes precision only at segment boundaries, and a per-layer recipe is projected to its nearest point."""

from __future__ import annotations

import optuna
import pytest
import torch

from spaces.analysis import analyse
from spaces.segmented import GLOBAL_PRUNE, SEGMENT_PREFIX, SegmentedSpace, represents
from spaces.space import SearchSpace


@pytest.fixture()
def space(tiny_hlcnn):
    analysis = analyse(tiny_hlcnn, torch.zeros(1, 3, 16, 16))
    quantizable = set(analysis.layers[1:])  # one layer without INT8, as NNCF leaves some
    flat = SearchSpace.build(analysis, ["fp32", "fp16", "int8"], quantizable)
    return SegmentedSpace.of(flat, segments=3)


@pytest.mark.parametrize(("ratio", "precision"), [(0.0, "int8"), (0.25, "int8"), (0.5, "fp16"), (0.0, "fp32")])
def test_uniform_recipes_are_points(space, ratio, precision):
    plan = space.uniform(ratio, precision)
    assert represents(space, plan)
    params = space.params(plan)
    assert params[GLOBAL_PRUNE] == ratio and all(v == 0 for k, v in params.items() if k.startswith("prune_deviation:"))


def test_a_sampled_point_round_trips_and_changes_precision_only_at_boundaries(space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    segments = space.segment_layers()
    assert [layer for part in segments for layer in part] == list(space.precisions)
    for _ in range(20):
        trial = study.ask()
        plan = space.suggest(trial)
        assert space.plan_of(trial.params).layers == plan.layers
        ratios = {plan.layers[g.root].prune_ratio for g in space.analysis.groups}
        assert all(0 <= r <= space.max_prune and round(r / space.prune_step, 6) % 1 == 0 for r in ratios)
        for part in segments:
            chosen = {
                plan.layers[layer].precision
                for layer in part
                if trial.params[SEGMENT_PREFIX + str(segments.index(part))] in space.precisions[layer]
            }
            assert len(chosen) <= 1
        study.tell(trial, 0.0)


def test_a_per_layer_recipe_is_projected_and_flagged(space):
    plan = space.uniform(0.25, "int8")
    layers = dict(plan.layers)
    first = next(iter(space.precisions))
    layers[first] = type(layers[first])(prune_ratio=0.25, precision="fp16")
    mixed = type(plan)(layers=layers, recipe=plan.recipe)
    assert not represents(space, mixed)
    params = space.params(mixed)
    assert params[GLOBAL_PRUNE] == 0.25 and params[SEGMENT_PREFIX + "0"] in ("int8", "fp16")


def test_the_signature_differs_from_the_flat_space(space):
    flat = SearchSpace(space.analysis, space.precisions, space.max_prune, space.prune_step, space.recipe)
    assert space.signature() != flat.signature()
    assert SegmentedSpace.of(flat, segments=2).signature() != space.signature()


def test_points_that_build_one_plan_share_a_key(space):
    root = space.analysis.groups[0].root
    unpruned = space.params(space.uniform(0.0, "int8"))
    clamped = unpruned | {"prune_deviation:" + root: -1}  # below a global ratio of 0: still unpruned
    pruned = unpruned | {"prune_deviation:" + root: 1}
    assert clamped != unpruned and space.plan_key(clamped) == space.plan_key(unpruned)
    assert space.plan_key(pruned) != space.plan_key(unpruned)
