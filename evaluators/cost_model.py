"""Per-layer latency and energy of a graph on one compute unit of a hardware profile (roofline + overheads).

For each op: ``overhead + max(compute time, memory time)`` (plus the share of the
shorter one the unit cannot overlap, ``1 - memory_overlap``), where compute time
is the MACs its kernel runs (``Op.work_macs``: channels a runtime pads to its vector
block included) over the unit's throughput for the op's precision and kind (vector ops
over its vector throughput; on a GPU, a MAC kernel with too few outputs to fill its lanes runs at the
share it fills), and memory time is the bytes the op reads and writes (weights as
its kernel reads them, ``Op.work_weight_bytes``) over the cache bandwidth when they fit in the cache, else the DRAM
bandwidth. Ops the unit's runtime fuses into their producer (activations,
BatchNorm) cost nothing of their own. Each tensor that crosses from one
precision or unit to another pays a conversion (read + write over the
bandwidth, plus a fixed overhead). An op in a precision the unit lacks runs on its
fallback unit, or is an error. Energy is work x energy per MAC or op, plus bytes x energy per
byte, plus busy power x time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import cast, get_args

from core.errors import UserError
from core.precisions import REFERENCE
from evaluators.graph_core import Graph, Op, element_bytes
from evaluators.memory import estimate_memory
from hw_profiles.schema import ComputeKind, Unit

COMPUTE_KINDS = get_args(ComputeKind)
FUSABLE_PRODUCERS = (*COMPUTE_KINDS, "eltwise")
FALLBACK = "fallback"


class UnsupportedPrecisionError(UserError):
    """An op runs in a precision that neither the unit nor its fallback unit runs."""


@dataclass(frozen=True)
class LayerCost:
    """Predicted cost of one op (or one conversion, op_type ``Convert``; or the per-inference cost, ``Invoke``)."""

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
    unit: str = ""
    fp32_ms: float | None = None  # a compute op in another precision: its predicted ms in FP32 on the same unit


@dataclass(frozen=True)
class SlowerLayer:
    """A layer predicted slower in its precision (its input conversions included) than in FP32 on the same unit."""

    name: str
    precision: str
    ms: float
    fp32_ms: float


@dataclass(frozen=True)
class Estimate:
    """Predicted latency and energy of one inference, with the per-layer breakdown."""

    latency_ms: float
    energy_mj: float
    params: int
    macs: int
    size_bytes: int
    layers: tuple[LayerCost, ...]
    peak_memory_bytes: int = 0  # activations alive at once at the peak (evaluators.memory)

    @property
    def memory_bytes(self) -> int:
        """Weights and the peak activations: what the model holds in memory while it runs."""
        return self.size_bytes + self.peak_memory_bytes

    def summary(self) -> dict[str, float | int]:
        """The totals as a plain dict."""
        data = asdict(self)
        data.pop("layers")
        return {**data, "memory_bytes": self.memory_bytes}

    def slower_than_fp32(self) -> list[SlowerLayer]:
        """Layers whose precision is predicted to cost more than FP32 would on this unit (their input conversions
        included): e.g. INT8 on a CPU without fast INT8 dot products."""
        converts: dict[str, float] = {}
        for row in self.layers:
            if row.op_type == "Convert" and row.name.endswith("/input"):
                converts[row.name.removesuffix("/input")] = converts.get(row.name.removesuffix("/input"), 0.0) + row.ms
        return [
            SlowerLayer(row.name, row.precision, row.ms + converts.get(row.name, 0.0), row.fp32_ms)
            for row in self.layers
            if row.fp32_ms is not None and row.ms + converts.get(row.name, 0.0) > row.fp32_ms
        ]


@dataclass(frozen=True)
class Placement:
    """Where and in which precision an op runs."""

    precision: str
    unit: str
    fused: bool = False


class CostModel:
    """Predicts the cost of graphs on one unit.

    Args:
        unit: The unit that runs the graph.
        threads: Threads (CPU units); defaults to the unit's own setting, capped at its maximum.
        fallback: The unit that runs ops in precisions ``unit`` lacks (``unit.fallback`` of the profile).
        name: Name of ``unit`` in the per-layer table.
    """

    def __init__(self, unit: Unit, threads: int | None = None, fallback: Unit | None = None, name: str = "main") -> None:
        self.units = {name: unit}
        if fallback is not None:
            self.units[FALLBACK] = fallback
        self.main = name
        self.threads = {key: min(threads or u.threads, u.max_threads) for key, u in self.units.items()}
        self._weight_bytes = 0  # of the graph being estimated: whether its weights stay cached between inferences

    def estimate(self, graph: Graph) -> Estimate:
        """Latency (ms) and energy (mJ) of one inference of ``graph``.

        Raises:
            UnsupportedPrecisionError: an op runs in a precision neither the unit nor its fallback supports.
        """
        placements = self.place(graph)
        self._weight_bytes = sum(op.work_weight_bytes for op in graph.ops)
        rows: list[LayerCost] = []
        unit = self.units[self.main]
        if unit.inference_overhead_us is not None:
            seconds = unit.inference_overhead_us.value * 1e-6
            rows.append(
                LayerCost(
                    "(invoke)",
                    "Invoke",
                    "overhead",
                    "",
                    (),
                    0,
                    0,
                    "overhead",
                    seconds * 1e3,
                    unit.energy.static_w.value * seconds * 1e3,
                    self.main,
                )
            )
        outside = Placement(REFERENCE, self.main)  # the graph's inputs and outputs: FP32 on the main unit
        for i, op in enumerate(graph.ops):
            here = placements[i]
            for producer, elems in zip(op.inputs, op.input_sizes, strict=True):
                source = placements[producer] if producer >= 0 else outside
                if (source.precision, source.unit) != (here.precision, here.unit) and not self._explicit(graph, source, here):
                    rows.append(self._convert(f"{op.name}/input", source, here, elems))
            if here.fused:
                continue
            rows.append(self._with_fp32(op, here, self._op_cost(op, here)))
            crosses = (here.precision, here.unit) != (outside.precision, outside.unit)
            if i in graph.output_ops and crosses and not self._explicit(graph, here, outside):
                rows.append(self._convert(f"{op.name}/output", here, outside, op.output_elems))
        return Estimate(
            latency_ms=sum(r.ms for r in rows),
            energy_mj=sum(r.mj for r in rows),
            params=graph.params,
            macs=graph.macs,
            size_bytes=graph.size_bytes,
            layers=tuple(rows),
            peak_memory_bytes=estimate_memory(graph, [p.precision for p in placements]).peak_activation_bytes,
        )

    def _with_fp32(self, op: Op, where: Placement, row: LayerCost) -> LayerCost:
        """``row`` of a compute op in another precision, with what the op would cost in FP32 on the same unit."""
        if op.kind not in COMPUTE_KINDS or where.precision == REFERENCE or REFERENCE not in self.units[where.unit].precisions:
            return row
        widen = element_bytes(REFERENCE) / element_bytes(op.storage) if op.storage else 1.0
        as_fp32 = replace(op, work_weight_bytes=round(op.work_weight_bytes * widen))
        return replace(row, fp32_ms=self._op_cost(as_fp32, replace(where, precision=REFERENCE)).ms)

    @staticmethod
    def _explicit(graph: Graph, source: Placement, target: Placement) -> bool:
        """The graph's own ops do this conversion (onnxruntime's executed graph); only unit changes cost extra."""
        return graph.explicit_conversions and source.unit == target.unit

    def place(self, graph: Graph) -> list[Placement]:
        """The unit and precision each op really runs in, and whether it is fused into its producer.

        Raises:
            UnsupportedPrecisionError: an op runs in a precision neither the unit nor its fallback supports.
        """
        unit = self.units[self.main]
        placements: list[Placement] = []
        for op in graph.ops:
            precision = op.precision
            where = self.main
            if precision not in unit.precisions:
                fallback = self.units.get(FALLBACK)
                if fallback is None or precision not in fallback.precisions:
                    raise UnsupportedPrecisionError(
                        f"'{op.name}' runs in {precision}, which this unit does not support ({', '.join(unit.precisions)}): "
                        f"convert that layer to {' or '.join(unit.precisions)}, or pick a unit that runs {precision}"
                    )
                where = FALLBACK
            placement = Placement(precision, where)
            if self._fuses(graph, op, placement, placements):
                placement = Placement(precision, where, fused=True)
            placements.append(placement)
        return placements

    def _fuses(self, graph: Graph, op: Op, placement: Placement, placements: list[Placement]) -> bool:
        unit = self.units[placement.unit]
        if op.op_type not in unit.fused_ops or len(op.inputs) != 1 or op.inputs[0] < 0:
            return False
        producer = graph.ops[op.inputs[0]]
        before = placements[op.inputs[0]]
        return (
            producer.readers == 1
            and producer.kind in FUSABLE_PRODUCERS
            and (before.precision, before.unit) == (placement.precision, placement.unit)
        )

    def _bandwidth(self, unit: Unit, nbytes: float) -> float:
        """Bytes per second for a working set of ``nbytes``."""
        fits = nbytes <= unit.cache_kb.value * 1024
        return (unit.cache_gbs.value if fits else unit.dram_gbs.value) * 1e9

    def _memory_s(self, unit: Unit, nbytes: float, weight_bytes: float) -> float:
        """Seconds to move an op's ``nbytes`` (its ``weight_bytes`` included). With ``weights_cache_kb``, the
        weights come from the cache when all of the graph's fit in it (they stay there between inferences), else
        from DRAM, and the activations by their own working set; without it, everything by the op's working set."""
        if unit.weights_cache_kb is None:
            return nbytes / self._bandwidth(unit, nbytes)
        resident = self._weight_bytes <= unit.weights_cache_kb.value * 1024
        weight_gbs = unit.cache_gbs.value if resident else unit.dram_gbs.value
        activations = nbytes - weight_bytes
        return activations / self._bandwidth(unit, activations) + weight_bytes / (weight_gbs * 1e9)

    @staticmethod
    def _energy_per_byte(unit: Unit, nbytes: float) -> float:
        fits = nbytes <= unit.cache_kb.value * 1024
        return (unit.energy.pj_per_byte_cache.value if fits else unit.energy.pj_per_byte_dram.value) * 1e-12

    def _speedup(self, key: str) -> float:
        unit = self.units[key]
        efficiency = unit.thread_efficiency.value if unit.thread_efficiency else 0.0
        return 1.0 + (self.threads[key] - 1) * efficiency

    def _overhead_s(self, key: str, base_us: float) -> float:
        unit = self.units[key]
        sync = unit.thread_sync_us.value if unit.thread_sync_us else 0.0
        return (base_us + sync * (self.threads[key] - 1)) * 1e-6

    def _op_cost(self, op: Op, where: Placement) -> LayerCost:
        unit, precision = self.units[where.unit], where.precision
        if op.kind == "reshape" or op.op_type in unit.free_ops:
            return LayerCost(op.name, op.op_type, op.kind, precision, op.shape, 0, 0, "free", 0.0, 0.0, where.unit)
        nbytes = round((op.input_elems + op.output_elems) * element_bytes(precision)) + op.work_weight_bytes
        kind = op.kind
        if op.winograd_shape and unit.winograd is not None and unit.winograd.takes(op.channels, op.shape):
            kind = "winograd"
        if kind in COMPUTE_KINDS:
            kind = cast(ComputeKind, kind)
            channels = op.channels[1:] if kind in ("depthwise", "grouped") else op.channels  # per-group inputs are few
            efficiency = unit.efficiency(precision, kind) * unit.alignment_factor(precision, channels, kind)
            # per output: bias, activation, store; the generic im2col + GEMM path also gathers and packs ("gather")
            gathers = kind == "im2col" and "gather" in unit.vector_kind_efficiency
            per_output = unit.vector_efficiency("gather" if gathers else "epilogue")
            vector_rate = unit.vector_gops[precision].value * per_output * 1e9
            seconds_per_unit = 1 / (unit.gmacs[precision].value * efficiency * 1e9)
            compute_s = (op.work_macs * seconds_per_unit + op.output_elems / vector_rate) / unit.occupancy(op.output_elems)
            work = op.work_macs
        else:
            work = op.vector_ops
            compute_s = work / (unit.vector_gops[precision].value * unit.vector_efficiency(op.kind) * 1e9)
        compute_s /= unit.op_factor(op.op_type, precision) * self._speedup(where.unit)
        memory_s = self._memory_s(unit, nbytes, op.work_weight_bytes)
        overhead_s = self._overhead_s(where.unit, unit.overhead_us.value)
        busy_s = max(compute_s, memory_s) + (1 - unit.overlap()) * min(compute_s, memory_s)
        seconds = overhead_s + busy_s
        bound = "compute" if compute_s >= memory_s else "memory"
        if overhead_s > busy_s:
            bound = "overhead"
        energy_j = (
            work * unit.energy.pj_per_mac[precision].value * 1e-12
            + nbytes * self._energy_per_byte(unit, nbytes)
            + unit.energy.static_w.value * seconds
        )
        return LayerCost(
            op.name, op.op_type, kind, precision, op.shape, op.macs, nbytes, bound, seconds * 1e3, energy_j * 1e3, where.unit
        )

    def _convert(self, name: str, source: Placement, target: Placement, elems: int) -> LayerCost:
        """A tensor crossing precisions (quantize, dequantize, cast) or units (transfer), paid on the slower side."""
        key = target.unit if target.unit != self.main else source.unit
        unit = self.units[key]
        nbytes = round(elems * (element_bytes(source.precision) + element_bytes(target.precision)))
        seconds = self._overhead_s(key, unit.switch_overhead_us.value) + nbytes / self._bandwidth(unit, nbytes)
        energy_j = nbytes * self._energy_per_byte(unit, nbytes) + unit.energy.static_w.value * seconds
        kind = f"{source.precision}->{target.precision}" + (
            "" if source.unit == target.unit else f" {source.unit}->{target.unit}"
        )
        return LayerCost(
            name, "Convert", kind, target.precision, (elems,), 0, nbytes, "switch", seconds * 1e3, energy_j * 1e3, key
        )
