"""How a latency was measured: runtime kernels and their year, the cores, and what was timed.

Two sources measuring the same model on the same phone differ by a factor when their protocols differ (TFLite's
built-in CPU kernels against XNNPACK, XNNPACK of 2020 against 2024, invoke only against a whole task). Every
published row and every profile unit names its protocol in one short text, ``KERNELS@YEAR/CORES/TIMED``:

- kernels: ``tflite-cpu`` (TFLite's built-in CPU kernels, its default before XNNPACK), ``xnnpack``, ``tflite-gpu``
  (the GPU delegate), ``nnapi``, ``hexagon``, ``edgetpu``, ``tensorrt``, ``ncnn``, ``onnxruntime``;
- year: of the runtime's revision (or the publication when the revision is not stated);
- cores: ``big`` (threads on the big cores), ``prime`` (the single fastest core), ``all`` (a cluster of identical
  cores), ``unstated``, or ``-`` (not a CPU);
- timed: ``invoke`` (the model's inference only, as benchmark_model does) or ``task`` (a whole application task,
  pre-processing included).

Threads stay a column of their own (the profile models them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import UserError

KERNELS = ("tflite-cpu", "xnnpack", "tflite-gpu", "nnapi", "hexagon", "edgetpu", "tensorrt", "ncnn", "onnxruntime")
CORES = ("big", "prime", "all", "unstated", "-")
TIMED = ("invoke", "task")
_PATTERN = re.compile(r"^(?P<kernels>[a-z0-9-]+)@(?P<year>\d{4})/(?P<cores>[a-z-]+)/(?P<timed>[a-z]+)$")


@dataclass(frozen=True)
class Protocol:
    """A measurement protocol (see the module docstring)."""

    kernels: str
    year: int
    cores: str
    timed: str

    @classmethod
    def parse(cls, text: str) -> Protocol:
        """Read ``KERNELS@YEAR/CORES/TIMED``; a malformed text or an unknown value is one line naming the fix."""
        match = _PATTERN.match(text.strip())
        if not match:
            raise UserError(f"protocol '{text}' is not KERNELS@YEAR/CORES/TIMED (for example xnnpack@2024/prime/invoke)")
        protocol = cls(match["kernels"], int(match["year"]), match["cores"], match["timed"])
        for field, value, allowed in (("kernels", protocol.kernels, KERNELS), ("cores", protocol.cores, CORES),
                                      ("timed", protocol.timed, TIMED)):  # fmt: skip
            if value not in allowed:
                raise UserError(f"protocol '{text}': {field} '{value}' is not one of {', '.join(allowed)}")
        return protocol

    def __str__(self) -> str:
        return f"{self.kernels}@{self.year}/{self.cores}/{self.timed}"

    def matches(self, other: Protocol) -> bool:
        """Whether rows measured under ``other`` are evidence about this protocol as they are: the same kernels and
        the same timing (the year and the cores are recorded, not matched: within one runtime the profile's thread
        model covers the cores, and no sourced factor separates its years)."""
        return self.kernels == other.kernels and self.timed == other.timed
