"""`search compare`: the seed study in one command.

Per model: the baseline, every fixed recipe (``spaces.strategies``) and a
search, each model's study in one storage (resumable: a finished study is only
read). Then one table (CSV, Markdown, terminal) of the baseline, every recipe
and the fastest front point within the accuracy budget, with % change vs the
baseline, whether a searched point dominates each recipe, and whether the seed's
claim (-60% size, -30% latency within the budget) holds; and one plot of every
model's front and recipes.
"""

from __future__ import annotations

import contextlib
import resource
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from search.config import RunConfig, safe_name
from search.study import StudyInfo
from search.study.records import UNCOMPRESSED, TrialRecord, records, uncompressed

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from rich.console import Console

# The comparison's defaults: the whole train split, a 1.0-point budget on validation, recovery fine-tunes of 400
# optimizer steps (batches of 64 drawn from the whole train split) distilled from the baseline at lr 1e-3: on 7
# random ResNet-18 plans that beat plain fine-tunes at 3e-3 on every plan, by 0.1-0.7 points (docs/benchmarks.md).
COMPARE_DEFAULTS = RunConfig(
    data="fashion-mnist", trials=30, max_accuracy_drop=1.0, finetune_steps=400, finetune_lr=1e-3, distill=True
)
# Per default model, the input size and baseline epochs (`search train`; docs/baselines.md): the depthwise networks
# at 64 px, where pruning buys latency on a phone (per-op overhead dominates smaller inputs); each baseline in 15-45
# minutes on 2 cores (ResNet-18 and ResNet-50 the longest). A model not listed takes the run's --input-size and
# --baseline-epochs.
MODEL_BASELINES = {
    "resnet18": (32, 20),
    "resnet50": (32, 8),
    "mobilenetv2_100": (64, 8),
    "efficientnet_lite0": (64, 8),
    "hl_cnn": (32, 15),
}
BEST = "front: fastest in budget"
BEST_SEARCHED = "searched: fastest in budget"
SEED_SIZE, SEED_LATENCY = -60.0, -30.0  # the seed's claim: 60-70% smaller, 30-40% faster, within 1.5 points


@dataclass
class CompareConfig:
    """Options of `search compare`; ``run`` carries every `search run` option shared by the models' studies."""

    models: tuple[str, ...] = ("resnet18", "resnet50", "mobilenetv2_100", "efficientnet_lite0", "hl_cnn")
    out: str = "compare"
    run: RunConfig | None = None
    given: frozenset[str] = frozenset()  # options set on the command line: they override MODEL_BASELINES


@dataclass
class ModelRun:
    """What running one model's study cost."""

    model: str
    study: str
    wall_s: float
    trials: int
    driver_peak_mb: float
    worker_peak_mb: float | None


def check_compare(config: CompareConfig, base: RunConfig) -> None:
    """Refuse a comparison that cannot be one: no model, or too few trials to search beside every fixed recipe."""
    from search.models import check_model_name

    if not config.models:
        raise UserError("--models is empty: give a comma list of model names")
    for name in config.models:
        check_model_name(name)
    if base.trials <= len(base.strategies):
        raise UserError(
            f"--trials {base.trials} leaves no trial to search: the comparison runs {len(base.strategies)} fixed "
            f"recipes first; pass --trials {len(base.strategies) + 10} or more"
        )
    if base.max_accuracy_drop is None:
        raise UserError("--max-accuracy-drop is needed: the comparison picks the fastest point within it")


def run_compare(config: CompareConfig, console: Console) -> int:
    """Run every model's study (resuming finished ones), then write and print the comparison; returns the exit code."""
    from search.config import check_one_device
    from search.driver.inputs import resolve_inputs
    from search.driver.run import run_search
    from search.study import find_study, open_storage
    from spaces.strategies import STRATEGIES

    # every trial scored on test: the comparison reads the test accuracy of trials off the front too
    base = replace(
        config.run or COMPARE_DEFAULTS,
        run_dir=config.out,
        strategies=tuple(STRATEGIES.names()),
        search=True,
        test_every_trial=True,
    )
    check_compare(config, base)
    check_one_device(base, "search compare")
    models = list(dict.fromkeys(config.models))
    inputs = {model: resolve_inputs(model_config(base, model, config.given)) for model in models}  # checked before training
    started = time.time()
    runs, studies = [], {}
    for index, model in enumerate(models, 1):
        console.rule(f"model {index}/{len(models)}: {model}")
        reset_peak_rss()
        begun = time.time()
        run_search(inputs[model].config, console)
        study = find_study(open_storage(inputs[model].storage_url), inputs[model].study_name)
        if study is not None:
            studies[model] = study
            runs.append(model_run(model, study, time.time() - begun))
    hw = inputs[models[0]].hw
    assert base.max_accuracy_drop is not None  # check_compare
    table = comparison_table(studies, base.max_accuracy_drop)
    written = write_outputs(table, studies, runs, Path(config.out), hw, base, time.time() - started)
    print_comparison(console, table, runs, hw)
    console.print(f"wrote {', '.join(str(p) for p in written)}; whole comparison {time.time() - started:.0f} s")
    return 0


def model_config(base: RunConfig, model: str, given: frozenset[str]) -> RunConfig:
    """The run options of one model's study: ``base``, with that model's input size and baseline epochs
    (``MODEL_BASELINES``) unless the command line set them."""
    size, epochs = MODEL_BASELINES.get(model, (base.input_size, base.baseline_epochs))
    changes: dict[str, Any] = {"model": model}
    if "input_size" not in given:
        changes["input_size"] = size
    if "baseline_epochs" not in given:
        changes["baseline_epochs"] = epochs
    return replace(base, **changes)


def reset_peak_rss() -> None:
    """Start this process's peak-RSS count afresh (Linux: ``/proc/self/clear_refs``); elsewhere a no-op."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """This process's peak RSS since :func:`reset_peak_rss` (``VmHWM``), else since it started (``ru_maxrss``)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_run(model: str, study: optuna.Study, wall_s: float) -> ModelRun:
    """What ``model``'s study cost over every invocation (wall time adds up, stored in the study) and the peak memory
    of the driver and of its Ray workers."""
    info = StudyInfo.of(study)
    total = (info.compare_wall_s or 0.0) + wall_s
    driver = max(info.compare_driver_peak_mb or 0.0, peak_rss_mb())
    info.with_(compare_wall_s=total, compare_driver_peak_mb=driver).write(study)
    finished = [r for r in records(study) if r.state in ("COMPLETE", "FAIL")]
    worker_peaks = [r.metrics["worker_peak_rss_mb"] for r in finished if "worker_peak_rss_mb" in r.metrics]
    return ModelRun(model, study.study_name, total, len(finished), driver, max(worker_peaks) if worker_peaks else None)


def dominates(a: TrialRecord, b: TrialRecord, accuracy: str) -> bool:
    """``a`` is at least as accurate (metric ``accuracy``) and at least as fast (predicted) as ``b``, and better in one."""
    from optuna.study import StudyDirection

    from search.study import dominates as dominates_values

    values = [[r.metrics[accuracy], r.metrics["latency_ms"]] for r in (a, b)]
    return dominates_values(values[0], values[1], [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE])


def fastest(trials: list[TrialRecord]) -> TrialRecord | None:
    """The trial with the lowest predicted latency (the lower number on a tie), None if there is none."""
    return min(trials, key=lambda r: (r.metrics["latency_ms"], r.number)) if trials else None


def comparison_table(studies: dict[str, optuna.Study], budget: float) -> pd.DataFrame:
    """One row per model and entry: baseline, each recipe, the fastest front point (every front member meets the
    budget on val) and the fastest searched trial within the budget."""
    import pandas as pd

    from search.study.front import front_records

    rows = []
    for model, study in studies.items():
        reference = uncompressed(study)
        if reference is None:
            continue
        complete = records(study, ("COMPLETE",))
        recipes = [r for r in complete if r.strategy and r.strategy != UNCOMPRESSED]
        entries: list[tuple[str, TrialRecord | None]] = [("baseline", reference), *((r.strategy, r) for r in recipes)]
        entries.append((BEST, fastest(front_records(study))))  # every front member meets the budget on val
        entries.append((BEST_SEARCHED, fastest([r for r in complete if not r.strategy and r.feasible])))
        failed = [r for r in records(study, ("FAIL",)) if r.strategy and r.strategy not in {e for e, _ in entries}]
        rows += [
            {"model": model, "entry": r.strategy, "trial": r.number, "dominated_by": f"failed: {r.fail_reason}"} for r in failed
        ]
        for entry, record in entries:
            if record is None:
                continue
            row = _metrics_row(model, entry, record, reference)
            if entry in (BEST, BEST_SEARCHED):
                row["origin"] = record.strategy or "searched"
                row["seed_claim"] = _seed_claim(row, budget)
            elif entry != "baseline":
                row["dominated_by"] = _dominating(complete, record)
            rows.append(row)
    return pd.DataFrame(rows)


def _metrics_row(model: str, entry: str, r: TrialRecord, reference: TrialRecord) -> dict[str, Any]:
    m, ref = r.metrics, reference.metrics

    def change(key: str) -> float:
        return 100 * (m[key] / ref[key] - 1)

    def points(key: str) -> float | None:  # None: not scored (its test-split task died)
        return 100 * (m[key] - ref[key]) if key in m and key in ref else None

    return {
        "model": model,
        "entry": entry,
        "trial": r.number,
        "params_m": m["params"] / 1e6,
        "macs_m": m["macs"] / 1e6,
        "size_mb": m["size_bytes"] / 2**20,
        "test_top1": r.metric("test_top1", 100),
        "test_macro_f1": r.metric("test_macro_f1", 100),
        "val_top1": 100 * m["val_top1"],
        "latency_ms": m["latency_ms"],
        "energy_mj": m["energy_mj"],
        "host_ms": m["host_latency_ms"],
        "size_change_pct": change("size_bytes"),
        "latency_change_pct": change("latency_ms"),
        "energy_change_pct": change("energy_mj"),
        "test_top1_change_pts": points("test_top1"),
        "val_top1_change_pts": 100 * (m["val_top1"] - ref["val_top1"]),
        "precisions": r.precision_mix,
        "mean_prune": r.mean_prune,
    }


def _dominating(complete: list[TrialRecord], recipe: TrialRecord) -> str:
    """Which trial dominates ``recipe`` on validation accuracy and predicted latency: a searched one if any (the one
    with the best test accuracy), else another recipe; with whether it also does on test. ``none`` if none does."""
    on_val = [r for r in complete if r.number != recipe.number and dominates(r, recipe, "val_top1")]
    if not on_val:
        return "none"
    searched = [r for r in on_val if not r.strategy]
    pick = max(searched or on_val, key=lambda r: (r.metrics.get("test_top1", -1.0), -r.metrics["latency_ms"]))
    if "test_top1" not in pick.metrics or "test_top1" not in recipe.metrics:
        test = "test not scored"
    else:
        test = "also on test" if dominates(pick, recipe, "test_top1") else "not on test"
    return f"{pick.number} ({pick.strategy or 'searched'}, {test})"


def _seed_claim(row: dict[str, Any], limit: float) -> str:
    """Whether the best point is -60% size and -30% latency within ``limit`` points on val, and also on test."""
    if row["size_change_pct"] > SEED_SIZE or row["latency_change_pct"] > SEED_LATENCY:
        return "no"
    if row["val_top1_change_pts"] < -limit:
        return "no"
    if row["test_top1_change_pts"] is None:
        return "on val only (test not scored)"
    return "yes" if row["test_top1_change_pts"] >= -limit else "on val only"


def write_outputs(
    table: pd.DataFrame,
    studies: dict[str, optuna.Study],
    runs: list[ModelRun],
    out: Path,
    hw: str,
    config: RunConfig,
    total_s: float,
) -> list[Path]:
    """compare-HW.csv, compare-HW.md and compare-HW.html (the plot) in ``out``, each written atomically."""
    from core.files import write_text_files

    stem = out / f"compare-{safe_name(hw.replace(':', '-'))}"
    return write_text_files(
        {
            stem.with_suffix(".csv"): table.to_csv(index=False, float_format="%.4g"),
            stem.with_suffix(".md"): markdown(table, runs, hw, config, total_s),
            stem.with_suffix(".html"): plot_page(table, studies, hw),
        }
    )


SHOWN = {
    "model": "model",
    "entry": "entry",
    "trial": "trial",
    "params_m": "params M",
    "macs_m": "MMACs",
    "size_mb": "size MB",
    "test_top1": "test top-1 %",
    "test_macro_f1": "macro-F1 %",
    "latency_ms": "latency ms",
    "energy_mj": "energy mJ",
    "host_ms": "host ms",
    "size_change_pct": "size Δ%",
    "latency_change_pct": "latency Δ%",
    "test_top1_change_pts": "top-1 Δpts",
    "dominated_by": "dominated by",
    "origin": "origin",
    "seed_claim": "seed claim",
}
TERMINAL = (
    "model",
    "entry",
    "size MB",
    "test top-1 %",
    "latency ms",
    "host ms",
    "size Δ%",
    "latency Δ%",
    "top-1 Δpts",
    "dominated by",
    "origin",
    "seed claim",
)


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """The columns people read, rounded, with short headers."""
    shown = table[[c for c in SHOWN if c in table.columns]].rename(columns=SHOWN).copy()
    return shown.round(3).fillna("")


def recovery_text(config: RunConfig) -> str:
    """The recovery fine-tune of a run, in words."""
    length = (
        f"{config.finetune_steps} optimizer steps over the whole train split"
        if config.finetune_steps
        else f"{config.finetune_epochs} epochs"
    )
    text = f"{length} at lr {config.finetune_lr:g}{', distilled from the baseline' if config.distill else ''}"
    if config.cheap_steps:
        text += f" (searched trials first at {config.cheap_steps} steps; the full fine-tune if they could reach the front)"
    return text


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """The lines of a Markdown table of ``frame``."""
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def markdown(table: pd.DataFrame, runs: list[ModelRun], hw: str, config: RunConfig, total_s: float) -> str:
    """The comparison as Markdown: settings, the table, and what each model cost."""
    lines = [
        f"# Comparison on {hw}: {config.data}" + (f", {config.train_size} training images" if config.train_size else ""),
        "",
        f"Budget: validation top-1 within {config.max_accuracy_drop} points of the baseline; {config.trials} trials per "
        f"model (fixed recipes included); baselines by `search train` (input size and epochs per model in "
        f"docs/baselines.md), recovery fine-tune {recovery_text(config)}. Δ columns are vs each model's baseline; "
        "latency and energy are predicted on "
        f"{hw}, host ms is measured on the machine that ran the trial (onnxruntime, one thread).",
        "",
        *markdown_table(shown_table(table)),
        "",
        "| model | study | wall s (all runs) | finished trials | driver peak MB | worker peak MB |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        worker = f"{run.worker_peak_mb:.0f}" if run.worker_peak_mb is not None else "n/a"
        lines.append(f"| {run.model} | {run.study} | {run.wall_s:.0f} | {run.trials} | {run.driver_peak_mb:.0f} | {worker} |")
    lines += ["", f"Whole comparison: {sum(r.wall_s for r in runs):.0f} s over every run ({total_s:.0f} s this run).", ""]
    return "\n".join(lines)


def plot_page(table: pd.DataFrame, studies: dict[str, optuna.Study], hw: str) -> str:
    """One self-contained HTML plot: test top-1 against predicted latency, every model's front and recipes."""
    import plotly.graph_objects as go
    from plotly.io import to_html

    from search.study.front import front_records

    fig = go.Figure()
    if table.empty:
        return to_html(fig, include_plotlyjs=True, full_html=True)
    palette = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
    for index, (model, rows) in enumerate(table.groupby("model", sort=False)):
        colour = palette[index % len(palette)]
        scored = [r for r in front_records(studies[str(model)]) if "test_top1" in r.metrics]
        front = sorted(scored, key=lambda r: r.metrics["latency_ms"])
        fig.add_trace(
            go.Scatter(
                x=[r.metrics["latency_ms"] for r in front],
                y=[100 * r.metrics["test_top1"] for r in front],
                mode="lines+markers",
                line={"color": colour, "dash": "dot"},
                marker={"color": colour, "size": 6},
                name=f"{model}: front",
                legendgroup=str(model),
                hovertext=[f"{model} trial {r.number}: {r.precision_mix}, prune {r.mean_prune:.2f}" for r in front],
            )
        )
        for entry, row in rows.set_index("entry").iterrows():
            symbol = {BEST: "star", BEST_SEARCHED: "x", "baseline": "circle"}.get(str(entry), "diamond")
            fig.add_trace(
                go.Scatter(
                    x=[row["latency_ms"]],
                    y=[row["test_top1"]],
                    mode="markers",
                    marker={"color": colour, "symbol": symbol, "size": 9 if symbol == "diamond" else 13},
                    name=f"{model}: {entry}",
                    legendgroup=str(model),
                    hovertext=f"{model} {entry} (trial {row['trial']}): {row['precisions']}",
                )
            )
    fig.update_layout(
        title=f"test top-1 vs predicted latency on {hw}: dotted the front (chosen on val), circle baseline, "
        "diamonds fixed recipes, star the fastest front point, x the fastest searched trial (both within budget)",
        xaxis={"title": f"predicted latency on {hw} (ms)", "type": "log"},
        yaxis={"title": "test top-1 (%)"},
        template="plotly_white",
        height=700,
    )
    return to_html(fig, include_plotlyjs=True, full_html=True)


def print_comparison(console: Console, table: pd.DataFrame, runs: list[ModelRun], hw: str) -> None:
    """The comparison and the cost per model on the terminal."""
    from search.analysis.console import print_frame

    shown = shown_table(table)
    print_frame(console, shown[[c for c in TERMINAL if c in shown.columns]], f"comparison on {hw} (all columns: the CSV)")
    for run in runs:
        worker = f", workers {run.worker_peak_mb:.0f} MB" if run.worker_peak_mb is not None else ""
        console.print(
            f"{run.model}: {run.wall_s:.0f} s, {run.trials} trials, peak RSS driver {run.driver_peak_mb:.0f} MB{worker}"
        )
