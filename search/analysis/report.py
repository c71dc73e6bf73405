"""`search report`: one self-contained HTML page of a study (Pareto front, hypervolume, per-layer plans, trials).

plotly.js is embedded inline, so the page opens offline. Sections without data
(no completed or no feasible trial) show a sentence instead of a plot.
"""

from __future__ import annotations

import html
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from core.files import atomic_target, check_out_file
from core.precisions import precision_names
from search.study import StudyInfo, metric_names
from search.study.front import front_records
from search.study.records import TrialRecord, records, state_counts, uncompressed

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")  # one colour per registered precision
FIGURE_CONFIG = {"displaylogo": False, "responsive": True}
MAX_LAYERS_ACROSS = 30  # more layers: the per-layer heatmap gets 34 px a column and scrolls sideways

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 1em 2em;
       max-width: 1400px; color: #222; }
h1 { margin-bottom: .2em; font-size: 1.6em; word-break: break-all; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: .2em; font-size: 1.25em; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1.2em; margin: .8em 0; }
dl.meta dt { font-weight: 600; color: #555; }
dl.meta dd { margin: 0; word-break: break-all; }
p.note { color: #555; margin: .3em 0 .8em; }
p.empty { padding: 1.5em; background: #f6f6f6; border: 1px dashed #bbb; color: #444; }
.scroll-x { overflow-x: auto; }
.table-wrap { overflow-x: auto; max-height: 80vh; border: 1px solid #ddd; }
table.trials { border-collapse: collapse; font-size: .82em; white-space: nowrap; }
table.trials th { position: sticky; top: 0; background: #f0f0f0; text-align: right; padding: .3em .6em; }
table.trials td { padding: .2em .6em; text-align: right; border-top: 1px solid #eee; font-variant-numeric: tabular-nums; }
table.trials td:last-child { white-space: normal; min-width: 20em; text-align: left; }
table.trials tbody tr:nth-child(even) { background: #fafafa; }
"""


def write_report(study: optuna.Study, out: Path) -> Path:
    """Write the report of ``study`` to ``out`` atomically (a temporary file beside it, then a rename); returns ``out``."""
    check_out_file(out, "report.html")
    page = build_report(study)
    with atomic_target(out) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return out


def build_report(study: optuna.Study) -> str:
    """The HTML page of ``study``: header, Pareto front, hypervolume history, per-layer plans of the front, trial table."""
    from plotly.offline import get_plotlyjs

    complete = [r for r in records(study, ("COMPLETE",)) if r.values]
    front = front_records(study) if complete else []
    body = "\n".join(
        (
            _header(study),
            _section("Pareto front", _front_section(study, complete, front)),
            _section("Hypervolume over trials", _hypervolume_section(study, complete, front)),
            _section("Per-layer plans of the front", _plans_section(front)),
            _section("All trials", _table_section(study, front)),
        )
    )
    title = html.escape(f"search report: {study.study_name}")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{CSS}</style>\n<script>{get_plotlyjs()}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _section(title: str, content: str) -> str:
    return f"<section>\n<h2>{html.escape(title)}</h2>\n{content}\n</section>"


def _empty(message: str) -> str:
    return f'<p class="empty">{html.escape(message)}</p>'


def _figure_div(fig: go.Figure, div_id: str, height: int, width: int | None = None) -> str:
    """A figure as a div (``width`` in px: wider than the page, in a scrolling box); plotly.js is loaded once in the head."""
    div = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_width=f"{width}px" if width else "100%",
        default_height=f"{height}px",
        config=FIGURE_CONFIG,
    )
    return f'<div class="scroll-x">\n{div}\n</div>' if width else div


# --- header -------------------------------------------------------------------------------------------------------------


def _header(study: optuna.Study) -> str:
    info = StudyInfo.of(study)
    trials = study.get_trials(deepcopy=False)
    states = state_counts(records(study))
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    names = metric_names(study)
    version = info.profile_version if info.profile_version is not None else "?"
    rows = {
        "model": info.model,
        "data": info.data
        + (f", {info.train_size} training images" if info.train_size else "")
        + (f" at {info.input_size} px" if info.input_size is not None else ""),
        "hardware profile": f"{info.hw} (profile version {version})",
        "objectives": ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions, strict=True)),
        "trials": ", ".join(f"{n} {s.lower()}" for s, n in states.items()) or "none yet",
        "created": f"{min(starts):%Y-%m-%d %H:%M:%S} (first trial started)" if starts else "no trial yet",
        "checkpoint": _checkpoint(info),
        "reference accuracy": _reference(info),
    }
    items = "\n".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in rows.items() if v)
    return f'<h1>{html.escape(study.study_name)}</h1>\n<dl class="meta">\n{items}\n</dl>'


def _checkpoint(info: StudyInfo) -> str:
    if info.checkpoint is None:
        return ""
    digest = info.checkpoint_sha256 or ""
    return info.checkpoint + (f" (sha256 {digest[:16]}…)" if digest else "")


def _reference(info: StudyInfo) -> str:
    parts = [
        f"{label} {100 * value:.2f}%"
        for value, label in ((info.reference_val_top1, "validation"), (info.reference_test_top1, "test"))
        if value is not None
    ]
    return ", ".join(parts) + (" (uncompressed model)" if parts else "")


# --- Pareto front -------------------------------------------------------------------------------------------------------


def _metric(names: list[str], trial: TrialRecord, name: str) -> float | None:
    """An objective's value if ``name`` is one of the study's objective ``names``, else the trial's metric."""
    if name in names and trial.values:
        return trial.values[names.index(name)]
    return trial.metric(name)


def _hover(names: list[str], trial: TrialRecord, reference_ms: float | None, on_front: bool) -> str:
    """The hover text of one trial (plotly renders a small HTML subset, so every value is escaped)."""
    latency = _metric(names, trial, "latency_ms")

    def number(key: str, scale: float, fmt: str, unit: str) -> str:
        value = trial.metric(key, scale)
        return f"{value:{fmt}}{unit}" if value is not None else "n/a"

    lines = [
        f"<b>trial {trial.number}</b>" + (f" ({html.escape(trial.strategy)})" if trial.strategy else ""),
        f"accuracy (val) {trial.values[0]:.2f}%" if trial.values else "",
        f"test accuracy {number('test_top1', 100, '.2f', '%')}",
        f"latency {latency:.3f} ms" if latency is not None else "latency n/a",
        f"energy {number('energy_mj', 1, '.3f', ' mJ')}",
        f"size {number('size_bytes', 1 / 1024, '.1f', ' KB')}",
        f"MACs {number('macs', 1e-6, '.2f', ' M')}",
        f"precisions {html.escape(trial.precision_mix)}",
        f"mean prune {trial.mean_prune:.2f}",
    ]
    if reference_ms and latency:
        lines.append(f"speed-up {reference_ms / latency:.2f}x vs uncompressed")
    if not trial.feasible:
        lines.append("infeasible: over a budget")
    lines.append("on the Pareto front" if on_front else "dominated")
    return "<br>".join(line for line in lines if line)


def _front_section(study: optuna.Study, complete: list[TrialRecord], front: list[TrialRecord]) -> str:
    if not complete:
        return _empty("No completed trial yet: the front appears once a trial completes (see the trial table below).")
    note = (
        "Validation accuracy against predicted latency of every completed trial; front members are outlined and joined, "
        "dominated trials are faded, baselines are diamonds with their name. Colour: model size."
    )
    if not front:
        note += " No completed trial meets the budgets, so the feasible front is empty."
    return f'<p class="note">{html.escape(note)}</p>\n' + _figure_div(_front_figure(study, complete, front), "front", 560)


def _front_figure(study: optuna.Study, complete: list[TrialRecord], front: list[TrialRecord]) -> go.Figure:
    import plotly.graph_objects as go

    on_front = {t.number for t in front}
    names = metric_names(study)
    reference = uncompressed(study)
    reference_ms = _metric(names, reference, "latency_ms") if reference else None
    fig = go.Figure()
    line = sorted(front, key=lambda t: _metric(names, t, "latency_ms") or 0.0)
    fig.add_trace(
        go.Scatter(
            x=[_metric(names, t, "latency_ms") for t in line],
            y=[_accuracy(t) for t in line],
            mode="lines",
            line={"color": "#333", "width": 1.5, "dash": "dot"},
            hoverinfo="skip",
            name="Pareto front",
        )
    )
    plain = [t for t in complete if not t.strategy]
    groups = (
        ("dominated", [t for t in plain if t.number not in on_front]),
        ("front member", [t for t in plain if t.number in on_front]),
        ("baseline", [t for t in complete if t.strategy]),
    )
    sizes = [_size_kb(t) for t in complete]
    scale = {"colorscale": "Viridis", "cmin": min(sizes), "cmax": max(sizes)}
    for i, (name, trials) in enumerate(g for g in groups if g[1]):
        fig.add_trace(_points(names, name, trials, on_front, reference_ms))
        fig.data[-1].marker.update(scale, showscale=i == 0, colorbar={"title": {"text": "size (KB)"}})
    hw = StudyInfo.of(study).hw or "the profile"
    fig.update_layout(
        xaxis_title=f"predicted latency on {hw} (ms)",
        yaxis_title="validation accuracy (%)",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"t": 40, "l": 70, "r": 20, "b": 60},
        hoverlabel={"align": "left"},
        template="plotly_white",
    )
    return fig


def _points(
    names: list[str],
    name: str,
    trials: list[TrialRecord],
    on_front: set[int],
    reference_ms: float | None,
) -> go.Scatter:
    """One marker trace: colour by size, faded unless on the front; baselines labelled.

    Each trace carries the same colour scale and range rather than sharing a layout colour axis: plotly.js
    warns on the console when it draws the legend of markers coloured through a colour axis.
    """
    import plotly.graph_objects as go

    member = [t.number in on_front for t in trials]
    baseline = name == "baseline"
    return go.Scatter(
        x=[_metric(names, t, "latency_ms") for t in trials],
        y=[_accuracy(t) for t in trials],
        mode="markers+text" if baseline else "markers",
        name=name,
        text=[html.escape(t.strategy) for t in trials] if baseline else None,
        textposition="top center",
        textfont={"size": 11, "color": "#333"},
        hovertext=[_hover(names, t, reference_ms, m) for t, m in zip(trials, member, strict=True)],
        hoverinfo="text",
        marker={
            "symbol": "diamond" if baseline else "circle",
            "size": [15 if m else 11 for m in member] if baseline else (13 if name == "front member" else 9),
            "color": [_size_kb(t) for t in trials],
            "opacity": [1.0 if m else 0.35 for m in member],
            "line": {"color": "#111", "width": [1.5 if m else 0.5 for m in member]},
        },
    )


def _accuracy(trial: TrialRecord) -> float | None:
    """The first objective (validation accuracy, %) of a completed trial."""
    return trial.values[0] if trial.values else None


def _size_kb(trial: TrialRecord) -> float:
    return trial.metric("size_bytes", 1 / 1024) or 0.0


# --- hypervolume --------------------------------------------------------------------------------------------------------


def reference_point(study: optuna.Study, complete: list[TrialRecord]) -> list[float]:
    """The hypervolume reference point: 0 (or the worst value if below) for maximized objectives such as accuracy,
    the worst value plus 10% for minimized ones (latency, energy, size)."""
    from optuna.study import StudyDirection

    point = []
    for i, direction in enumerate(study.directions):
        values = [t.values[i] for t in complete if t.values]
        if direction == StudyDirection.MAXIMIZE:
            point.append(min(0.0, *values))
        else:
            worst = max(values)
            point.append(worst + max(0.1 * abs(worst), 1e-9))
    return point


def _hypervolume_section(study: optuna.Study, complete: list[TrialRecord], front: list[TrialRecord]) -> str:
    import optuna

    if not front:
        return _empty("No feasible completed trial yet, so the dominated hypervolume is zero.")
    point = reference_point(study, complete)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fig = optuna.visualization.plot_hypervolume_history(study, point)
    names = metric_names(study)
    fig.update_traces(name="hypervolume", line={"color": "#4c72b0"})
    fig.update_layout(
        title=None,
        xaxis_title="trial number",
        yaxis_title=f"hypervolume ({' · '.join(names)})",
        margin={"t": 20, "l": 70, "r": 20, "b": 50},
        template="plotly_white",
    )
    described = ", ".join(f"{n} {v:.4g}" for n, v in zip(names, point, strict=True))
    note = (
        f"Volume of objective space dominated by the feasible trials finished so far, in trial-number order; "
        f"reference point {described}. A flat stretch means those trials did not improve the front."
    )
    return f'<p class="note">{html.escape(note)}</p>\n' + _figure_div(fig, "hypervolume", 380)


# --- per-layer plans ----------------------------------------------------------------------------------------------------


def _plans_section(front: list[TrialRecord]) -> str:
    layers = _layers(front)
    if not layers:
        return _empty("The front is empty (or its trials carry no plan), so there is no per-layer plan to show.")
    note = "One row per front member (most accurate first), one column per layer: colour = precision, number = prune ratio."
    height = 140 + 34 * len(front) + 4 * max(len(name) for name in layers)
    width = 250 + 34 * len(layers) if len(layers) > MAX_LAYERS_ACROSS else None
    return f'<p class="note">{html.escape(note)}</p>\n' + _figure_div(_plans_figure(front, layers), "plans", height, width)


def _layers(front: list[TrialRecord]) -> list[str]:
    """Layer names of the front's plans, in plan order."""
    layers: dict[str, None] = {}
    for trial in front:
        layers.update(dict.fromkeys(trial.plan.get("layers", {})))
    return list(layers)


def _plans_figure(front: list[TrialRecord], layers: list[str]) -> go.Figure:
    import plotly.graph_objects as go

    codes = {name: i for i, name in enumerate(precision_names())}
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(codes))]
    z, text, custom = [], [], []
    for trial in front:
        plan = trial.plan.get("layers", {})
        cells = [plan.get(name) for name in layers]
        z.append([codes.get(c["precision"]) if c else None for c in cells])
        text.append([f"{c['prune_ratio']:.2f}" if c else "" for c in cells])
        custom.append([f"{c['precision']}, prune {c['prune_ratio']:.2f}" if c else "not in plan" for c in cells])
    rows = [
        " ".join(filter(None, (f"#{t.number}", html.escape(t.strategy), f"· {t.values[0]:.1f}%" if t.values else "")))
        for t in front
    ]
    steps = len(colours)
    colourscale = [[edge / steps, colour] for i, colour in enumerate(colours) for edge in (i, i + 1)]
    heatmap = go.Heatmap(
        z=z,
        x=layers,
        y=rows,
        text=text,
        texttemplate="%{text}",
        customdata=custom,
        hovertemplate="%{y}<br>%{x}: %{customdata}<extra></extra>",
        colorscale=colourscale,
        zmin=-0.5,
        zmax=steps - 0.5,
        xgap=2,
        ygap=2,
        colorbar={"title": {"text": "precision"}, "tickvals": list(codes.values()), "ticktext": list(codes)},
    )
    fig = go.Figure(heatmap)
    fig.update_layout(
        xaxis={"tickangle": -40, "type": "category"},
        yaxis={"autorange": "reversed", "type": "category"},
        margin={"t": 20, "l": 20, "r": 20, "b": 20},
        template="plotly_white",
    )
    return fig


# --- trial table --------------------------------------------------------------------------------------------------------


def _table_section(study: optuna.Study, front: list[TrialRecord]) -> str:
    from search.analysis.tables import trials_table

    table = trials_table(study)
    if table.empty:
        return _empty("The study has no trials yet.")
    table.insert(2, "front", table["trial"].isin({t.number for t in front}).map({True: "yes", False: ""}))
    rendered = table.fillna(float("nan")).to_html(  # None (no value) as a blank cell, like NaN
        index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}", border=0, classes="trials", table_id="trials"
    )
    return f'<div class="table-wrap">\n{rendered}\n</div>'
