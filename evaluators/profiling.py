"""Per-node kernel times of a graph in onnxruntime (its profiler)."""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

KERNEL_SUFFIX = "_kernel_time"


def profile_nodes(
    model_bytes: bytes, input_shape: tuple[int, ...], threads: int = 1, warmup: int = 5, repeats: int = 20
) -> dict[str, float]:
    """Median kernel time (ms) of each executed node over ``repeats`` runs with onnxruntime's profiler on.

    Whole-inference times are measured apart (``evaluators.onnx_runtime.measure_rounds``): timings taken
    next to a profiled session were seen to double at random.
    """
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "profile")
        sess = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(warmup + repeats):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    times: dict[str, list[float]] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith(KERNEL_SUFFIX):
            times.setdefault(event["name"][: -len(KERNEL_SUFFIX)], []).append(event["dur"] / 1000)
    return {node: statistics.median(ts[warmup:] or ts) for node, ts in times.items()}
