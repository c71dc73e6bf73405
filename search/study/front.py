"""Pareto dominance and a study's feasible front, as trials, records and rows (test metrics, size, MACs, latency, speed-up)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.study.records import TrialRecord, uncompressed

if TYPE_CHECKING:
    import optuna


def front_records(study: optuna.Study) -> list[TrialRecord]:
    """The feasible Pareto front (most accurate first) as records."""
    return [TrialRecord.of(t) for t in pareto_front(study)]


def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per front member: test metrics (None if not scored), size, peak activation memory (None for trials
    recorded before it was), MACs, predicted and measured latency, speed-up vs uncompressed."""
    reference = uncompressed(study)
    ref_latency = reference.metric("latency_ms") if reference else None
    ref_test = reference.metric("test_top1") if reference else None
    rows = []
    for r in front_records(study):
        m = r.metrics
        test = r.metric("test_top1", 100)  # None: not scored (a rescored front whose data is not here)
        rows.append(
            {
                "trial": r.number,
                "baseline": r.strategy,
                "test_top1": test,
                "test_delta": test - 100 * ref_test if test is not None and ref_test is not None else None,
                "val_top1": 100 * m["val_top1"],
                "size_kb": m["size_bytes"] / 1024,
                "activations_kb": m["peak_memory_bytes"] / 1024 if "peak_memory_bytes" in m else None,
                "macs_m": m["macs"] / 1e6,
                "latency_ms": m["latency_ms"],
                "energy_mj": m["energy_mj"],
                "host_ms": m["host_latency_ms"],
                "litert_ms": m.get("litert_host_ms"),
                "speedup": ref_latency / m["latency_ms"] if ref_latency else None,
                "precisions": r.precision_mix,
                "mean_prune": r.mean_prune,
            }
        )
    return rows


def dominates(a: list[float], b: list[float], directions: list[optuna.study.StudyDirection]) -> bool:
    """Whether objective values ``a`` are no worse than ``b`` in every objective and better in one."""
    from optuna.study import StudyDirection

    signs = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in directions]
    gains = [s * (x - y) for s, x, y in zip(signs, a, b, strict=True)]
    return all(g >= 0 for g in gains) and any(g > 0 for g in gains)


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``objective_N`` where none were set)."""
    return study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]


def non_dominated(points: list[list[float]], directions: list[optuna.study.StudyDirection]) -> list[int]:
    """Indices of the ``points`` (objective values) no other point dominates."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p, directions) for q in points)]


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Feasible Pareto-optimal trials, in order of decreasing accuracy."""
    return sorted(study.best_trials, key=lambda t: (-t.values[0], t.number))
