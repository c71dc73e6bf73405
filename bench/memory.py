"""Predicted peak activation memory (evaluators.memory) against onnxruntime's measured peak, per model.

Two predictions per graph: on the device view (the QDQ graph as a device runtime runs it: what studies on phone
profiles record) and on the graph onnxruntime executes (the host profile's view: its fusions, NCHWc channel
blocks, layout reorders, INT8 ops it cannot fuse left in FP32); the ratio compares the second with the
measurement, since the measurement is onnxruntime's.

Each graph runs in a fresh process: onnxruntime with its arena and memory patterns off (each tensor is allocated
when written and freed after its last reader) and glibc told to map every block of 64 KB or more on its own
(``MALLOC_MMAP_THRESHOLD_``), so freeing returns memory and the process's resident peak during one run
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``) minus its resident size before the run is the
memory that run allocated at its peak. Two warm-up runs first, then the median of three measured runs. The
prediction leaves the graph input out (the caller's buffer, allocated before the run). Linux only.

    python bench/memory.py                        # the default models, FP32 and INT8, at 224
    python bench/memory.py --models resnet50 --precisions fp32

Which rows chose the model: mobilenetv2_100, resnet18 and efficientnet_lite0 (FP32) were measured before the
rule that activations run in place was written; those three and resnet50, mobilenetv3_large_100 and mnasnet_100
(FP32 and INT8) before the rule that adds run in place (ResNet-50 prompted it) and before the ratio was taken on
the onnxruntime view. They are calibration rows; every other row is a check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST_SEEN = ("mobilenetv2_100", "resnet18", "efficientnet_lite0", "resnet50", "mobilenetv3_large_100", "mnasnet_100")
SEEN = {(model, precision) for model in FIRST_SEEN for precision in ("fp32", "int8")}
MODELS = (
    *FIRST_SEEN,
    "resnet34",
    "efficientnet_b0",
    "densenet121",
    "regnetx_002",
    "mobilenetv2_050",
    "resnet26",
    "vgg11",
    "efficientnet_lite2",
    "mobilenetv3_small_100",
    "regnety_002",
)
MEASURE = """
import sys, numpy as np, onnxruntime as ort
def status(key):
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(key))
options = ort.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
options.enable_cpu_mem_arena = options.enable_mem_pattern = False
session = ort.InferenceSession(sys.argv[1], options, providers=['CPUExecutionProvider'])
size = int(sys.argv[2])
feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)}
for _ in range(2):
    session.run(None, feed)
for _ in range(3):
    open('/proc/self/clear_refs', 'w').write('5')
    before = status('VmRSS:')
    session.run(None, feed)
    print(status('VmHWM:') - before)
"""


def measured_peak(path: Path, size: int) -> float:
    """onnxruntime's resident peak above its size before one run (bytes), the median of three runs."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", MEASURE, str(path), str(size)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return statistics.median(float(line) for line in out.stdout.split())


def graph_of(model: str, precision: str, size: int, folder: Path) -> Path:
    """The model exported at ``size`` (random weights), all compute layers INT8 by NNCF for ``int8``."""
    import numpy as np
    import onnx
    import torch

    from search.models import build_model
    from spaces.onnx_export import compute_node_names, export_onnx
    from spaces.quantize import quantize_int8

    torch.manual_seed(0)
    graph = export_onnx(build_model(model, 1000).eval(), size)
    if precision == "int8":
        images = np.random.default_rng(0).standard_normal((8, 3, size, size)).astype(np.float32)
        graph = quantize_int8(graph, images, compute_node_names(graph), batch=8)
    path = folder / f"{model}-{precision}.onnx"
    onnx.save(graph, path)
    return path


def main() -> int:
    """Print predicted against measured peak activation memory for each model and precision."""
    import onnx

    from bench.common import host_line, markdown_table
    from evaluators.estimate import graph_for_unit
    from evaluators.graph import read_graph
    from evaluators.memory import estimate_memory
    from hw_profiles import load_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    host = load_profile("host")[1]  # its graph view is the one onnxruntime executes (fusions, NCHWc blocks, reorders)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models.split(","):
            for precision in args.precisions.split(","):
                path = graph_of(model, precision, args.size, Path(scratch))
                graph = onnx.load(path)
                device = estimate_memory(read_graph(graph), count_input=False)
                executed = estimate_memory(graph_for_unit(graph, host), count_input=False)
                measured = measured_peak(path, args.size)
                rows.append(
                    {
                        "model": model,
                        "precision": precision,
                        "device_view_mb": round(device.peak_activation_bytes / 1e6, 3),
                        "onnxruntime_view_mb": round(executed.peak_activation_bytes / 1e6, 3),
                        "measured_mb": round(measured / 1e6, 3),
                        "ratio": round(executed.peak_activation_bytes / measured, 3),
                        "peak_at": executed.peak_op,
                        "row": "calibration" if (model, precision) in SEEN else "check",
                    }
                )
                print(rows[-1], flush=True)
    title = f"peak activation memory at {args.size}: predicted (evaluators.memory) vs onnxruntime measured; {host_line()}"
    print("\n".join(markdown_table(title, rows)))
    for precision in args.precisions.split(","):
        checks = [r for r in rows if r["row"] == "check" and r["precision"] == precision]
        within = sum(abs(float(str(r["ratio"])) - 1) <= 0.10 for r in checks)
        print(f"{precision} checks within +-10%: {within}/{len(checks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
