"""Local moves around the feasible front: which trials are walked from, and what a move may change."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

from core.neighbours import NeighbourSampler, PointKey, crowding, feasible_front, grid_key, neighbour, step

SPACE = {
    "prune:global": FloatDistribution(0.0, 0.75, step=0.125),
    "prune_deviation:a": IntDistribution(-2, 2),
    "prune_deviation:b": IntDistribution(-2, 2),
    "precision_segment:0": CategoricalDistribution(["fp32", "fp16", "int8"]),
}
MIN = optuna.study.StudyDirection.MINIMIZE
MAX = optuna.study.StudyDirection.MAXIMIZE


def _trial(prune: float, a: int, precision: str, accuracy: float, ms: float, drop: float) -> optuna.trial.FrozenTrial:
    params = {"prune:global": prune, "prune_deviation:a": a, "prune_deviation:b": 0, "precision_segment:0": precision}
    return create_trial(
        params=params, distributions=SPACE, values=[accuracy, ms], system_attrs={"constraints:accuracy_drop": drop}
    )


# accuracy, latency; the fastest plan is over the accuracy budget, the second is dominated
TRIALS = [
    _trial(0.0, 0, "fp32", 92.0, 1.00, -1.0),
    _trial(0.0, 0, "int8", 91.5, 0.50, -0.5),
    _trial(0.125, 0, "fp16", 91.0, 0.60, 0.0),
    _trial(0.25, 1, "int8", 91.2, 0.40, -0.3),
    _trial(0.75, 0, "int8", 80.0, 0.20, 11.0),
]


def test_the_feasible_front_leaves_out_infeasible_and_dominated_trials():
    front = feasible_front(TRIALS, [MAX, MIN])
    assert [t.params["prune:global"] for t in front] == [0.0, 0.0, 0.25]
    assert [t.params["precision_segment:0"] for t in front] == ["fp32", "int8", "int8"]


def test_the_ends_of_the_front_are_the_least_crowded():
    front = feasible_front(TRIALS, [MAX, MIN])
    distance = crowding(front)
    assert distance[0] == distance[2] == float("inf")
    assert 0 < distance[1] < float("inf")


@pytest.mark.parametrize("name", list(SPACE))
def test_a_step_stays_on_the_grid_and_moves(name):
    rng = random.Random(0)
    distribution = SPACE[name]
    for value in [0.0, 0.125, 0.75] if name == "prune:global" else [-2, 0, 2] if "deviation" in name else ["fp32", "int8"]:
        moved = step(value, distribution, rng)
        assert moved != value
        assert distribution._contains(distribution.to_internal_repr(moved))
        if name == "prune:global":
            assert abs(moved - value) == pytest.approx(0.125)
        elif "deviation" in name:
            assert abs(moved - value) == 1


def test_a_precision_moves_to_the_choice_listed_next_to_it():
    rng = random.Random(0)
    distribution = SPACE["precision_segment:0"]
    assert {step("int8", distribution, rng) for _ in range(20)} == {"fp16"}
    assert {step("fp32", distribution, rng) for _ in range(20)} == {"fp16"}
    assert {step("fp16", distribution, rng) for _ in range(40)} == {"fp32", "int8"}


def _study(sampler: optuna.samplers.BaseSampler, trials: list[optuna.trial.FrozenTrial]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for t in trials:
        study.add_trial(t)
    return study


def test_every_local_proposal_is_a_new_one_step_neighbour_of_a_feasible_front_member():
    study = _study(NeighbourSampler(optuna.samplers.RandomSampler(seed=0), seed=0, share=1.0), TRIALS)
    front = [dict(t.params) for t in feasible_front(TRIALS, [MAX, MIN])]
    seen = [dict(t.params) for t in TRIALS]
    for _ in range(12):
        trial = study.ask(SPACE)
        point = dict(trial.params)
        assert point not in seen
        assert any(_moves(centre, point) >= 1 and _one_step(centre, point) for centre in front)
        seen.append(point)
        study.tell(trial, [90.0, 1.0])  # dominated by the first trial: the front stays


def test_without_a_feasible_trial_the_inner_sampler_proposes():
    infeasible = [t for t in TRIALS if t.system_attrs["constraints:accuracy_drop"] > 0]
    local = _study(NeighbourSampler(optuna.samplers.RandomSampler(seed=3), seed=0, share=1.0), infeasible)
    alone = _study(optuna.samplers.RandomSampler(seed=3), infeasible)
    assert local.ask(SPACE).params == alone.ask(SPACE).params


class _Tagging(optuna.samplers.RandomSampler):
    """A random sampler that remembers the trials it was asked for (the ones no walk proposed)."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self.asked: set[int] = set()

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.asked.add(trial.number)
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_a_neighbour_that_builds_a_plan_already_tried_is_not_proposed():
    # a segmented space's key: below a global ratio of 0 a negative deviation clamps to 0
    space = {
        "prune:global": FloatDistribution(0.0, 0.5, step=0.125),
        "prune_deviation:a": IntDistribution(-2, 2),
        "prune_deviation:b": IntDistribution(-2, 2),
    }

    def key(point: dict) -> tuple[float, float]:
        ratio = point["prune:global"]
        return max(0.0, ratio + 0.125 * point["prune_deviation:a"]), max(0.0, ratio + 0.125 * point["prune_deviation:b"])

    def walked(key_of: PointKey | None) -> list[tuple[float, float]]:
        """The plans the walk proposed around an unpruned centre (the inner sampler's left out)."""
        centre = {"prune:global": 0.0, "prune_deviation:a": 0, "prune_deviation:b": 0}
        inner = _Tagging(seed=0)
        study = _study(
            NeighbourSampler(inner, seed=0, share=1.0, key=key_of),
            [create_trial(params=centre, distributions=space, values=[91.0, 0.5])],
        )
        plans = [key(centre)]
        for _ in range(16):
            trial = study.ask(space)
            if trial.number not in inner.asked:
                plans.append(key(dict(trial.params)))
            study.tell(trial, [90.0, 1.0])  # dominated: the centre stays the front
        return plans

    assert len(set(walked(None))) < len(walked(None))  # by parameters alone, some moves rebuild a plan already tried
    keyed = walked(key)
    assert len(set(keyed)) == len(keyed) > 3


def _moves(a: dict, b: dict) -> int:
    return sum(a[k] != b[k] for k in a)


def _one_step(a: dict, b: dict) -> bool:
    for name, distribution in SPACE.items():
        if not isinstance(distribution, (IntDistribution, FloatDistribution)) or a[name] == b[name]:
            continue
        if abs(a[name] - b[name]) != pytest.approx(distribution.step):
            return False
    return True


def test_a_point_is_known_by_its_grid_steps_not_its_float_spelling():
    space = {"ratio": FloatDistribution(0.0, 0.5, step=0.1)}
    assert grid_key({"ratio": 0.3}, space) == grid_key({"ratio": 0.1 + 0.2}, space)
    assert grid_key({"ratio": 0.3}, space) != grid_key({"ratio": 0.4}, space)


def test_a_parameter_with_one_choice_is_never_the_one_moved():
    space = {"fixed": CategoricalDistribution(["int8"]), "ratio": FloatDistribution(0.0, 0.5, step=0.1)}
    rng = random.Random(1)
    for _ in range(20):
        point = neighbour({"fixed": "int8", "ratio": 0.2}, space, rng)
        assert point["fixed"] == "int8"
        assert point["ratio"] != 0.2
