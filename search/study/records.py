"""What a trial stores in the study and reads back: one typed record instead of loose user attributes.

The study stays a plain Optuna study (every field is a user attribute, so
optuna-dashboard and ``optuna best-trials`` show them); this module is the one
place that knows their keys. The driver writes through the ``store_*``
functions; inspection, the front, the report and the export read
:class:`TrialRecord`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.precisions import by_precision, precision_names

if TYPE_CHECKING:
    import optuna

# user attribute keys of a trial
PLAN, STRATEGY, RECIPE, PRECISIONS, ONNX = "plan", "baseline", "recipe_changes", "precisions", "onnx"
DRIVER, WORKER, FAIL_REASON, TEST_ERROR = "driver", "worker", "fail_reason", "test_error"
FIXED_LAYERS = "fixed_layers"  # a fixed recipe's own per-layer plan, where the space has no point for it
FIDELITY, CHEAP_TOP1 = "fidelity", "cheap_val_top1"  # multi-fidelity trials (search.driver.fidelity)
NOT_METRICS = {PLAN, STRATEGY, RECIPE, FIXED_LAYERS, PRECISIONS, ONNX, DRIVER, WORKER, FAIL_REASON, TEST_ERROR, FIDELITY}
# What a rerun of an interrupted trial keeps of it: what the candidate is, not what happened to it.
CARRIED = (PLAN, STRATEGY, RECIPE, FIXED_LAYERS)
UNCOMPRESSED = "uncompressed"
# Recipe names studies made before the fixed recipes were named as strategies (read as their new names).
LEGACY_NAMES = {"uniform-prune-25": "prune-uniform-25", "uniform-prune-50": "prune-uniform-50"}
RESCORED_FROM = "rescored_from"  # the source study and trial a rescored trial re-prices
INTERRUPTED = "interrupted: the driver stopped before this trial finished"
HEARTBEAT_LOST = "interrupted: its driver stopped (heartbeat lost)"


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the tool sees it.

    Attributes:
        number: Optuna's trial number.
        state: ``COMPLETE``, ``FAIL``, ``RUNNING``, ``WAITING`` or ``PRUNED``.
        values: Objective values told to Optuna (None unless complete).
        feasible: Whether every budget (Optuna constraint) is met.
        strategy: Name of the enqueued strategy (fixed recipe), or ``""`` for a searched trial (stored as the
            user attribute ``baseline``, the column name users see).
        plan: The CompressionPlan as a dict (``spaces.plan.CompressionPlan.to_dict``).
        precisions: Precision of each compute layer as read from its graph.
        metrics: Numbers the trial measured (``val_top1``, ``test_top1``, ``latency_ms``, ``size_bytes``, ...).
        onnx: Path of its ONNX graph on the machine that ran it.
        driver: Host and process of the driver that asked for it.
        worker: Host, Ray node and process that evaluated it.
        fail_reason: Why it failed (empty unless failed).
        duration_s: Seconds from start to end (None while running).
        fidelity: ``cheap`` (left at the cheap recovery) or ``full`` (promoted) for a multi-fidelity trial, else "".
    """

    number: int
    state: str
    values: tuple[float, ...] | None = None
    feasible: bool = True
    strategy: str = ""
    plan: dict[str, Any] = field(default_factory=dict)
    precisions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    onnx: str = ""
    driver: str = ""
    worker: str = ""
    fail_reason: str = ""
    duration_s: float | None = None
    fidelity: str = ""

    @classmethod
    def of(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        """Read ``trial``'s attributes (a trial failed by the heartbeat check gets that reason)."""
        a = trial.user_attrs
        reason = a.get(FAIL_REASON, "")
        if trial.state.name == "FAIL" and not reason:
            reason = HEARTBEAT_LOST
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        return cls(
            number=trial.number,
            state=trial.state.name,
            values=tuple(trial.values) if trial.values else None,
            feasible=all(v <= 0 for v in trial.constraints.values()),
            strategy=a.get(STRATEGY, ""),
            plan=a.get(PLAN, {}),
            precisions=a.get(PRECISIONS, {}),
            metrics={k: v for k, v in a.items() if k not in NOT_METRICS and isinstance(v, int | float)},
            onnx=a.get(ONNX, ""),
            driver=a.get(DRIVER, ""),
            worker=a.get(WORKER, ""),
            fail_reason=reason,
            duration_s=duration,
            fidelity=a.get(FIDELITY, ""),
        )

    def metric(self, key: str, scale: float = 1.0) -> float | None:
        """Metric ``key`` times ``scale``, or None if the trial did not record it."""
        value = self.metrics.get(key)
        return None if value is None else value * scale

    @property
    def layer_precisions(self) -> dict[str, str]:
        """Precision per compute layer: as read from its graph, else as its plan asked."""
        return self.precisions or {name: layer["precision"] for name, layer in self.plan.get("layers", {}).items()}

    @property
    def precision_mix(self) -> str:
        """``int8 8 / fp16 1 / fp32 1``: how many compute layers run in each precision, least precise first."""
        values = list(self.layer_precisions.values())
        order = list(reversed(by_precision(set(values) | set(precision_names()))))
        return " / ".join(f"{p} {values.count(p)}" for p in order if values.count(p))

    def precision_share(self, precision: str) -> float | None:
        """Share of compute layers in ``precision`` (None without layers)."""
        values = list(self.layer_precisions.values())
        return values.count(precision) / len(values) if values else None

    @property
    def mean_prune(self) -> float:
        """Mean prune ratio over the plan's layers."""
        return mean_prune(self.plan)

    @property
    def recipe(self) -> dict[str, Any]:
        """The plan's recipe (fine-tune, calibration, rounding, seed)."""
        return self.plan.get("recipe", {})


def mean_prune(plan: dict[str, Any]) -> float:
    """Mean prune ratio over a plan's layers (the plan as stored: ``{"layers": {name: {"prune_ratio": ...}}}``)."""
    ratios = [layer["prune_ratio"] for layer in plan.get("layers", {}).values()]
    return sum(ratios) / len(ratios) if ratios else 0.0


def records(study: optuna.Study, states: tuple[str, ...] | None = None) -> list[TrialRecord]:
    """Every trial of ``study`` as a record (only those in ``states`` when given)."""
    trials = study.get_trials(deepcopy=False)
    return [TrialRecord.of(t) for t in trials if states is None or t.state.name in states]


def state_counts(trials: list[TrialRecord]) -> dict[str, int]:
    """How many of ``trials`` are in each state (``COMPLETE``, ``FAIL``, ...), in order of first appearance."""
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state] = counts.get(trial.state, 0) + 1
    return counts


def uncompressed(study: optuna.Study) -> TrialRecord | None:
    """The completed uncompressed baseline trial, if any."""
    return next((r for r in records(study, ("COMPLETE",)) if r.strategy == UNCOMPRESSED), None)


def store_plan(trial: optuna.Trial, plan: dict[str, Any], driver: str) -> None:
    """Record the plan a trial evaluates and the driver that asked for it."""
    trial.set_user_attr(PLAN, plan)
    trial.set_user_attr(DRIVER, driver)


def store_fidelity(trial: optuna.Trial, plan: dict[str, Any], cheap_top1: float | None) -> None:
    """Record a multi-fidelity trial: left at the cheap fidelity (``cheap_top1`` None; its plan becomes the cheap
    one it was realised with), or promoted to the full one (``cheap_top1``: its accuracy at the cheap one)."""
    if cheap_top1 is None:
        trial.set_user_attr(PLAN, plan)
        trial.set_user_attr(FIDELITY, "cheap")
    else:
        trial.set_user_attr(FIDELITY, "full")
        trial.set_user_attr(CHEAP_TOP1, cheap_top1)


def store_worker(trial: optuna.Trial, worker: str) -> None:
    """Record where a trial was evaluated."""
    trial.set_user_attr(WORKER, worker)


def store_failure(trial: optuna.Trial, reason: str) -> None:
    """Record why a trial failed."""
    trial.set_user_attr(FAIL_REASON, reason)


def store_result(trial: optuna.Trial, metrics: dict[str, float], precisions: dict[str, str], onnx_path: str) -> None:
    """Record a completed trial's metrics (one attribute each), its layers' precisions and its graph's path."""
    trial.set_user_attr(ONNX, onnx_path)
    trial.set_user_attr(PRECISIONS, precisions)
    for key, value in metrics.items():
        trial.set_user_attr(key, value)


def strategy_attrs(
    name: str, recipe_changes: dict[str, Any] | None = None, layers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """User attributes of an enqueued fixed recipe (strategy): its name, the changes to the study's recipe it needs,
    and its own per-layer plan where the space has no point for it."""
    attrs: dict[str, Any] = {STRATEGY: name}
    if recipe_changes:
        attrs[RECIPE] = recipe_changes
    if layers:
        attrs[FIXED_LAYERS] = layers
    return attrs


def fixed_layers(trial: optuna.Trial) -> dict[str, Any] | None:
    """The per-layer plan an enqueued strategy carries because the space has no point for it (else None)."""
    return trial.user_attrs.get(FIXED_LAYERS)


def recipe_changes(trial: optuna.Trial) -> dict[str, Any]:
    """The recipe changes an enqueued strategy trial carries (empty for searched trials)."""
    return dict(trial.user_attrs.get(RECIPE) or {})
