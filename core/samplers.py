"""Search strategies by name: each builds a seeded multi-objective Optuna sampler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.registry import Registry

if TYPE_CHECKING:
    import optuna

    from core.neighbours import PointKey


@dataclass(frozen=True)
class Sampler:
    """One sampler: its name, a factory ``(seed, population, key) -> sampler`` (``key``: a point of the space -> the
    plan it builds, for the samplers that walk between plans), one line for help texts, and whether the
    scale its costs are read on changes what it proposes (``scaled``: distances or a surrogate on the values; a
    rank-based or random sampler reads them as stored)."""

    name: str
    build: Callable[[int, int, PointKey | None], optuna.samplers.BaseSampler]
    description: str = ""
    scaled: bool = False


def _nsga2(seed: int, population: int, key: PointKey | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


def _tpe(seed: int, population: int, key: PointKey | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _gp(seed: int, population: int, key: PointKey | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, population))


def _gp_local(seed: int, population: int, key: PointKey | None = None) -> optuna.samplers.BaseSampler:
    from core.neighbours import NeighbourSampler

    return NeighbourSampler(_gp(seed, population), seed, key=key)


def _random(seed: int, population: int, key: PointKey | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: Registry[Sampler] = Registry("sampler", "--sampler")
SAMPLERS.register(Sampler("nsga2", _nsga2, "NSGA-II, genetic; population from --population", scaled=True))
SAMPLERS.register(Sampler("tpe", _tpe, "multi-objective TPE (Optuna's defaults)"))
SAMPLERS.register(Sampler("gp", _gp, "Gaussian-process Bayesian optimisation (Optuna's GPSampler; default)", scaled=True))
SAMPLERS.register(
    Sampler("gp-local", _gp_local, "GP, every other trial a one-step neighbour of a feasible front member", scaled=True)
)
SAMPLERS.register(Sampler("random", _random, "uniform random search"))


COST_SCALES = ("log", "linear")


def default_population(trials: int) -> int:
    """NSGA-II's population and the model-based samplers' startup trials for a study of ``trials``: a third of it,
    within 8..50."""
    return max(8, min(50, trials // 3))


def check_cost_scale(cost_scale: str) -> None:
    """Raise ``ValueError`` unless ``cost_scale`` is one of ``COST_SCALES``."""
    if cost_scale not in COST_SCALES:
        raise ValueError(f"cost scale must be one of {', '.join(COST_SCALES)}, not {cost_scale!r}")


def read_scale(name: str, cost_scale: str) -> str:
    """The scale the sampler ``name`` reads costs on when asked for ``cost_scale``: only a ``scaled`` sampler is shown
    the log view (TPE ranks the trials, and the log of a cost in ms would move the reference point of its
    hypervolume tie-break by the unit; random search does not read them)."""
    check_cost_scale(cost_scale)
    return cost_scale if SAMPLERS.get(name).scaled else "linear"


def make_sampler(
    name: str, seed: int, population: int, cost_scale: str = "log", key: PointKey | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler ``name``, seeded (``population``: NSGA-II's population; startup trials of the model-based ones),
    reading the study's costs on ``read_scale(name, cost_scale)`` (``log``: see ``core.log_costs``); ``key`` maps a
    point to the plan it builds (None: each point its own plan)."""
    sampler = SAMPLERS.get(name).build(seed, population, key)
    if read_scale(name, cost_scale) == "linear":
        return sampler
    from core.log_costs import LogCostSampler

    return LogCostSampler(sampler)
