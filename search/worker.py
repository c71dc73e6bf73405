"""What runs inside a Ray task: one trial's work. Realise the plan, score the shipped ONNX graph, time it.

The driver (``search.driver``) sends a :class:`TrialJob` and gets a :class:`TrialOutcome` back; this module
imports nothing of the driver, the study database or the CLI.
"""

from __future__ import annotations

import os
import resource
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.data import DataSpec

if TYPE_CHECKING:
    from core.timing import Stages
    from hw_profiles.schema import Profile
    from spaces.apply import Realised
    from spaces.plan import CompressionPlan


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild the uncompressed model in a worker (its weights travel separately)."""

    name: str
    num_classes: int
    input_size: int


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs for one candidate; plain data, pickled to Ray."""

    plan: dict[str, Any]
    model: ModelSpec
    data: DataSpec
    profile: Profile
    unit_name: str
    threads: int = 1
    test: bool = True
    litert_host: bool = False  # also time the candidate's .tflite with LiteRT's XNNPACK on this host
    device: str = "cpu"  # where the recovery fine-tune runs (cuda: the GPU Ray gave the task)


@dataclass
class TrialOutcome:
    """Metrics and the ONNX graph of a candidate, or the reason it failed."""

    metrics: dict[str, float] = field(default_factory=dict)
    precisions: dict[str, str] = field(default_factory=dict)
    onnx_bytes: bytes = b""
    error: str | None = None
    worker: str = ""
    test_error: str = ""  # why the test split could not be scored (the candidate itself stands)

    def with_test(self, test: TrialOutcome) -> TrialOutcome:
        """This outcome with the test-split metrics (and their seconds) of ``test``, or with its error noted."""
        if test.error:
            return TrialOutcome(self.metrics, self.precisions, self.onnx_bytes, worker=self.worker, test_error=test.error)
        metrics = {**self.metrics, **test.metrics, "seconds": self.metrics["seconds"] + test.metrics["seconds"]}
        return TrialOutcome(metrics, self.precisions, self.onnx_bytes, worker=self.worker)


def limit_threads(threads: int) -> None:
    """Keep torch (and OpenMP libraries) to ``threads`` so parallel trials do not fight over cores."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def score_graph(
    graph_bytes: bytes,
    profile: Profile,
    unit_name: str,
    splits: Any,
    input_size: int,
    threads: int = 1,
    stages: Stages | None = None,
    test: bool = True,
) -> tuple[dict[str, float], dict[str, str]]:
    """Score an ONNX graph: accuracy on val (and on test if ``test``) in onnxruntime, size, MACs, predicted and
    measured latency.

    Returns the metrics and the precision each compute layer runs in, as read from the graph. ``stages`` (if
    given) receives the seconds of accuracy (val), test, estimate and host_latency.
    """
    import onnx

    from core.timing import Stages
    from evaluators.estimate import estimate_model
    from evaluators.graph import COMPUTE, read_graph
    from evaluators.onnx_runtime import measure_latency, session

    stages = stages if stages is not None else Stages()
    with stages.stage("accuracy"):
        sess = session(graph_bytes, threads)
        metrics = split_metrics(sess, "val", splits.val)
    if test:
        with stages.stage("test"):
            metrics.update(split_metrics(sess, "test", splits.test))
    with stages.stage("estimate"):
        model = onnx.load_from_string(graph_bytes)
        metrics.update(estimate_model(model, profile, unit_name).summary())
    with stages.stage("host_latency"):
        metrics["host_latency_ms"] = measure_latency(sess, (1, 3, input_size, input_size))
    precisions: dict[str, str] = {op.name: op.precision for op in read_graph(model).ops if op.op_type in COMPUTE}
    return metrics, precisions


def split_metrics(sess: Any, split: str, dataset: Any) -> dict[str, float]:
    """Classification metrics of an onnxruntime session on one split, keyed ``SPLIT_METRIC`` (``test_top1``)."""
    from evaluators.onnx_runtime import evaluate

    return {f"{split}_{key}": value for key, value in evaluate(sess, dataset).items()}


def failure(exc: Exception) -> TrialOutcome:
    """The outcome of a candidate that raised ``exc``: its type, message and the line it came from."""
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return TrialOutcome(error=f"{type(exc).__name__}: {exc} (at {os.path.basename(where.filename)}:{where.lineno})")


def evaluate_candidate(job: TrialJob, state: dict) -> TrialOutcome:
    """Realise ``job.plan`` from the uncompressed weights ``state`` and score it; never raises."""
    start = time.perf_counter()
    try:
        limit_threads(job.threads)
        from core.timing import Stages
        from search.data import load_splits
        from search.models import load_model
        from spaces.apply import realise
        from spaces.plan import CompressionPlan

        stages = Stages()
        with stages.stage("load"):
            splits = load_splits(job.data)
            model = load_model(job.model.name, job.model.num_classes, state)
        plan = CompressionPlan.from_dict(job.plan)
        realised = realise(plan, model, splits.train, job.model.input_size, stages=stages, device=job.device)
        graph_bytes = realised.graph.SerializeToString()
        metrics, precisions = score_graph(
            graph_bytes, job.profile, job.unit_name, splits, job.model.input_size, job.threads, stages, job.test
        )
        if job.litert_host:
            with stages.stage("litert"):
                metrics["litert_host_ms"] = litert_host_ms(realised, plan, splits.train, job.model.input_size, job.threads)
        metrics.update(stages.metrics())
        metrics["seconds"] = time.perf_counter() - start
        metrics["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return TrialOutcome(metrics=metrics, precisions=precisions, onnx_bytes=graph_bytes)
    except Exception as exc:  # noqa: BLE001 (a failing candidate is a result, recorded as FAIL by the driver)
        return failure(exc)


def score_test_split(job: TrialJob, graph_bytes: bytes) -> TrialOutcome:
    """Score an evaluated candidate's graph on the test split (``test_*`` metrics, ``stage_s:test``); never raises."""
    start = time.perf_counter()
    try:
        limit_threads(job.threads)
        from core.timing import Stages
        from evaluators.onnx_runtime import session
        from search.data import load_splits

        stages = Stages()
        with stages.stage("test"):
            metrics = split_metrics(session(graph_bytes, job.threads), "test", load_splits(job.data).test)
        return TrialOutcome(metrics={**metrics, **stages.metrics(), "seconds": time.perf_counter() - start})
    except Exception as exc:  # noqa: BLE001 (recorded as the trial's failure by the driver)
        return failure(exc)


def worker_label() -> str:
    """Where a task runs: host, Ray node and process."""
    import ray

    return f"{socket.gethostname()} node {ray.get_runtime_context().get_node_id()[:12]} pid {os.getpid()}"


def remote_evaluate(job: TrialJob, state: dict) -> TrialOutcome:
    """The Ray task of a trial: :func:`evaluate_candidate`, labelled with where it ran."""
    outcome = evaluate_candidate(job, state)
    outcome.worker = worker_label()
    return outcome


def remote_test(job: TrialJob, graph_bytes: bytes) -> TrialOutcome:
    """The Ray task that scores a candidate's test split: :func:`score_test_split`."""
    return score_test_split(job, graph_bytes)


def litert_host_ms(realised: Realised, plan: CompressionPlan, train_set: Any, input_size: int, threads: int) -> float:
    """Host latency (ms, median) of a candidate's .tflite with LiteRT's XNNPACK: what a study measures per trial
    with ``--litert-host``."""
    import tempfile

    from evaluators import litert_runtime
    from spaces.litert import build_tflite

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "candidate.tflite"
        build_tflite(plan, realised.candidate, realised.graph, train_set, input_size, path)
        return litert_runtime.measure_latency(litert_runtime.interpreter(path, threads))
