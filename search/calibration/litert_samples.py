"""Candidates timed as .tflite files in LiteRT (XNNPACK) on this machine: what a LiteRT host unit is fitted to.

Each candidate is a realised plan (``search.calibration.candidates``): its .tflite is built as ``search export --format
tflite`` builds one (litert-torch, then per-layer precisions by ai-edge-quantizer), and its ONNX graph, read
for the unit, is what the cost model predicts from. The files are timed in interleaved rounds, so a slow spell
of a shared machine spreads over every candidate instead of hitting one.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluators.calibration import Sample
    from hw_profiles.schema import Unit
    from search.calibration.candidates import RandomPlan


def time_tflites(paths: list[Path], threads: int, rounds: int) -> list[float]:
    """Median latency (ms) of each .tflite over ``rounds`` interleaved rounds, each in a fresh Interpreter."""
    from evaluators import litert_runtime

    runs: list[list[float]] = [[] for _ in paths]
    for _ in range(rounds):
        for i, path in enumerate(paths):
            runs[i].append(litert_runtime.measure_latency(litert_runtime.interpreter(path, threads), 3, 15, 5.0))
    return [statistics.median(r) for r in runs]


def litert_samples(
    plans: Iterable[RandomPlan], unit: Unit, threads: tuple[int, ...], rounds: int, log: Callable[[str], None]
) -> dict[int, list[Sample]]:
    """Per thread count, one Sample per plan: its ONNX graph read for ``unit`` and its .tflite's measured time.

    The second and later thread counts time every other plan only (enough to fit thread scaling).
    """
    from evaluators.calibration import Sample
    from evaluators.estimate import graph_for_unit
    from spaces.litert import build_tflite

    with tempfile.TemporaryDirectory() as scratch:
        built = []
        for i, drawn in enumerate(plans):
            path = Path(scratch) / f"{i}.tflite"
            build_tflite(drawn.plan, drawn.realised.candidate, drawn.realised.graph, drawn.data, drawn.input_size, path)
            label = f"{drawn.label}@{drawn.input_size}px"
            built.append((label, graph_for_unit(drawn.realised.graph, unit), path))
            log(f"  built {label}")
        out: dict[int, list[Sample]] = {}
        for n, count in enumerate(threads):
            chosen = built if n == 0 else built[::2]
            times = time_tflites([path for _, _, path in chosen], count, rounds)
            out[count] = [Sample(graph, ms, count, label) for (label, graph, _), ms in zip(chosen, times, strict=True)]
            for sample in out[count]:
                log(f"  {sample.label}: {sample.measured_ms:.3f} ms ({count} thread{'s' * (count > 1)})")
    return out
