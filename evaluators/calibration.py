"""Fit a unit's free parameters to measured latencies (least squares on log(predicted / measured))."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, get_args

import numpy as np

from core.precisions import REFERENCE, precision_names
from evaluators.cost_model import CostModel
from evaluators.graph import Graph
from hw_profiles.schema import CALIBRATION_PREFIX, ComputeKind, Sourced, Unit, VectorKind, sourced_items

# Parameters a calibration may fit, as dotted paths into a Unit.
KINDS = get_args(ComputeKind)
FITTABLE = (
    *(f"gmacs.{p}" for p in precision_names()),
    *(f"kind_efficiency.{k}" for k in KINDS),
    *(f"precision_kind_efficiency.{p}.{k}" for p in precision_names() for k in KINDS),
    *(f"vector_gops.{p}" for p in precision_names()),
    *(f"vector_kind_efficiency.{k}" for k in get_args(VectorKind)),
    *(f"unaligned_efficiency.{p}" for p in precision_names()),
    *(f"depthwise_unaligned_efficiency.{p}" for p in precision_names()),
    "cache_gbs",
    "dram_gbs",
    "overhead_us",
    "switch_overhead_us",
    "inference_overhead_us",
    "thread_efficiency",
    "thread_sync_us",
    "memory_overlap",
)


@dataclass(frozen=True)
class Sample:
    """One measured inference: the graph, how it ran, the latency and, where profiled, each op's time."""

    graph: Graph
    measured_ms: float
    threads: int = 1
    label: str = ""
    op_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FitResult:
    """The calibrated unit and how well it predicts the samples before and after."""

    unit: Unit
    params: dict[str, float]
    error_before: dict[str, float]
    error_after: dict[str, float]
    pinned: tuple[str, ...] = ()  # parameters the fit left at a bound of their range: the rows did not determine them
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)  # leave-one-row-out range of each value


def bounds(path: str) -> tuple[float, float]:
    """Sensible range of a fitted parameter: shares of peak below 1.5, the overlap share up to 1, rates and times positive."""
    head = path.split(".")[0]
    if head == "memory_overlap":
        return 1e-3, 1.0
    if "efficiency" in head:
        return 1e-3, 1.5
    if head in ("overhead_us", "switch_overhead_us", "inference_overhead_us", "thread_sync_us"):
        return 1e-3, 1e5
    return 1e-3, 1e6


def check_params(params: list[str]) -> None:
    """Raise ValueError naming the parameters that cannot be fitted, and the ones that can."""
    unknown = [p for p in params if p not in FITTABLE and not p.startswith("op_efficiency.")]
    if unknown:
        raise ValueError(f"cannot fit {', '.join(unknown)}; fittable: {', '.join(FITTABLE)}")


def get_value(unit: Unit, path: str) -> float:
    """The number at ``path`` (e.g. ``gmacs.int8``) of ``unit``; a missing per-precision efficiency is the shared one."""
    parts = path.split(".")
    if parts[0] == "precision_kind_efficiency":
        return unit.efficiency(parts[1], parts[2])  # type: ignore[arg-type]
    if parts[0] == "vector_kind_efficiency":
        return unit.vector_efficiency(parts[1])
    if parts[0] == "op_efficiency":
        op_type, _, precision = parts[1].partition(":")
        return unit.op_factor(op_type, precision or REFERENCE)  # type: ignore[arg-type]
    if parts[0] == "unaligned_efficiency" and parts[1] not in unit.unaligned_efficiency:
        return 0.8
    if parts[0] == "depthwise_unaligned_efficiency" and parts[1] not in unit.depthwise_unaligned_efficiency:
        return get_value(unit, f"unaligned_efficiency.{parts[1]}")
    if parts[0] == "memory_overlap":
        return unit.overlap()
    if parts[0] == "kind_efficiency":
        return unit.efficiency(REFERENCE if REFERENCE in unit.precisions else unit.precisions[0], parts[1])  # type: ignore[arg-type]
    node: Any = unit
    for part in parts:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return float(node.value)


def with_values(unit: Unit, values: dict[str, float], source: str) -> Unit:
    """A copy of ``unit`` with the numbers at the given paths replaced and citing ``source``."""
    return _with_entries(unit, {path: Sourced(value=float(value), source=source) for path, value in values.items()})


def at_priors(unit: Unit) -> Unit:
    """``unit`` with every calibrated number back at its prior (``Unit.priors``), each citing the prior's source;
    ValueError naming the calibrated numbers that have no prior."""
    calibrated = [path for path, item in sourced_items(unit) if item.source.startswith(CALIBRATION_PREFIX)]
    lacking = [path for path in calibrated if path not in unit.priors]
    if lacking:
        raise ValueError(f"calibrated numbers without a prior: {', '.join(lacking)}; add them to the unit's priors")
    return _with_entries(unit, unit.priors)


def _with_entries(unit: Unit, entries: dict[str, Sourced]) -> Unit:
    data = unit.model_dump()
    for path, entry in entries.items():
        node = data
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = entry.model_dump()
    return Unit.model_validate(data)


def errors(unit: Unit, samples: list[Sample], fallback: Unit | None = None) -> dict[str, float]:
    """Median absolute % error, share within +-10%, and RMS of log ratios of predicted to measured latency."""
    ratios = np.array([predict(unit, s, fallback) / s.measured_ms for s in samples])
    pct = np.abs(ratios - 1) * 100
    return {
        "median_abs_pct": float(np.median(pct)),
        "within_10pct": float(np.mean(pct <= 10)),
        "rms_log": float(np.sqrt(np.mean(np.log(ratios) ** 2))),
    }


def predict(unit: Unit, sample: Sample, fallback: Unit | None = None) -> float:
    """Predicted latency (ms) of ``sample`` on ``unit``."""
    return CostModel(unit, threads=sample.threads, fallback=fallback).estimate(sample.graph).latency_ms


def fit(
    unit: Unit, samples: list[Sample], params: list[str], source: str, fallback: Unit | None = None, per_op: bool = False
) -> FitResult:
    """Fit ``params`` of ``unit`` so predictions match ``samples``; every fitted number cites ``source``.

    The fit runs in log space, so parameters stay positive and errors are
    relative. With ``per_op``, each profiled op of each sample is a residual,
    weighted by the square root of its share of the sample's time, so kernel
    parameters are fitted to kernel times rather than to whole-model totals.
    """
    from scipy.optimize import least_squares

    check_params(params)
    low, high = np.log([bounds(p)[0] for p in params]), np.log([bounds(p)[1] for p in params])
    start = np.clip(np.log([max(get_value(unit, p), 1e-9) for p in params]), low + 1e-6, high - 1e-6)

    def residuals(x: np.ndarray) -> np.ndarray:
        trial = with_values(unit, dict(zip(params, np.exp(x), strict=True)), source)
        if not per_op:
            return np.log([predict(trial, s, fallback) / s.measured_ms for s in samples])
        out = []
        for s in samples:
            predicted = {row.name: row.ms for row in CostModel(trial, s.threads, fallback).estimate(s.graph).layers}
            total = sum(s.op_ms.values())
            for name, ms in s.op_ms.items():
                if name in predicted and ms > 0 and predicted[name] > 0:
                    out.append(math.sqrt(ms / total) * math.log(predicted[name] / ms))
        return np.array(out)

    solution = least_squares(residuals, start, bounds=(low, high), method="trf", x_scale="jac", max_nfev=100 * len(params))
    values = dict(zip(params, np.exp(solution.x).tolist(), strict=True))
    fitted = with_values(unit, values, source)
    pinned = tuple(p for p, x, lo, hi in zip(params, solution.x, low, high, strict=True) if min(x - lo, hi - x) < 1e-3)
    return FitResult(fitted, values, errors(unit, samples, fallback), errors(fitted, samples, fallback), pinned)


def with_spread(result: FitResult, unit: Unit, samples: list[Sample], source: str, fallback: Unit | None = None) -> FitResult:
    """``result`` with each parameter's range over fits that leave one sample out (only where every such fit still
    has more samples than parameters)."""
    params = list(result.params)
    if len(samples) - 1 <= len(params):
        return result
    folds = [fit(unit, samples[:i] + samples[i + 1 :], params, source, fallback).params for i in range(len(samples))]
    return replace(result, spread={p: (min(f[p] for f in folds), max(f[p] for f in folds)) for p in params})
