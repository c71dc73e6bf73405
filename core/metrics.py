"""What a trial is scored on: the metrics it records and the objectives a study can optimise.

A metric is a number a trial stores (``latency_ms``); an objective is a metric
the study optimises, with a direction and the scale Optuna sees (accuracy in
percent). ``search run --objectives`` takes objective names; the model card
and ``search show`` list the metrics registered here. The evaluator that
computes a metric is ``search.trial.score_graph``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from core.registry import Registry


@dataclass(frozen=True)
class Metric:
    """A number every completed trial records, and how tables show it.

    Attributes:
        name: The key the trial stores it under (``latency_ms``).
        label: Row label of the model card (``predicted latency ms``).
        scale: Factor from the stored value to the shown one (bytes -> KB).
        digits: Decimals shown.
        column: Column of ``search show`` (empty: shown only when it is an objective).
    """

    name: str
    label: str
    scale: float = 1.0
    digits: int = 4
    column: str = ""


METRICS: Registry[Metric] = Registry("metric", "search show --help")
METRICS.register(Metric("test_top1", "test top-1 %", 100, 2, "test_top1_pct"))
METRICS.register(Metric("test_macro_f1", "test macro-F1 %", 100, 2, "test_macro_f1_pct"))
METRICS.register(Metric("val_top1", "validation top-1 %", 100, 2))
METRICS.register(Metric("size_bytes", "size KB", 1 / 1024, 1, "size_kb"))
METRICS.register(Metric("macs", "MMACs", 1e-6, 3, "macs_m"))
METRICS.register(Metric("latency_ms", "predicted latency ms", 1, 4))
METRICS.register(Metric("energy_mj", "predicted energy mJ", 1, 4, "energy_mj"))
METRICS.register(Metric("host_latency_ms", "host latency ms", 1, 4, "host_ms"))
METRICS.register(Metric("litert_host_ms", "host latency ms, LiteRT XNNPACK", 1, 4, "litert_ms"))
METRICS.register(Metric("peak_memory_bytes", "peak activation memory KB", 1 / 1024, 1, "activations_kb"))
METRICS.register(Metric("memory_bytes", "memory KB (weights + peak activations)", 1 / 1024, 1, "memory_kb"))


@dataclass(frozen=True)
class Objective:
    """One objective.

    Attributes:
        name: The name users give (``--objectives accuracy,latency``).
        direction: ``maximize`` or ``minimize``.
        metric: The trial metric it reads (``latency_ms``).
        scale: Factor from the metric to the value told to Optuna (fraction -> percent for accuracy).
        metric_name: The name Optuna shows for it (``study.metric_names``).
        unit: Unit of the told value, for labels.
        description: One line for help texts.
    """

    name: str
    direction: Literal["minimize", "maximize"]
    metric: str
    scale: float = 1.0
    metric_name: str = ""
    unit: str = ""
    description: str = ""

    def value(self, metrics: Mapping[str, float]) -> float:
        """The value told to Optuna for a trial's ``metrics``."""
        return float(metrics[self.metric]) * self.scale

    @property
    def label(self) -> str:
        """``latency_ms`` style name shown for the objective (its metric name)."""
        return self.metric_name or self.name


OBJECTIVES: Registry[Objective] = Registry("objective", "--objectives")
OBJECTIVES.register(
    Objective("accuracy", "maximize", "val_top1", 100.0, "accuracy", "%", "top-1 of the ONNX graph on the validation split")
)
OBJECTIVES.register(Objective("latency", "minimize", "latency_ms", 1.0, "latency_ms", "ms", "predicted on the profile"))
OBJECTIVES.register(Objective("energy", "minimize", "energy_mj", 1.0, "energy_mj", "mJ", "predicted on the profile"))
OBJECTIVES.register(Objective("size", "minimize", "size_bytes", 1.0, "size_bytes", "bytes", "weights in their precisions"))
OBJECTIVES.register(
    Objective(
        "memory", "minimize", "memory_bytes", 1.0, "memory_bytes", "bytes", "weights plus peak activation memory on the unit"
    )
)
QUALITY = "accuracy"  # the objective every study optimises first; the others are costs


def objective(name: str) -> Objective:
    """The registered objective ``name`` (a UserError naming the closest ones otherwise)."""
    return OBJECTIVES.get(name)
