"""Search strategies by name: each builds a seeded multi-objective Optuna sampler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.registry import Registry

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Sampler:
    """One sampler: its name, a factory ``(seed, population) -> sampler`` and one line for help texts."""

    name: str
    build: Callable[[int, int], optuna.samplers.BaseSampler]
    description: str = ""


def _nsga2(seed: int, population: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


def _tpe(seed: int, population: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _gp(seed: int, population: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, population))


def _random(seed: int, population: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: Registry[Sampler] = Registry("sampler", "--sampler")
SAMPLERS.register(Sampler("nsga2", _nsga2, "NSGA-II, genetic; population from --population"))
SAMPLERS.register(Sampler("tpe", _tpe, "multi-objective TPE (Optuna's defaults)"))
SAMPLERS.register(Sampler("gp", _gp, "Gaussian-process Bayesian optimisation (Optuna's GPSampler; default)"))
SAMPLERS.register(Sampler("random", _random, "uniform random search"))


COST_SCALES = ("log", "linear")


def make_sampler(name: str, seed: int, population: int, cost_scale: str = "log") -> optuna.samplers.BaseSampler:
    """The sampler ``name``, seeded (``population``: NSGA-II's population; startup trials of the model-based ones),
    reading the study's costs on ``cost_scale`` (``log``: see ``core.log_costs``; ``linear``: as stored)."""
    sampler = SAMPLERS.get(name).build(seed, population)
    if cost_scale == "linear":
        return sampler
    if cost_scale != "log":
        raise ValueError(f"cost_scale must be one of {COST_SCALES}, not {cost_scale!r}")
    from core.log_costs import LogCostSampler

    return LogCostSampler(sampler)
