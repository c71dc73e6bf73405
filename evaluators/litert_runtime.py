"""The LiteRT Interpreter (XNNPACK, as Android's CPU runs a .tflite) on an exported .tflite: predictions and latency.

Needs the ``[litert]`` extra (ai-edge-litert), imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from spaces.finetune import ImageDataset


def interpreter(path: str | Path, threads: int = 1) -> Any:
    """An Interpreter on the .tflite at ``path`` with ``threads`` threads, XNNPACK applied (LiteRT's default)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path), num_threads=threads)
    runner.allocate_tensors()
    return runner


def op_types(runner: Any) -> dict[str, int]:
    """How many ops of each type the model has (the XNNPACK delegate's own DELEGATE entries left out)."""
    counts: dict[str, int] = {}
    for op in runner._get_ops_details():  # the interpreter's only listing of ops
        if op["op_name"] != "DELEGATE":
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def predict(runner: Any, dataset: ImageDataset) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every sample of ``dataset``, one image per invoke (the graph's batch is 1)."""
    source, target = runner.get_input_details()[0]["index"], runner.get_output_details()[0]["index"]
    logits, labels = [], []
    for i in range(len(dataset)):
        image, label = dataset[i]
        runner.set_tensor(source, np.asarray(image, dtype=np.float32)[None])
        runner.invoke()
        logits.append(runner.get_tensor(target)[0].copy())
        labels.append(int(label))
    return np.stack(logits), np.asarray(labels)


def measure_latency(runner: Any, warmup: int = 10, repeats: int = 50, budget_s: float = 2.0) -> float:
    """Median wall time (ms) of one invoke on a fixed random input, after warm-up; stops early after ``budget_s``."""
    from core.timing import median_run_ms

    detail = runner.get_input_details()[0]
    runner.set_tensor(detail["index"], np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32))
    return median_run_ms(runner.invoke, warmup, repeats, budget_s)
