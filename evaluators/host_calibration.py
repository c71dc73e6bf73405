"""Calibrate the host profile: profile graphs in onnxruntime on this machine and fit the cost model to them.

Three stages, so each parameter is fitted to the data that determines it:
kernel parameters (rates, efficiencies, bandwidths) to onnxruntime's per-node
kernel times; per-op and per-inference overheads to whole-graph times (the
profiler's own per-node cost is not in them); thread scaling to whole-graph
times with two threads. The caller builds the candidate graphs
(``search.candidates``); the architectures it uses differ from those the
benchmark checks (MobileNetV2, EfficientNet-Lite0, ResNet-18).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evaluators.calibration import FitResult, Sample, errors, fit, get_value, with_values
from hw_profiles.host import describe, this_machine
from hw_profiles.schema import Unit

KERNEL_PARAMS = [
    "gmacs.fp32",
    "gmacs.int8",
    "kind_efficiency.conv",
    "kind_efficiency.depthwise",
    "kind_efficiency.gemm",
    "kind_efficiency.grouped",
    "kind_efficiency.im2col",
    "precision_kind_efficiency.int8.conv",
    "precision_kind_efficiency.int8.depthwise",
    "precision_kind_efficiency.int8.im2col",
    "vector_gops.fp32",
    "vector_gops.int8",
    "vector_kind_efficiency.copy",
    "vector_kind_efficiency.convert",
    "vector_kind_efficiency.pool",
    "vector_kind_efficiency.reduce",
    "vector_kind_efficiency.activation",
    "vector_kind_efficiency.epilogue",
    "vector_kind_efficiency.gather",
    "unaligned_efficiency.fp32",
    "unaligned_efficiency.int8",
    "depthwise_unaligned_efficiency.int8",
    "op_efficiency.MaxPool:int8",
    "overhead_us",
    "cache_gbs",
    "dram_gbs",
]
OVERHEAD_PARAMS = ["overhead_us", "inference_overhead_us"]
# A LiteRT unit is fitted to whole-graph times (its Python Interpreter has no per-op profiler): few numbers, each
# determined by graphs that differ in it: kernel micro-benchmarks (one kind of layer each, FP32 and INT8, large
# and small inputs) and random plans of whole models at two input sizes.
WHOLE_GRAPH_PARAMS = [
    "gmacs.fp32",
    "gmacs.int8",
    "kind_efficiency.conv",
    "kind_efficiency.depthwise",
    "precision_kind_efficiency.int8.conv",
    "precision_kind_efficiency.int8.depthwise",
    "overhead_us",
    "inference_overhead_us",
    "cache_gbs",
    "dram_gbs",
]
THREAD_PARAMS = ["thread_efficiency", "thread_sync_us"]


@dataclass(frozen=True)
class Candidate:
    """One compressed graph to measure, and how it was drawn."""

    label: str
    onnx_bytes: bytes
    input_size: int


@dataclass(frozen=True)
class HostCalibration:
    """The calibrated unit, what it was fitted on, and its fit errors per stage."""

    unit: Unit
    description: str
    stages: dict[str, FitResult]


def scale_to_total(node_ms: dict[str, float], total_ms: float) -> dict[str, float]:
    """Node times rescaled to sum to the measured total.

    The profiler adds a few microseconds per node, and whole profiled runs were
    seen to slow down by up to 2.7x at random; the split of time across nodes
    is kept, its sum is taken from the unprofiled, interleaved measurement.
    """
    scale = total_ms / sum(node_ms.values())
    return {node: ms * scale for node, ms in node_ms.items()}


def measure(candidates: list[Candidate], threads: int, log: Callable[[str], None], rounds: int = 3) -> list[Sample]:
    """Profile each candidate's nodes, then time every candidate in interleaved rounds; one Sample per candidate."""
    import onnx

    from evaluators.onnx_runtime import measure_rounds
    from evaluators.profiling import profile_nodes
    from evaluators.runtime_graph import onnxruntime_graph, read_executed_graph

    shapes = [(1, 3, c.input_size, c.input_size) for c in candidates]
    nodes = [profile_nodes(c.onnx_bytes, shape, threads=threads) for c, shape in zip(candidates, shapes, strict=True)]
    totals = measure_rounds([c.onnx_bytes for c in candidates], shapes, threads, rounds)
    samples = []
    for candidate, node_ms, total in zip(candidates, nodes, totals, strict=True):
        graph = read_executed_graph(onnxruntime_graph(onnx.load_from_string(candidate.onnx_bytes)))
        samples.append(Sample(graph, total, threads, candidate.label, scale_to_total(node_ms, total)))
        log(f"  {candidate.label}: {total:.2f} ms ({threads} thread{'s' * (threads > 1)})")
    return samples


def fit_threads(unit: Unit, threaded: list[Sample], source: str, stages: dict[str, FitResult]) -> Unit:
    """``unit`` with its thread scaling fitted to ``threaded`` (the fit recorded in ``stages``); as it is without."""
    if not threaded:
        return unit
    stages["threads"] = fit(unit, threaded, THREAD_PARAMS, source)
    return stages["threads"].unit


def calibrate_whole_graphs(
    unit: Unit, single: list[Sample], threaded: list[Sample], params: list[str], command: str, runtime: str, source: str
) -> HostCalibration:
    """Fit ``params`` of ``unit`` (e.g. :data:`WHOLE_GRAPH_PARAMS`) to whole-graph times on one thread (``single``),
    then its thread scaling to ``threaded`` (if any); ``command`` and ``runtime`` (what measured them) go into the
    description."""
    stages = {"whole graphs": fit(unit, single, params, source)}
    fitted = stages["whole graphs"].unit
    # a precision the runtime computes in another (XNNPACK's FP16 layers in FP32) shows that one's rate
    runs_as = {f"gmacs.{p}": get_value(fitted, f"gmacs.{q}") for p, q in unit.runs_as.items() if p in unit.gmacs}
    fitted = fit_threads(with_values(fitted, runs_as, source), threaded, source, stages)
    after = errors(fitted, single)
    description = (
        f"`{command}`: {runtime} on {describe(this_machine())}, {len(single)} whole graphs "
        f"(kernel micro-benchmarks and random plans); fit on these graphs: median |error| {after['median_abs_pct']:.1f}%, "
        f"{100 * after['within_10pct']:.0f}% within +-10%"
    )
    return HostCalibration(fitted, description, stages)


def calibrate_host(
    unit: Unit,
    candidates: list[Candidate],
    architectures: list[str],
    input_size: int,
    source: str,
    log: Callable[[str], None],
) -> HostCalibration:
    """Profile ``candidates`` (random plans of ``architectures``) on this machine and fit ``unit`` in three stages.

    ``source``: the profile's source key the fitted numbers cite.
    """
    log(f"profiling {len(candidates)} graphs ({', '.join(architectures)}) in onnxruntime")
    samples = measure(candidates, 1, log)
    kernels = fit(unit, samples, KERNEL_PARAMS, source, per_op=True)
    overheads = fit(kernels.unit, samples, OVERHEAD_PARAMS, source)
    stages = {"kernels": kernels, "overheads": overheads}
    threaded = []
    if unit.max_threads > 1:
        threaded = measure(candidates[:: max(1, len(candidates) // 8)], min(2, unit.max_threads), log)
    fitted = fit_threads(overheads.unit, threaded, source, stages)
    single = errors(fitted, samples)
    description = (
        f"`search calibrate --hw host`: onnxruntime on {describe(this_machine())}, "
        f"{len(samples)} graphs at {input_size}x{input_size} ({', '.join(architectures)}, random plans), "
        f"{sum(len(s.op_ms) for s in samples)} profiled ops; fit on these graphs: median |error| "
        f"{single['median_abs_pct']:.1f}%, {100 * single['within_10pct']:.0f}% within +-10%"
    )
    return HostCalibration(fitted, description, stages)
