"""Local moves around the feasible front, alternating with a model-based sampler.

In a space of a few dozen parameters a Gaussian process fitted to twenty trials knows little beyond the global
trend, and a point that changes every parameter at once is a long way from anything measured. The fastest plans
within the accuracy budget are found by walking from the ones already known: the front's members that meet every
budget are the best evidence of where the good plans lie. ``NeighbourSampler`` proposes, for a share of the
trials, a neighbour of such a member: a few parameters moved one grid step (a categorical one to the choice
listed next to it: precisions are listed most precise first, so INT8 moves to FP16, never straight to FP32). The
member is picked by NSGA-II's binary tournament on crowding distance, so the ends of the front (the fastest plan
within budget among them) are walked from most. A neighbour counts only if its plan is new: where several points
build one plan (a deviation below a global ratio of 0 clamps to 0), the space's ``key`` tells them apart, not the
parameters. The other trials are the inner sampler's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

ATTEMPTS = 32  # neighbours drawn before the inner sampler is asked instead (every near point already tried)
MOVES = 3  # parameters a move changes, on average

PointKey = Callable[[dict[str, Any]], Hashable]  # a point of the space -> what it builds (equal keys: one plan)


def feasible_front(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """The completed trials that meet every constraint and that no other such trial dominates."""
    sign = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions]
    feasible = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.values is not None and all(c <= 0 for c in t.constraints.values())
    ]
    costs = [[s * v for s, v in zip(sign, t.values, strict=True)] for t in feasible]

    def dominated(i: int) -> bool:
        return any(all(a <= b for a, b in zip(other, costs[i], strict=True)) and other != costs[i] for other in costs)

    return [t for i, t in enumerate(feasible) if not dominated(i)]


def crowding(front: Sequence[FrozenTrial]) -> list[float]:
    """NSGA-II's crowding distance of each member (infinite at the ends of any objective)."""
    distance = [0.0] * len(front)
    if not front:
        return distance
    for k in range(len(front[0].values)):
        order = sorted(range(len(front)), key=lambda i: front[i].values[k])
        low, high = front[order[0]].values[k], front[order[-1]].values[k]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(order, order[1:], order[2:], strict=False):
            distance[here] += (front[after].values[k] - front[before].values[k]) / (high - low)
    return distance


def step(value: Any, distribution: BaseDistribution, rng: random.Random) -> Any:
    """``value`` moved one grid step up or down within ``distribution`` (a categorical one: to a choice listed next
    to it); ``value`` itself when the distribution has a single point."""
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        at = choices.index(value)
        adjacent = [choices[i] for i in (at - 1, at + 1) if 0 <= i < len(choices)]
        return rng.choice(adjacent) if adjacent else value
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        grid = distribution.step or (distribution.high - distribution.low) / 10
        moved = value + rng.choice((-1, 1)) * grid
        if not distribution.low <= moved <= distribution.high:
            moved = value - (moved - value)
        moved = min(distribution.high, max(distribution.low, distribution.low + round((moved - distribution.low) / grid) * grid))
        return round(moved) if isinstance(distribution, IntDistribution) else moved
    return value


def grid_key(point: dict[str, Any], space: dict[str, BaseDistribution]) -> tuple[tuple[str, Any], ...]:
    """``point`` as grid indices (a stepped number by its step count from the low end), so that 0.3 and
    0.30000000000000004 are the same point."""
    out = []
    for name in sorted(space):
        value, distribution = point.get(name), space[name]
        if isinstance(distribution, (IntDistribution, FloatDistribution)) and distribution.step and value is not None:
            value = round((value - distribution.low) / distribution.step)
        out.append((name, value))
    return tuple(out)


def neighbour(params: dict[str, Any], space: dict[str, BaseDistribution], rng: random.Random) -> dict[str, Any]:
    """``params`` with each of its n parameters moved one step with probability ``MOVES``/n, and at least one moved
    (in a space of a few dozen parameters one step of one parameter changes the plan too little to learn from)."""
    names = [n for n in sorted(space) if not space[n].single()]
    moved = [n for n in names if rng.random() < MOVES / len(names)] or [rng.choice(names)]
    return {n: step(params[n], space[n], rng) if n in moved else params[n] for n in space}


class NeighbourSampler(BaseSampler):
    """``inner``, except that a share of the trials (``share``) is a neighbour of a feasible front member (see the
    module docstring); the inner sampler is asked whenever there is no feasible trial yet. ``key`` maps a point to
    the plan it builds (None: every grid point is its own plan)."""

    def __init__(self, inner: BaseSampler, seed: int | None, share: float = 0.5, key: PointKey | None = None) -> None:
        self.inner = inner
        self.share = share
        self.key = key
        self._rng = random.Random(seed)
        self._space = IntersectionSearchSpace()
        self._local: set[int] = set()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._rng.random() < self.share:
            space = self._space.calculate(study)
            if space:
                self._local.add(trial._trial_id)
                return space
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial._trial_id in self._local:
            self._local.discard(trial._trial_id)
            point = self._walk(study, search_space)
            if point is not None:
                return point
            search_space = self.inner.infer_relative_search_space(study, trial)
        return self.inner.sample_relative(study, trial, search_space)

    def _walk(self, study: Study, space: dict[str, BaseDistribution]) -> dict[str, Any] | None:
        """A neighbour of a tournament-picked feasible front member not yet tried (None: nothing to move, no member,
        or no new neighbour found)."""
        if all(d.single() for d in space.values()):
            return None
        trials = study._get_trials(deepcopy=False, use_cache=True)
        front = [t for t in feasible_front(trials, study.directions) if all(n in t.params for n in space)]
        if not front:
            return None
        distance = crowding(front)
        seen = {self._plan(t.params, space) for t in trials if all(n in t.params for n in space)}
        for _ in range(ATTEMPTS):
            a, b = self._rng.randrange(len(front)), self._rng.randrange(len(front))
            centre = front[a if distance[a] >= distance[b] else b]
            point = neighbour({n: centre.params[n] for n in space}, space, self._rng)
            if self._plan(point, space) not in seen:
                return point
        return None

    def _plan(self, point: dict[str, Any], space: dict[str, BaseDistribution]) -> Hashable:
        """What ``point`` builds: ``key`` of it, or its grid steps when there is no ``key``."""
        return self.key(point) if self.key is not None else grid_key(point, space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self.inner.reseed_rng()
