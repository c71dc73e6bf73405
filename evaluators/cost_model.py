"""Per-layer latency and energy of a graph on one compute unit of a hardware profile (roofline + overheads).

For each op: ``overhead + max(compute time, memory time)``, where compute time
is MACs over the unit's throughput for the op's precision and kind (vector ops
over its vector throughput), and memory time is the bytes the op reads and
writes over the cache bandwidth when they fit in the cache, else the DRAM
bandwidth. Activations listed by the unit as fused cost nothing beyond their
producer. Each tensor that crosses from one precision to another pays a
conversion (read + write over the bandwidth, plus a fixed overhead). Energy is
MACs x energy per MAC, plus bytes x energy per byte, plus busy power x time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

from evaluators.graph import BYTES, Graph, Op
from hw_profiles.schema import ComputeKind, Precision, Unit

COMPUTE_KINDS = ("conv", "pointwise", "depthwise", "grouped", "gemm")
FUSABLE_PRODUCERS = (*COMPUTE_KINDS, "eltwise")


@dataclass(frozen=True)
class LayerCost:
    """Predicted cost of one op (or one precision conversion, op_type ``Convert``)."""

    name: str
    op_type: str
    kind: str
    precision: str
    shape: tuple[int, ...]
    macs: int
    bytes: int
    bound: str
    ms: float
    mj: float


@dataclass(frozen=True)
class Estimate:
    """Predicted latency and energy of one inference, with the per-layer breakdown."""

    latency_ms: float
    energy_mj: float
    params: int
    macs: int
    size_bytes: int
    layers: tuple[LayerCost, ...]

    def summary(self) -> dict[str, float | int]:
        """The totals as a plain dict."""
        data = asdict(self)
        data.pop("layers")
        return data


class CostModel:
    """Predicts the cost of graphs on one unit; ``threads`` defaults to the unit's own setting."""

    def __init__(self, unit: Unit, threads: int | None = None) -> None:
        self.unit = unit
        self.threads = min(threads or unit.threads, unit.max_threads)
        efficiency = unit.thread_efficiency.value if unit.thread_efficiency else 0.0
        self.speedup = 1.0 + (self.threads - 1) * efficiency
        self.fused = set(unit.fused_activations)

    def estimate(self, graph: Graph) -> Estimate:
        """Latency (ms) and energy (mJ) of one inference of ``graph``.

        Raises:
            ValueError: an op runs in a precision the unit does not support.
        """
        rows: list[LayerCost] = []
        for i, op in enumerate(graph.ops):
            for producer, elems in zip(op.inputs, op.input_sizes, strict=True):
                source: Precision = graph.ops[producer].precision if producer >= 0 else "fp32"
                if source != op.precision:
                    rows.append(self._convert(f"{op.name}/input", source, op.precision, elems))
            if self._is_fused(graph, op):
                continue
            rows.append(self._op_cost(op))
            if i in graph.output_ops and op.precision != "fp32":
                rows.append(self._convert(f"{op.name}/output", op.precision, "fp32", op.output_elems))
        return Estimate(
            latency_ms=sum(r.ms for r in rows),
            energy_mj=sum(r.mj for r in rows),
            params=graph.params,
            macs=graph.macs,
            size_bytes=graph.size_bytes,
            layers=tuple(rows),
        )

    def _is_fused(self, graph: Graph, op: Op) -> bool:
        if op.op_type not in self.fused or len(op.inputs) != 1 or op.inputs[0] < 0:
            return False
        producer = graph.ops[op.inputs[0]]
        return producer.readers == 1 and producer.kind in FUSABLE_PRODUCERS and producer.precision == op.precision

    def _check(self, precision: Precision, name: str) -> None:
        if precision not in self.unit.precisions:
            raise ValueError(
                f"'{name}' runs in {precision}, which this unit does not support ({', '.join(self.unit.precisions)})"
            )

    def _bandwidth(self, nbytes: float) -> float:
        """Bytes per second for a working set of ``nbytes``."""
        fits = nbytes <= self.unit.cache_kb.value * 1024
        return (self.unit.cache_gbs.value if fits else self.unit.dram_gbs.value) * 1e9

    def _energy_per_byte(self, nbytes: float) -> float:
        fits = nbytes <= self.unit.cache_kb.value * 1024
        energy = self.unit.energy
        return (energy.pj_per_byte_cache.value if fits else energy.pj_per_byte_dram.value) * 1e-12

    def _op_cost(self, op: Op) -> LayerCost:
        self._check(op.precision, op.name)
        unit = self.unit
        if op.kind == "reshape":
            return LayerCost(op.name, op.op_type, op.kind, op.precision, op.shape, 0, 0, "free", 0.0, 0.0)
        nbytes = (op.input_elems + op.output_elems) * BYTES[op.precision] + op.weight_bytes
        if op.kind in COMPUTE_KINDS:
            rate = unit.gmacs[op.precision].value * unit.kind_efficiency[cast(ComputeKind, op.kind)].value * 1e9 * self.speedup
            work = op.macs
        else:
            rate = unit.vector_gops[op.precision].value * 1e9 * self.speedup
            work = op.vector_ops
        compute_s = work / rate if rate else float("inf")
        memory_s = nbytes / self._bandwidth(nbytes)
        overhead_s = unit.overhead_us.value * 1e-6
        seconds = overhead_s + max(compute_s, memory_s)
        bound = "compute" if compute_s >= memory_s else "memory"
        if overhead_s > max(compute_s, memory_s):
            bound = "overhead"
        energy_j = (
            work * unit.energy.pj_per_mac[op.precision].value * 1e-12
            + nbytes * self._energy_per_byte(nbytes)
            + unit.energy.static_w.value * seconds
        )
        return LayerCost(
            op.name, op.op_type, op.kind, op.precision, op.shape, op.macs, nbytes, bound, seconds * 1e3, energy_j * 1e3
        )

    def _convert(self, name: str, source: Precision, target: Precision, elems: int) -> LayerCost:
        self._check(target, name)
        nbytes = elems * (BYTES[source] + BYTES[target])
        seconds = self.unit.switch_overhead_us.value * 1e-6 + nbytes / self._bandwidth(nbytes)
        energy_j = nbytes * self._energy_per_byte(nbytes) + self.unit.energy.static_w.value * seconds
        return LayerCost(
            name, "Convert", f"{source}->{target}", target, (elems,), 0, nbytes, "switch", seconds * 1e3, energy_j * 1e3
        )
