"""The Pareto front after a search: a table on the terminal and, per front member, its plan and ONNX graph."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.study import pareto_front

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from rich.console import Console

    from evaluators.calibration import FitResult
    from evaluators.cost_model import Estimate


def uncompressed_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The completed uncompressed baseline trial, if any."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get("baseline") == "uncompressed":
            return trial
    return None


def precision_mix(precisions: dict[str, str]) -> str:
    """``int8 8 / fp16 1 / fp32 1``: how many compute layers run in each precision."""
    counts = {p: sum(v == p for v in precisions.values()) for p in ("int8", "fp16", "fp32")}
    return " / ".join(f"{p} {n}" for p, n in counts.items() if n)


def state_counts(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    """How many of ``trials`` are in each state (``COMPLETE``, ``FAIL``, ...), in order of first appearance."""
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``objective_N`` where none were set)."""
    return study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]


def layer_precisions(attrs: dict[str, Any]) -> dict[str, str]:
    """Precision per compute layer of a trial: as read from its graph, else as its plan asked."""
    return attrs.get("precisions") or {
        name: layer["precision"] for name, layer in attrs.get("plan", {}).get("layers", {}).items()
    }


def mean_prune(plan: dict[str, Any]) -> float:
    """Mean prune ratio over the plan's layers."""
    ratios = [layer["prune_ratio"] for layer in plan.get("layers", {}).values()]
    return sum(ratios) / len(ratios) if ratios else 0.0


def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per front member: test metrics, size, MACs, predicted and measured latency, speed-up."""
    reference = uncompressed_trial(study)
    ref_latency = reference.user_attrs["latency_ms"] if reference else None
    ref_test = reference.user_attrs["test_top1"] if reference else None
    rows = []
    for trial in pareto_front(study):
        a = trial.user_attrs
        rows.append(
            {
                "trial": trial.number,
                "baseline": a.get("baseline", ""),
                "test_top1": 100 * a["test_top1"],
                "test_delta": 100 * (a["test_top1"] - ref_test) if ref_test is not None else None,
                "val_top1": 100 * a["val_top1"],
                "size_kb": a["size_bytes"] / 1024,
                "macs_m": a["macs"] / 1e6,
                "latency_ms": a["latency_ms"],
                "energy_mj": a["energy_mj"],
                "host_ms": a["host_latency_ms"],
                "speedup": ref_latency / a["latency_ms"] if ref_latency else None,
                "precisions": precision_mix(a.get("precisions", {})),
                "mean_prune": mean_prune(a.get("plan", {})),
            }
        )
    return rows


def print_front(console: Console, study: optuna.Study, hw: str) -> list[dict[str, Any]]:
    """Print the front as a table; returns its rows."""
    from rich.table import Table

    rows = front_rows(study)
    table = Table(title=f"Pareto front of '{study.study_name}' ({len(rows)} points; latency and energy predicted on {hw})")
    for column in (
        "trial",
        "test acc %",
        "Δ vs base",
        "size KB",
        "MMACs",
        "latency ms",
        "energy mJ",
        "host ms",
        "speed-up",
        "precisions",
        "prune",
    ):
        table.add_column(column, justify="left" if column in ("precisions", "trial") else "right")
    for r in rows:
        label = f"{r['trial']}" + (f" ({r['baseline']})" if r["baseline"] else "")
        table.add_row(
            label,
            f"{r['test_top1']:.2f}",
            "" if r["test_delta"] is None else f"{r['test_delta']:+.2f}",
            f"{r['size_kb']:.1f}",
            f"{r['macs_m']:.2f}",
            f"{r['latency_ms']:.3f}",
            f"{r['energy_mj']:.3f}",
            f"{r['host_ms']:.3f}",
            "" if r["speedup"] is None else f"{r['speedup']:.2f}x",
            r["precisions"],
            f"{r['mean_prune']:.2f}",
        )
    console.print(table)
    return rows


def print_estimate(console: Console, estimate: Estimate, title: str, by_layer: bool) -> None:
    """Print an estimate's totals and, with ``by_layer``, its per-layer table."""
    from rich.table import Table

    if by_layer:
        table = Table(title=title)
        for column in ("layer", "op", "kind", "precision", "shape", "MACs", "bytes", "bound", "ms", "mJ"):
            table.add_column(column, justify="right" if column in ("MACs", "bytes", "ms", "mJ") else "left")
        for row in estimate.layers:
            table.add_row(
                row.name,
                row.op_type,
                row.kind,
                row.precision,
                "x".join(map(str, row.shape)),
                f"{row.macs:,}",
                f"{row.bytes:,}",
                row.bound,
                f"{row.ms:.4f}",
                f"{row.mj:.4f}",
            )
        console.print(table)
    console.print(
        f"{title}: latency {estimate.latency_ms:.3f} ms, energy {estimate.energy_mj:.3f} mJ, "
        f"{estimate.params:,} parameters, {estimate.macs / 1e6:.1f} M MACs, {estimate.size_bytes / 1024:.1f} KB"
    )


def print_fits(console: Console, fits: dict[str, FitResult]) -> None:
    """Print each calibration stage: fitted values and errors before and after."""
    from rich.table import Table

    for name, result in fits.items():
        console.print(  # a line of its own: a table title would wrap to the narrow table's width
            f"{name}: median |error| {result.error_before['median_abs_pct']:.1f}% -> "
            f"{result.error_after['median_abs_pct']:.1f}%, within +-10%: "
            f"{100 * result.error_before['within_10pct']:.0f}% -> {100 * result.error_after['within_10pct']:.0f}%"
        )
        table = Table()
        table.add_column("parameter")
        table.add_column("fitted", justify="right")
        for key, value in result.params.items():
            table.add_row(key, f"{value:.4g}")
        console.print(table)


def print_frame(console: Console, frame: pd.DataFrame, title: str) -> None:
    """A DataFrame as a table: floats to 4 significant digits, missing values blank."""
    import math

    from rich.table import Table

    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for record in frame.itertuples(index=False):
        table.add_row(*(cell(v) for v in record))
    console.print(table)
