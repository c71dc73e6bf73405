"""onnxruntime sessions for the shipped ONNX graph: predictions, accuracy metrics and measured latency."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnxruntime

    from spaces.finetune import ImageDataset


def session(model_bytes: bytes, threads: int = 1) -> onnxruntime.InferenceSession:
    """A CPU session on ``model_bytes`` with ``threads`` intra-op threads (warnings silenced)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


# Input bytes per inference batch: the activations of a batch grow with its pixels, so large images go in fewer
# at a time (at 224 px a batch of 256 held several GB of activations; at 32 px the batch stays 256).
BATCH_INPUT_BYTES = 16 * 2**20


def batch_size_for(dataset: ImageDataset, most: int = 256) -> int:
    """Images per inference batch for ``dataset``: ``most``, or fewer where they hold more than BATCH_INPUT_BYTES."""
    if len(dataset) == 0:
        return most
    pixels = int(np.prod(tuple(dataset[0][0].shape)))
    return max(1, min(most, BATCH_INPUT_BYTES // (4 * pixels)))


def predict(
    sess: onnxruntime.InferenceSession, dataset: ImageDataset, batch_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every sample of ``dataset`` (``batch_size`` images at a time, default by their size)."""
    from torch.utils.data import DataLoader

    name = sess.get_inputs()[0].name
    logits, labels = [], []
    batch = batch_size or batch_size_for(dataset)
    for images, targets in DataLoader(dataset, batch_size=batch):  # type: ignore[arg-type]
        logits.append(sess.run(None, {name: images.numpy()})[0])
        labels.append(targets.numpy())
    return np.concatenate(logits), np.concatenate(labels)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy, macro-F1 and, with more than 5 classes, top-5 accuracy (all in [0, 1])."""
    if not np.isfinite(logits).all():
        raise FloatingPointError("the model outputs NaN or infinite logits")
    pred = logits.argmax(axis=1)
    classes = np.arange(logits.shape[1])
    f1 = []
    for c in classes:
        tp = np.sum((pred == c) & (labels == c))
        denom = np.sum(pred == c) + np.sum(labels == c)
        if denom:
            f1.append(2 * tp / denom)
    metrics = {"top1": float(np.mean(pred == labels)), "macro_f1": float(np.mean(f1))}
    if logits.shape[1] > 5:
        top5 = np.argsort(-logits, axis=1)[:, :5]
        metrics["top5"] = float(np.mean((top5 == labels[:, None]).any(axis=1)))
    return metrics


def evaluate(sess: onnxruntime.InferenceSession, dataset: ImageDataset) -> dict[str, float]:
    """Classification metrics of the session on ``dataset``."""
    return classification_metrics(*predict(sess, dataset))


def measure_latency(
    sess: onnxruntime.InferenceSession, input_shape: tuple[int, ...], warmup: int = 10, repeats: int = 50, budget_s: float = 2.0
) -> float:
    """Median wall time (ms) of one inference on a batch-1 input, after warm-up; stops early after ``budget_s``."""
    from core.timing import median_run_ms

    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    return median_run_ms(lambda: sess.run(None, {name: x}), warmup, repeats, budget_s)


def measure_rounds(
    graphs: Sequence[bytes], input_shapes: Sequence[tuple[int, ...]], threads: int = 1, rounds: int = 3
) -> list[float]:
    """Median latency (ms) of each graph over ``rounds`` interleaved rounds, each in a fresh session.

    Interleaving spreads a slow spell of a shared machine over every graph
    instead of one, and the median over rounds drops such spells.
    """
    runs: list[list[float]] = [[] for _ in graphs]
    for _ in range(rounds):
        for i, (graph, shape) in enumerate(zip(graphs, input_shapes, strict=True)):
            runs[i].append(measure_latency(session(graph, threads), shape, warmup=3, repeats=15, budget_s=5))
    return [statistics.median(r) for r in runs]
