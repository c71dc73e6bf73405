"""Per-layer sensitivity: the validation accuracy change when one layer alone changes precision or is pruned.

Each change is realised on the uncompressed model exactly as a trial would
(INT8 by the study's quantizer, FP16 by casts, pruning by Torch-Pruning on the
layer's coupled group, without a recovery fine-tune) and scored on the shipped
ONNX graph in onnxruntime. Results are cached in the study's folder
(``sensitivity.json``), keyed by everything they depend on; ``seed-hybrid``
reads the INT8 column.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.precisions import PRECISIONS, by_precision
from search.config import study_folder

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from search.config import RunConfig
    from search.driver.inputs import Inputs
    from search.driver.prepare import Prepared

PRUNE = "prune"
CACHE_FILE = "sensitivity.json"
DEFAULT_PRUNE_RATIO = 0.5


def change_name(change: str, prune_ratio: float) -> str:
    """Column name of a change: the precision name, or ``prune-0.5`` for pruning by half."""
    return f"{PRUNE}-{prune_ratio:g}" if change == PRUNE else change


def check_changes(changes: list[str], lower: list[str]) -> None:
    """Refuse a change that is neither ``prune`` nor one of the ``lower`` precisions the unit runs."""
    for change in changes:
        if change != PRUNE and change not in lower:
            raise UserError(f"--changes: '{change}' is not one of {', '.join([*lower, PRUNE])} on this unit")


def measure(
    prepared: Prepared, size: int, changes: list[str], prune_ratio: float, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One row per (layer, change): ``layer``, ``change``, ``val_top1`` and ``change_pts`` (points vs uncompressed)."""
    import torch

    from evaluators.onnx_runtime import evaluate, session
    from spaces.apply import calibration_images
    from spaces.onnx_export import export_onnx
    from spaces.pruning import prune
    from spaces.realise import Calibration, realise_precisions

    space, splits, model = prepared.space, prepared.splits, prepared.weights.model
    recipe = space.recipe
    threads = os.cpu_count() or 1
    fp32 = export_onnx(copy.deepcopy(model).eval(), size)
    images = functools.cache(lambda: calibration_images(splits.train, recipe.calibration_size, recipe.seed))  # drawn once
    calibration = Calibration(images, None, recipe.quantizer)
    reference = prepared.reference["val_top1"]

    def score(graph_bytes: bytes) -> float:
        return evaluate(session(graph_bytes, threads), splits.val)["top1"]

    rows = []
    for change in changes:
        if change == PRUNE:
            targets = [g.root for g in space.analysis.groups]
        else:
            targets = [layer for layer, choices in space.precisions.items() if change in choices]
        name = change_name(change, prune_ratio)
        log(f"sensitivity {name}: {len(targets)} layers")
        for layer in targets:
            if change == PRUNE:
                candidate = copy.deepcopy(model).eval()
                prune(candidate, {layer: prune_ratio}, torch.zeros(1, 3, size, size), recipe.round_to)
                graph = export_onnx(candidate, size)
            else:
                graph = realise_precisions(copy.deepcopy(fp32), {change: [layer]}, calibration)
            top1 = score(graph.SerializeToString())
            rows.append({"layer": layer, "change": name, "val_top1": top1, "change_pts": 100 * (top1 - reference)})
    return rows


def cache_key(inputs: Inputs, prepared: Prepared) -> dict[str, Any]:
    """What a sensitivity table depends on: the weights, the data, the layers and their choices, and how a change is
    realised (calibration, quantizer, channel rounding); not the search's budgets or its recovery fine-tune."""
    recipe = prepared.space.recipe
    return {
        "checkpoint_sha256": prepared.weights.sha256,
        "data": inputs.data.label,
        "train_size": inputs.data.train_size,
        "input_size": inputs.data.input_size,
        "groups": [[g.root, list(g.members)] for g in prepared.space.analysis.groups],
        "precisions": {layer: list(choices) for layer, choices in prepared.space.precisions.items()},
        "realised": [recipe.calibration_size, recipe.seed, recipe.quantizer, recipe.round_to],
    }


def sensitivity(
    inputs: Inputs, prepared: Prepared, changes: list[str], prune_ratio: float, console: Console
) -> list[dict[str, Any]]:
    """Rows of the requested changes, measured now or read from the study folder's cache (then extended)."""
    from core.files import atomic_target

    path: Path = study_folder(inputs.run_dir, inputs.study_name) / CACHE_FILE
    key = cache_key(inputs, prepared)
    cached: list[dict[str, Any]] = []
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("key") == key:
            cached = data["rows"]
    have = {row["change"] for row in cached}
    missing = [c for c in changes if change_name(c, prune_ratio) not in have]
    if missing:
        cached = cached + measure(prepared, inputs.data.input_size, missing, prune_ratio, console.print)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(path) as temporary:
            temporary.write_text(json.dumps({"key": key, "rows": cached}, indent=1))
    wanted = {change_name(c, prune_ratio) for c in changes}
    return [row for row in cached if row["change"] in wanted]


def int8_sensitivity(inputs: Inputs, prepared: Prepared, console: Console) -> dict[str, float]:
    """Layer -> validation top-1 change (points) when that layer alone runs INT8 (what ``seed-hybrid`` ranks by)."""
    from spaces.strategies import INT8

    rows = sensitivity(inputs, prepared, [INT8], DEFAULT_PRUNE_RATIO, console)
    return {row["layer"]: row["change_pts"] for row in rows}


def run_sensitivity(config: RunConfig, changes: list[str] | None, prune_ratio: float, out: str | None, console: Console) -> int:
    """`search sensitivity`: measure (or read cached) per-layer sensitivity; print it, write CSV and a plot."""
    from search.config import check_one_device
    from search.driver.inputs import resolve_inputs
    from search.driver.prepare import prepare

    if not 0 < prune_ratio < 1:
        raise UserError(f"--prune-ratio {prune_ratio} is outside (0, 1)")
    check_one_device(config, "search sensitivity")
    inputs = resolve_inputs(config)
    precisions = by_precision([p for p in inputs.unit.precisions if p in PRECISIONS])
    lower = precisions[1:]  # every precision the unit runs below its most precise one
    if changes is not None:
        check_changes(changes, lower)
    prepared = prepare(inputs, console)
    wanted = changes or [*lower, PRUNE]
    rows = sensitivity(inputs, prepared, wanted, prune_ratio, console)
    folder = Path(out) if out else study_folder(inputs.run_dir, inputs.study_name)
    written = write_sensitivity(rows, folder, f"{config.model} on {inputs.data.label}, {inputs.hw}")
    print_sensitivity(console, rows, prepared.reference["val_top1"])
    console.print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Layers as rows, changes as columns, values the validation top-1 change in points."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    wide = frame.pivot(index="layer", columns="change", values="change_pts")
    order = list(dict.fromkeys(frame["layer"]))
    return wide.reindex(order)[list(dict.fromkeys(frame["change"]))].reset_index()


def write_sensitivity(rows: list[dict[str, Any]], folder: Path, title: str) -> list[Path]:
    """sensitivity.csv (one row per layer and change) and sensitivity.html (grouped bars), written atomically."""
    import pandas as pd
    import plotly.graph_objects as go
    from plotly.io import to_html

    from core.files import write_text_files

    wide = table(rows)
    fig = go.Figure()
    for change in wide.columns[1:]:
        fig.add_trace(go.Bar(x=wide["layer"], y=wide[change], name=str(change)))
    fig.update_layout(
        title=f"validation top-1 change (points) when one layer alone changes: {title}",
        barmode="group",
        template="plotly_white",
        yaxis={"title": "change in val top-1 (points)"},
        height=600,
    )
    folder.mkdir(parents=True, exist_ok=True)
    return write_text_files(
        {
            folder / "sensitivity.csv": pd.DataFrame(rows).to_csv(index=False, float_format="%.4g"),
            folder / "sensitivity.html": to_html(fig, include_plotlyjs=True),
        }
    )


def print_sensitivity(console: Console, rows: list[dict[str, Any]], reference_top1: float) -> None:
    """The wide table on the terminal."""
    from search.analysis.console import print_frame

    print_frame(
        console,
        table(rows).round(2),
        f"val top-1 change in points per layer (uncompressed: {100 * reference_top1:.2f}%)",
    )
