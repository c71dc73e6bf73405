"""Let a sampler see the study's costs on a log scale, while the study stores them as measured.

The costs of a compression study (latency, energy, size, memory) span an order of magnitude between the
uncompressed model and the fastest plan. On a linear scale a model-based sampler weighs a 0.07 ms gain at the slow
end of the front above a 0.03 ms gain at the fast end, though the second is the larger speed-up, and it stays
where the costs are large. On a log scale a speed-up counts the same wherever it is on the front. Only what the
sampler reads changes: the study, its front and every table keep the values in ms, mJ and bytes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Container, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

SMALLEST = 1e-12  # a cost at or below zero is read as this before its log


def log_values(values: Sequence[float], directions: Sequence[StudyDirection]) -> list[float]:
    """``values`` with every minimized objective (a cost) replaced by its natural log."""
    return [math.log(max(v, SMALLEST)) if d == StudyDirection.MINIMIZE else v for v, d in zip(values, directions, strict=True)]


class _LogView:
    """A study as the sampler sees it: the same study, its trials' costs on a log scale."""

    def __init__(self, study: Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _view(self, trial: FrozenTrial) -> FrozenTrial:
        if trial.values is None:
            return trial
        seen = copy.copy(trial)
        seen.values = log_values(trial.values, self._study.directions)
        return seen

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        return [self._view(t) for t in self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)]

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return [self._view(t) for t in self._study.get_trials(deepcopy=deepcopy, states=states)]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class LogCostSampler(BaseSampler):
    """``inner``, shown every minimized objective of the study on a log scale (see the module docstring)."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(_view(study), trial)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.inner.sample_relative(_view(study), trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self.inner.sample_independent(_view(study), trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(_view(study), trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        seen = log_values(values, study.directions) if values is not None else None
        self.inner.after_trial(_view(study), trial, state, seen)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def _view(study: Study) -> Study:
    view: Any = _LogView(study)
    return view
