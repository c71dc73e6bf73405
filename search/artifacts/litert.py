"""A trial as a LiteRT .tflite beside its ONNX graph: rebuilt, converted, its precisions set, scored and timed.

The plan's candidate is rebuilt from the study's uncompressed checkpoint and data (one thread, as a search
worker, so the fine-tune repeats the trial's), given the bias corrections NNCF made when it quantized the
trial's ONNX graph, converted by litert-torch and given its per-layer precisions by ai-edge-quantizer recipes
calibrated on the same images as the ONNX graph (``spaces.litert``). It is then scored
like the ONNX graph: accuracy on the test split in the LiteRT Interpreter, its agreement with the ONNX graph's
predictions on the same images, and host latency with XNNPACK beside onnxruntime's (one thread, medians of
interleaved rounds, on the CPU named in the result).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:
    from search.study.records import TrialRecord

TFLITE = "model.tflite"
ROUNDS = 3  # interleaved latency rounds per runtime


@dataclass(frozen=True)
class LiteRTScore:
    """How the .tflite of a trial compares with its ONNX graph, on the same test images and the same host."""

    test_images: int
    litert_top1: float
    onnx_top1: float
    agreement: float  # share of test images where both artifacts predict the same class
    litert_ms: float  # XNNPACK, 1 thread, median
    onnx_ms: float  # onnxruntime, 1 thread, median
    host: str
    op_types: dict[str, int]
    layer_types: dict[str, tuple[str, str]]  # plan layer -> (its precision, the type its weights have in the file)


def write_tflite(trial: TrialRecord, source: dict[str, Any], folder: Path) -> LiteRTScore:
    """Write ``folder/model.tflite`` for ``trial`` (a study's ``source``: model, checkpoint, data...) and score it
    against the trial's ONNX graph."""
    import onnx

    from search.artifacts.apply import load_uncompressed
    from search.data import parse_data
    from search.worker import limit_threads
    from spaces import litert
    from spaces.apply import prune_and_recover
    from spaces.plan import CompressionPlan, PlanError

    litert.require_litert()
    plan = CompressionPlan.from_dict(trial.plan)
    data = parse_data(str(source["data"]), source.get("input_size"), plan.recipe.seed, source.get("train_size"))
    limit_threads(1)
    model, splits = load_uncompressed(str(source["model"]), source.get("checkpoint"), data)
    candidate = prune_and_recover(plan, model, splits.train, data.input_size)
    try:
        written = litert.build_tflite(plan, candidate, onnx.load(trial.onnx), splits.train, data.input_size, folder / TFLITE)
    except PlanError as exc:
        raise UserError(f"trial {trial.number}: LiteRT export failed: {exc}") from None
    types = {layer: (item.precision, written[layer].weight_type) for layer, item in plan.layers.items()}
    return score_tflite(folder / TFLITE, Path(trial.onnx), splits.test, types)


def score_tflite(tflite: Path, onnx_path: Path, test_set: Any, layer_types: dict[str, tuple[str, str]]) -> LiteRTScore:
    """Accuracy, agreement and host latency of ``tflite`` beside ``onnx_path`` on ``test_set``."""
    from evaluators import litert_runtime, onnx_runtime
    from hw_profiles.host import describe, this_machine

    runner = litert_runtime.interpreter(tflite)
    logits, labels = litert_runtime.predict(runner, test_set)
    graph = onnx_path.read_bytes()
    session = onnx_runtime.session(graph)
    onnx_logits, _ = onnx_runtime.predict(session, test_set)
    shape = tuple(runner.get_input_details()[0]["shape"])
    litert_runs, onnx_runs = [], []
    for _ in range(ROUNDS):  # interleaved, so a slow spell of the machine hits both runtimes
        litert_runs.append(litert_runtime.measure_latency(litert_runtime.interpreter(tflite)))
        onnx_runs.append(onnx_runtime.measure_latency(onnx_runtime.session(graph), shape))
    return LiteRTScore(
        test_images=len(labels),
        litert_top1=onnx_runtime.classification_metrics(logits, labels)["top1"],
        onnx_top1=onnx_runtime.classification_metrics(onnx_logits, labels)["top1"],
        agreement=float((logits.argmax(1) == onnx_logits.argmax(1)).mean()),
        litert_ms=statistics.median(litert_runs),
        onnx_ms=statistics.median(onnx_runs),
        host=describe(this_machine()),
        op_types=litert_runtime.op_types(runner),
        layer_types=layer_types,
    )


def card_section(score: LiteRTScore) -> list[str]:
    """Markdown lines for the model card: the .tflite beside the ONNX graph."""
    ops = ", ".join(f"{name} {count}" for name, count in sorted(score.op_types.items()))
    kinds: dict[str, int] = {}
    for _, kind in score.layer_types.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    counts = ", ".join(f"{n} layers {k}" for k, n in kinds.items())
    return [
        "## LiteRT (`model.tflite`) beside the ONNX graph",
        "",
        "Same plan, rebuilt (with the biases NNCF corrected in the ONNX graph) and converted by litert-torch; per-layer "
        f"precisions by ai-edge-quantizer recipes (INT8 ranges by its own min/max calibration), read back from the file: "
        f"{counts} (FP16 layers store float16 weights and "
        "compute in FP32 unless XNNPACK's FP16 flag is set for the whole graph). Measured on this host: "
        f"{score.host}; 1 thread, median of {ROUNDS} interleaved rounds.",
        "",
        "| | LiteRT (XNNPACK) | ONNX (onnxruntime) |",
        "|---|---:|---:|",
        f"| test top-1 % ({score.test_images} images) | {100 * score.litert_top1:.2f} | {100 * score.onnx_top1:.2f} |",
        f"| host latency ms | {score.litert_ms:.4f} | {score.onnx_ms:.4f} |",
        "",
        f"Both predict the same class on {100 * score.agreement:.2f}% of the test images. Ops: {ops}.",
        "",
        "| layer | plan precision | weights in the .tflite |",
        "|---|---|---|",
        *(f"| {layer} | {plan} | {kind} |" for layer, (plan, kind) in score.layer_types.items()),
        "",
    ]
