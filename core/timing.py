"""Seconds per stage of a piece of work (a trial: load, prune, fine-tune, export, quantize, evaluate)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STAGE_PREFIX = "stage_s:"


class Stages:
    """Wall seconds spent in named stages; a stage entered twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        """The stages as trial metrics (``stage_s:prune``...)."""
        return {STAGE_PREFIX + name: value for name, value in self.seconds.items()}


def stage_seconds(metrics: dict[str, float]) -> dict[str, float]:
    """The stage seconds a trial recorded (metric keys without the prefix)."""
    return {key[len(STAGE_PREFIX) :]: value for key, value in metrics.items() if key.startswith(STAGE_PREFIX)}


def median_run_ms(run: Callable[[], object], warmup: int = 10, repeats: int = 50, budget_s: float = 2.0) -> float:
    """Median wall time (ms) of ``run()`` after ``warmup`` calls; stops early once ``budget_s`` has passed
    (after at least 5 timed calls)."""
    for _ in range(warmup):
        run()
    times = []
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline and len(times) >= 5:
            break
    return statistics.median(times) * 1e3
