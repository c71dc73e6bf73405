"""Tables on the terminal (rich): the front after a search, an estimate, calibration fits, any DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.analysis.bands import unit_band
from search.study.front import front_rows

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from rich.console import Console

    from evaluators.calibration import FitResult
    from evaluators.cost_model import Estimate
    from hw_profiles.schema import Band


def print_front(console: Console, study: optuna.Study, hw: str) -> list[dict[str, Any]]:
    """Print the front as a table; returns its rows."""
    from rich.table import Table

    rows = front_rows(study)
    band = unit_band(hw)
    about = f"latency with its {band.level:.0%} band" if band else "latency (no band: no out-of-sample check)"
    energy = unit_band(hw, "energy")
    about += f", energy ({energy.level:.0%} band x{energy.low:.2f}-{energy.high:.2f})" if energy else ", energy (unchecked)"
    title = f"Pareto front of '{study.study_name}' ({len(rows)} points; {about} predicted on {hw})"
    table = Table(title=title)
    litert = any(r["litert_ms"] is not None for r in rows)
    for column in (
        "trial",
        "test acc %",
        "Δ vs base",
        "size KB",
        "act. KB",
        "MMACs",
        "latency ms",
        "energy mJ",
        "host ms",
        *(["LiteRT ms"] if litert else []),
        "speed-up",
        "precisions",
        "prune",
    ):
        table.add_column(column, justify="left" if column in ("precisions", "trial") else "right")
    for r in rows:
        label = f"{r['trial']}" + (f" ({r['baseline']})" if r["baseline"] else "")
        table.add_row(
            label,
            "not scored" if r["test_top1"] is None else f"{r['test_top1']:.2f}",
            "" if r["test_delta"] is None else f"{r['test_delta']:+.2f}",
            f"{r['size_kb']:.1f}",
            "" if r["activations_kb"] is None else f"{r['activations_kb']:.1f}",
            f"{r['macs_m']:.2f}",
            f"{r['latency_ms']:.3f}" + ("" if band is None else " ({:.3f}-{:.3f})".format(*band.around(r["latency_ms"]))),
            f"{r['energy_mj']:.3f}",
            f"{r['host_ms']:.3f}",
            *([f"{r['litert_ms']:.3f}" if r["litert_ms"] is not None else ""] if litert else []),
            "" if r["speedup"] is None else f"{r['speedup']:.2f}x",
            r["precisions"],
            f"{r['mean_prune']:.2f}",
        )
    console.print(table)
    return rows


def energy_text(energy_mj: float, band: Band | None) -> str:
    """``3.2 mJ (80% band 4.1-7.9 mJ)``, or the energy and ``unchecked`` where no published measurement checks it."""
    if band is None:
        return f"{energy_mj:.3f} mJ (unchecked: no published energy measurement)"
    low, high = band.around(energy_mj)
    return f"{energy_mj:.3f} mJ ({band.level:.0%} band {low:.3f}-{high:.3f} mJ, from {band.rows} published rows)"


def latency_text(latency_ms: float, band: Band | None) -> str:
    """``22.1 ms (80% band 18.0-31.9 ms)``, or the latency and ``no out-of-sample check`` without a band."""
    if band is None:
        return f"{latency_ms:.3f} ms (no out-of-sample check: no band)"
    low, high = band.around(latency_ms)
    return f"{latency_ms:.3f} ms ({band.level:.0%} band {low:.3f}-{high:.3f} ms)"


def print_estimate(
    console: Console,
    estimate: Estimate,
    title: str,
    by_layer: bool,
    band: Band | None = None,
    energy_band: Band | None = None,
) -> None:
    """Print an estimate's totals (latency and energy with their bands) and, with ``by_layer``, its per-layer table."""
    from rich.table import Table

    if by_layer:
        table = Table(title=title)
        for column in ("layer", "op", "kind", "precision", "shape", "MACs", "bytes", "bound", "ms", "mJ", "fp32 ms"):
            table.add_column(column, justify="right" if column in ("MACs", "bytes", "ms", "mJ", "fp32 ms") else "left")
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
                "" if row.fp32_ms is None else f"{row.fp32_ms:.4f}",
            )
        console.print(table)
    console.print(
        f"{title}: latency {latency_text(estimate.latency_ms, band)}, energy {energy_text(estimate.energy_mj, energy_band)}, "
        f"{estimate.params:,} parameters, {estimate.macs / 1e6:.1f} M MACs, {estimate.size_bytes / 1024:.1f} KB, "
        f"peak activations {estimate.peak_memory_bytes / 1024:.1f} KB"
    )
    if band is not None:
        console.print(f"latency band: {band.describe()}")
    if energy_band is not None:
        console.print(f"energy band: {energy_band.describe()}")
    slower = slower_than_fp32_line(estimate)
    if slower:
        console.print(slower)


def slower_than_fp32_line(estimate: Estimate, limit: int = 8) -> str:
    """``N layers predicted slower than in FP32 on this unit: a (int8 0.120 vs 0.090 ms), ...`` or ``""``."""
    slower = estimate.slower_than_fp32()
    if not slower:
        return ""
    shown = ", ".join(f"{s.name} ({s.precision} {s.ms:.3f} vs {s.fp32_ms:.3f} ms)" for s in slower[:limit])
    more = f" and {len(slower) - limit} more" if len(slower) > limit else ""
    return f"{len(slower)} layers predicted slower than in FP32 on this unit (input conversions included): {shown}{more}"


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
        for column in ("parameter", "fitted", "leave-one-row-out range", "note"):
            table.add_column(column, justify="left" if column in ("parameter", "note") else "right")
        for key, value in result.params.items():
            spread = result.spread.get(key)
            table.add_row(
                key,
                f"{value:.4g}",
                f"{spread[0]:.4g}-{spread[1]:.4g}" if spread else "",
                "at a bound: the rows do not determine it" if key in result.pinned else "",
            )
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
