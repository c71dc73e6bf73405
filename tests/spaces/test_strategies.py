"""Fixed recipes: each builds the plan it names, on units with and without a precision, and travels through a study."""

from __future__ import annotations

import optuna
import pytest
import torch

from spaces.analysis import analyse
from spaces.plan import Recipe
from spaces.space import SearchSpace
from spaces.strategies import SEED_PRUNE_RATIO, STRATEGIES, default_strategies, seed_hybrid, strategy_plans


def _space(model, unit: list[str]) -> SearchSpace:
    analysis = analyse(model, torch.zeros(1, 3, 16, 16))
    return SearchSpace.build(analysis, unit, set(analysis.layers) - {"fc"}, recipe=Recipe(finetune_epochs=1))


def test_every_strategy_builds_a_plan_on_a_unit_with_every_precision(tiny_cnn):
    space = _space(tiny_cnn, ["fp32", "fp16", "int8"])
    sensitivity = {layer: -float(i) for i, layer in enumerate(space.analysis.layers)}
    plans = strategy_plans(space, STRATEGIES.names(), sensitivity)
    assert set(plans) == set(STRATEGIES.names())
    assert plans["int8-ort"].recipe.quantizer == "ort" and plans["int8-nncf"].recipe.quantizer == "nncf-default"
    assert plans["all-int8"].recipe.quantizer == "nncf"
    assert {lp.prune_ratio for name, lp in plans["prune-uniform-50-int8"].layers.items() if name != "fc"} == {0.5}
    assert set(plans["prune-uniform-25"].layers_in("fp32")) == set(space.analysis.layers)


def test_seed_hybrid_keeps_the_most_sensitive_layers_out_of_int8(tiny_cnn):
    space = _space(tiny_cnn, ["fp32", "fp16", "int8"])
    int8_layers = [layer for layer, choices in space.precisions.items() if "int8" in choices]
    sensitivity = {layer: -0.1 * i for i, layer in enumerate(int8_layers)}  # the last layers hurt most in INT8
    share = max(1, round(0.2 * len(int8_layers)))
    worst = int8_layers[-share:]
    plan = seed_hybrid(space, sensitivity)
    assert plan is not None
    assert sorted(plan.layers_in("fp16")) == sorted(worst)  # 20% of the INT8 layers, the ones INT8 hurts most
    assert set(plan.layers_in("int8")) == set(int8_layers) - set(worst)
    assert plan.layers["fc"].precision == "fp32"  # not quantizable: the reference
    grouped = {m for g in space.analysis.groups for m in g.members}
    assert {plan.layers[m].prune_ratio for m in grouped} == {SEED_PRUNE_RATIO}
    # without FP16 on the unit the sensitive layer stays FP32; without a sensitivity there is no plan
    no_fp16 = seed_hybrid(_space(tiny_cnn, ["fp32", "int8"]), sensitivity)
    assert no_fp16 is not None and {no_fp16.layers[w].precision for w in worst} == {"fp32"}
    assert seed_hybrid(space, None) is None
    assert seed_hybrid(_space(tiny_cnn, ["int8"]), sensitivity) is None  # an INT8-only unit (a TPU, a DSP)


def test_strategies_a_unit_cannot_run_are_left_out(tiny_cnn):
    gpu = _space(tiny_cnn, ["fp32", "fp16"])
    plans = strategy_plans(gpu, STRATEGIES.names(), {})
    assert "int8-ort" not in plans and "seed-hybrid" not in plans and "prune-uniform-25-int8" not in plans
    assert default_strategies(gpu) == ["uncompressed", "all-fp16", "prune-uniform-25", "prune-uniform-50"]
    cpu = _space(tiny_cnn, ["fp32", "fp16", "int8"])
    assert default_strategies(cpu)[-1] == "prune-uniform-50-int8"  # the fastest fixed recipe warm-starts the search


def test_an_enqueued_strategy_comes_back_as_its_plan(tiny_cnn):
    space = _space(tiny_cnn, ["fp32", "fp16", "int8"])
    study = optuna.create_study(directions=["maximize", "minimize"])
    plan = STRATEGIES.get("int8-ort").plan(space)
    assert plan is not None
    study.enqueue_trial(space.params(plan))
    assert space.suggest(study.ask()).layers == plan.layers


def test_unknown_strategy_names_the_closest():
    from core.errors import UserError

    with pytest.raises(UserError, match="did you mean int8-ort"):
        STRATEGIES.get("int8-orts")
