"""`search train`: the uncompressed baseline of a model on a data set, trained once by a standard recipe and cached
where `search run` and `search compare` find it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class TrainConfig:
    """What to train, on what, where it is cached, and how: ``changes`` to the baseline recipe (None: the
    default for the model, data and train size; see ``search.models.baseline_recipe``)."""

    model: str
    data: str
    input_size: int | None
    train_size: int | None
    seed: int
    run_dir: str
    device: str
    changes: dict[str, Any]


def run_train(config: TrainConfig, console: Console) -> int:
    """Train (or resume, or reuse) the baseline; print its FP32 ONNX accuracy and how to use it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from core.files import atomic_target
    from search.data import load_splits, parse_data
    from search.driver.prepare import reference_accuracy
    from search.models import baseline_recipe, check_input_size, check_model_name, prepare_weights
    from search.models.factory import build_model
    from search.models.weights import record_path
    from spaces.finetune import resolve_device

    check_model_name(config.model)
    device = resolve_device(config.device)
    data = parse_data(config.data, config.input_size, config.seed, config.train_size)
    splits = load_splits(data)
    model = build_model(config.model, splits.num_classes)
    check_input_size(model, config.model, data.input_size)
    recipe = baseline_recipe(data, model=model, train_images=len(splits.train), **config.changes)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"training {config.model}", total=None, loss=float("nan"))

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=loss)

        weights = prepare_weights(
            config.model,
            splits,
            data,
            Path(config.run_dir) / "baselines",
            recipe,
            device=device,
            log=console.print,
            on_step=on_step,
        )
    reference = reference_accuracy(weights.model, splits, data.input_size)
    record_file = record_path(Path(weights.source))
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    if "onnx_test_top1" not in record:
        record.update(onnx_val_top1=reference["val_top1"], onnx_test_top1=reference["test_top1"])
        with atomic_target(record_file) as temporary:
            temporary.write_text(json.dumps(record, indent=1) + "\n")
    spent = sum(record.get("epoch_seconds", []))
    console.print(
        f"baseline {config.model} on {data.label} at {data.input_size} px: val {100 * reference['val_top1']:.2f}%, "
        f"test {100 * reference['test_top1']:.2f}% (FP32 ONNX in onnxruntime); trained in {spent / 60:.1f} min "
        f"on {record.get('device', device)} ({record.get('cpu', 'unknown CPU')}); this command took "
        f"{time.perf_counter() - started:.0f} s"
    )
    console.print(f"weights: {weights.source}")
    console.print(
        f"use it: search run --model {config.model} --data {config.data} --input-size {data.input_size} "
        f"--checkpoint {weights.source}"
    )
    return 0
