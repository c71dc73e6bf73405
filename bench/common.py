"""What the search benchmarks share: the problems they run, the hypervolume of a front, running one study quietly."""

from __future__ import annotations

import os
import platform
import resource
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from search.config import RunConfig

if TYPE_CHECKING:
    import optuna

ROOT = Path(__file__).resolve().parent.parent

# Problems: the default one (`search run --hw pixel7`) and a larger one (ResNet-18 on Fashion-MNIST).
PROBLEMS: dict[str, RunConfig] = {
    "default": RunConfig(),
    # 1,000 training images and a one-epoch recovery fine-tune keep a ResNet-18 trial near 15 s on one core.
    "resnet18-fashion": RunConfig(model="resnet18", data="fashion-mnist", train_size=1000, baseline_epochs=15, finetune_epochs=1),
    # The strong-baseline problems (pass --checkpoint of `search train`'s weights): the whole train split, a
    # 1.0-point budget and recovery fine-tunes of 400 steps, as `search compare` runs them.
    "mobilenetv2-fashion": RunConfig(
        model="mobilenetv2_100",
        data="fashion-mnist",
        input_size=64,
        baseline_epochs=8,
        finetune_steps=400,
        max_accuracy_drop=1.0,
    ),
    "hl_cnn-fashion": RunConfig(
        model="hl_cnn", data="fashion-mnist", input_size=32, baseline_epochs=15, finetune_steps=400, max_accuracy_drop=1.0
    ),
}
# A front point counts only if it keeps val top-1 within this many points of the uncompressed model and is faster
# than it: the hypervolume's reference point is (uncompressed val top-1 - ACCURACY_FLOOR, uncompressed latency).
ACCURACY_FLOOR = 5.0


@dataclass(frozen=True)
class Point:
    """One finished trial as the search saw it: val top-1 in percent and predicted latency in ms."""

    accuracy: float
    latency: float
    recipe: bool = False  # an enqueued fixed recipe (the warm start), not a trial the sampler chose


def hypervolume(points: list[Point], reference: Point) -> float:
    """Area (points x ms) dominated by ``points`` and bounded by ``reference`` (accuracy up, latency down)."""
    inside = [p for p in points if p.accuracy > reference.accuracy and p.latency < reference.latency]
    inside.sort(key=lambda p: p.latency)
    area, best = 0.0, reference.accuracy
    for i, p in enumerate(inside):  # sweep from fastest to slowest; each step adds the strip up to the next point
        best = max(best, p.accuracy)
        right = inside[i + 1].latency if i + 1 < len(inside) else reference.latency
        area += (best - reference.accuracy) * (right - p.latency)
    return area


def study_points(study: optuna.Study) -> list[Point | None]:
    """Every trial in number order: its point, or None if it failed (a failed trial still spent its budget). A trial
    interrupted by stopping the benchmark is left out: it was queued again and counted once, as the study does."""
    from optuna.trial import TrialState

    from search.study import INTERRUPTED

    out: list[Point | None] = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        metrics = trial.user_attrs
        if metrics.get("fail_reason") == INTERRUPTED:
            continue
        ok = trial.state == TrialState.COMPLETE and "val_top1" in metrics
        out.append(Point(100 * metrics["val_top1"], metrics["latency_ms"], bool(metrics.get("baseline"))) if ok else None)
    return out


def reference_point(study: optuna.Study) -> Point:
    """The problem's fixed reference point, from its uncompressed trial (the same in every study of the problem)."""
    for trial in study.trials:
        metrics = trial.user_attrs
        if metrics.get("baseline") == "uncompressed" and "val_top1" in metrics:
            return Point(100 * metrics["val_top1"] - ACCURACY_FLOOR, metrics["latency_ms"])
    raise ValueError(f"study {study.study_name} has no finished uncompressed trial")


def curve(points: list[Point | None], reference: Point, budgets: list[int]) -> dict[int, float]:
    """Hypervolume after the first ``n`` trials, for each budget ``n`` the study reached."""
    return {n: hypervolume([p for p in points[:n] if p], reference) for n in budgets if n <= len(points)}


def run_quietly(config: RunConfig, log: Path) -> None:
    """``search run`` as configured, its console output appended to ``log``; raises on a non-zero exit."""
    from rich.console import Console

    from search.driver.run import run_search

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as stream:
        code = run_search(replace(config), Console(file=stream, width=160))
    if code:
        raise RuntimeError(f"search run exited {code}: see {log}")


def host_line() -> str:
    """The CPU these numbers come from (they hold for it, not for another machine)."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
        model = " ".join([names[0] if names else "", *sorted(flags & {"avx2", "avx512f", "avx512_vnni", "amx_tile"})])

    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def peak_rss_mb() -> float:
    """Peak resident memory of this process (the driver) so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_table(title: str, rows: list[dict[str, object]]) -> list[str]:
    """``title``, a blank line and ``rows`` as a Markdown table (columns in order of first appearance)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [
        title,
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows),
    ]
