"""Objectives and budgets: what a trial's metrics tell Optuna, and the constraints it must meet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import UserError
from core.metrics import OBJECTIVES, QUALITY, objective

if TYPE_CHECKING:
    import optuna


def parse_objectives(text: str) -> list[str]:
    """``accuracy,latency[,energy][,size]`` -> list of registered objectives; accuracy must come first."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"--objectives is empty: use a comma list of {', '.join(OBJECTIVES.names())}")
    for name in names:
        objective(name)  # an unknown name is one line naming the closest
    if names[0] != QUALITY or len(set(names)) != len(names) or len(names) < 2:
        raise UserError(
            f"--objectives must start with {QUALITY} and name at least one cost, each once (e.g. accuracy,latency,energy)"
        )
    return names


def objective_values(objectives: list[str], metrics: dict[str, float]) -> list[float]:
    """The values told to Optuna for a trial's metrics."""
    return [objective(name).value(metrics) for name in objectives]


@dataclass
class Budgets:
    """Constraints on candidates; None means no constraint."""

    reference_top1: float
    max_accuracy_drop: float | None = None
    latency_budget_ms: float | None = None
    memory_budget_kb: float | None = None


def constraint_values(metrics: dict[str, float], budgets: Budgets) -> dict[str, float]:
    """Budgets as constraint values (met when <= 0): accuracy drop in points, predicted latency in ms, memory
    (weights and peak activations) in KB."""
    out: dict[str, float] = {}
    if budgets.max_accuracy_drop is not None:
        out["accuracy_drop"] = 100 * (budgets.reference_top1 - metrics["val_top1"]) - budgets.max_accuracy_drop
    if budgets.latency_budget_ms is not None:
        out["latency_ms"] = metrics["latency_ms"] - budgets.latency_budget_ms
    if budgets.memory_budget_kb is not None:
        out["memory_kb"] = metrics["memory_bytes"] / 1024 - budgets.memory_budget_kb
    return out


def set_constraints(trial: optuna.Trial, metrics: dict[str, float], budgets: Budgets) -> None:
    """Budgets as Optuna constraints (feasible when <= 0), see :func:`constraint_values`."""
    for name, value in constraint_values(metrics, budgets).items():
        trial.set_constraint(name, value)
