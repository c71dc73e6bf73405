"""One schema for every device profile: units, precisions, throughputs, bandwidths, energies, each with a source."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from core.errors import UserError
from core.precisions import PRECISIONS
from hw_profiles.protocol import KERNELS, Protocol


def _registered(name: str) -> str:
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision '{name}': registered precisions are {', '.join(PRECISIONS.names())}")
    return name


# A precision name of core.precisions' registry: a profile can only name precisions the tool knows how to realise.
Precision = Annotated[str, AfterValidator(_registered)]


def _protocol(text: str) -> str:
    try:
        return str(Protocol.parse(text))
    except UserError as exc:
        raise ValueError(str(exc)) from None


def _kernels(name: str) -> str:
    kernels, _, precision = name.partition(":")
    if kernels not in KERNELS:
        raise ValueError(f"protocol_factors names kernels '{kernels}': known kernels are {', '.join(KERNELS)}")
    if precision:
        _registered(precision)
    return name


# A measurement protocol, KERNELS@YEAR/CORES/TIMED (hw_profiles.protocol).
ProtocolText = Annotated[str, AfterValidator(_protocol)]
# Kernels of another protocol, for every precision (``tflite-cpu``) or for one (``tflite-cpu:int8``).
Kernels = Annotated[str, AfterValidator(_kernels)]
# Op kinds the cost model distinguishes for compute-bound work (see evaluators.graph). "im2col" is a dense
# conv run by a runtime's generic im2col + GEMM path instead of its specialised kernels (onnxruntime's
# non-NCHWc FP32 convs); a unit that does not list it costs such convs as "conv".
ComputeKind = Literal["conv", "pointwise", "depthwise", "grouped", "gemm", "im2col", "winograd"]
CORE_KINDS = ("conv", "pointwise", "depthwise", "grouped", "gemm")
# Kinds of the ops that are not MACs (see evaluators.graph.KIND): their rate is vector_gops x this efficiency.
# "epilogue" is the per-output work of a compute op (bias, activation, requantization, store).
VectorKind = Literal[
    "activation", "eltwise", "pool", "reduce", "norm", "softmax", "copy", "resize", "convert", "epilogue", "gather"
]
# The start of the source key of every number a calibration fitted (``calibration-DATE-UNIT``).
CALIBRATION_PREFIX = "calibration-"
# Output elements one GPU work item writes: the TFLite GPU delegate stores tensors as 4-channel slices.
ITEM_ELEMS = 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Strict):
    """A number and the key (in the profile's ``sources``) of where it comes from."""

    value: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1)


class Energy(_Strict):
    """Energy per MAC by precision, per byte moved, and the power drawn while the unit is busy."""

    pj_per_mac: dict[Precision, Sourced]
    pj_per_byte_cache: Sourced
    pj_per_byte_dram: Sourced
    static_w: Sourced


class Unit(_Strict):
    """One compute unit of a device (CPU cluster, GPU, NPU/TPU, DSP) as the cost model sees it."""

    description: str
    runtime: str
    precisions: list[Precision] = Field(min_length=1)
    threads: int = Field(default=1, ge=1)
    max_threads: int = Field(default=1, ge=1)
    thread_efficiency: Sourced | None = None
    thread_sync_us: Sourced | None = None
    gmacs: dict[Precision, Sourced]
    kind_efficiency: dict[ComputeKind, Sourced]
    # Where a precision's kernels scale differently across kinds (e.g. slow INT8 depthwise kernels).
    precision_kind_efficiency: dict[Precision, dict[ComputeKind, Sourced]] = Field(default_factory=dict)
    vector_gops: dict[Precision, Sourced]
    vector_kind_efficiency: dict[VectorKind, Sourced] = Field(default_factory=dict)
    # Kernels work on blocks of this many channels; each channel count of a conv (input, output) that is not a
    # multiple of the block multiplies its efficiency by unaligned_efficiency (remainder loops, padded tiles).
    channel_block: dict[Precision, Sourced] = Field(default_factory=dict)
    unaligned_efficiency: dict[Precision, Sourced] = Field(default_factory=dict)
    # Depthwise kernels whose fast path needs the channel count to be a multiple of its own block (onnxruntime's
    # symmetric INT8 depthwise kernel: 16 on x86); other counts take a slower kernel, at depthwise_unaligned_efficiency.
    depthwise_channel_block: dict[Precision, Sourced] = Field(default_factory=dict)
    depthwise_unaligned_efficiency: dict[Precision, Sourced] = Field(default_factory=dict)
    # Ops whose kernels stand apart from their kind on this runtime, keyed "OpType" or "OpType:precision".
    op_efficiency: dict[str, Sourced] = Field(default_factory=dict)
    cache_kb: Sourced
    cache_gbs: Sourced
    dram_gbs: Sourced
    # The cache a whole model's weights stay in between inferences (a CPU's last-level cache): a graph whose
    # weights fit reads them at cache_gbs, a larger one streams them from DRAM every inference. None: weights
    # count in each op's working set against cache_kb, like its activations.
    weights_cache_kb: Sourced | None = None
    overhead_us: Sourced
    switch_overhead_us: Sourced
    inference_overhead_us: Sourced | None = None
    # Share of an op's shorter time (compute or memory) hidden behind its longer one: 1 is the roofline's
    # max(compute, memory), 0 adds them (kernels that load, then compute, with nothing to overlap). 1 if absent.
    memory_overlap: Sourced | None = None
    # GPUs: work items (one per ITEM_ELEMS output elements, a 4-channel slice) a MAC kernel needs in flight to
    # keep every lane busy; a kernel with fewer reaches that share of its rate. Absent: always full (CPUs).
    occupancy_items: Sourced | None = None
    fused_ops: list[str] = Field(default_factory=lambda: ["Relu", "Clip"])
    # Ops the runtime elides, e.g. Concat written in place into slices of its output (XNNPACK, TensorRT).
    free_ops: list[str] = Field(default_factory=list)
    fallback: str | None = None
    # "device": the QDQ graph as a device runtime runs it (Q/DQ/Cast mark precisions);
    # "onnxruntime": the graph onnxruntime executes after its own optimizations (see evaluators.runtime_graph).
    graph: Literal["device", "onnxruntime"] = "device"
    # A unit of the host profile: the runtime that measures it on this machine (``search calibrate --hw host:UNIT``
    # and the trials of a study on it). None: a device unit, measured elsewhere.
    host_runtime: Literal["onnxruntime", "litert"] | None = None
    # Precisions the runtime stores a layer's weights in but computes in another (device view only): XNNPACK
    # without its FP16 flag widens float16 weights to FP32 at load, so an FP16 layer costs what an FP32 one does.
    runs_as: dict[Precision, Precision] = Field(default_factory=dict)
    winograd: Winograd | None = None  # None: the runtime runs no Winograd convolutions
    latency_band: Band | None = None  # None: no out-of-sample check of this unit's latency
    # What the unit's latencies mean: the protocol of the rows it is calibrated on (None: a host unit, measured
    # here). A row measured under other kernels is evidence about it only through a sourced factor of
    # ``protocol_factors`` (latency under this unit's protocol = the row's latency x the factor); else refused.
    protocol: ProtocolText | None = None
    protocol_factors: dict[Kernels, Sourced] = Field(default_factory=dict)
    energy_band: Band | None = None  # None: no published energy measurement checks this unit ("energy unchecked")
    energy: Energy
    # The value each calibrated number (gmacs.int8, overhead_us...) had before any calibration, from the data sheet
    # and the runtime's priors alone: the hold-out (bench/holdout.py) starts every fold from these, so no fold reuses
    # a number fitted on the rows it predicts. Keyed by the number's dotted path; calibration never changes them.
    priors: dict[str, Sourced] = Field(default_factory=dict)

    def protocol_factor(self, measured: str, precision: str) -> float | None:
        """What turns a ``precision`` latency measured under protocol ``measured`` into one under this unit's: 1 for
        the same kernels and timing (or a unit without a stated protocol), the sourced factor for other kernels
        (the precision's own, else the kernels'), None when such a row is no evidence about this unit (refused as
        calibration data)."""
        if self.protocol is None:
            return 1.0
        mine, theirs = Protocol.parse(self.protocol), Protocol.parse(measured)
        if mine.matches(theirs):
            return 1.0
        factor = self.protocol_factors.get(f"{theirs.kernels}:{precision}") or self.protocol_factors.get(theirs.kernels)
        return factor.value if factor is not None and theirs.timed == mine.timed else None

    def efficiency(self, precision: Precision, kind: ComputeKind) -> float:
        """Share of ``gmacs[precision]`` reached by ops of ``kind`` (the per-precision value when given)."""
        override = self.precision_kind_efficiency.get(precision, {}).get(kind)
        shared = self.kind_efficiency.get(kind) or self.kind_efficiency["conv"]
        return (override or shared).value

    def vector_efficiency(self, kind: str) -> float:
        """Share of ``vector_gops`` reached by non-MAC ops of ``kind`` (1 unless the profile says otherwise)."""
        entry = self.vector_kind_efficiency.get(kind)  # type: ignore[call-overload]
        return entry.value if entry else 1.0

    def alignment_factor(self, precision: Precision, channels: tuple[int, ...], kind: str = "conv") -> float:
        """Efficiency multiplier for ``channels`` that are not multiples of the precision's channel block (the
        depthwise block, where the profile gives one, for a depthwise op)."""
        block, penalty = self.channel_block.get(precision), self.unaligned_efficiency.get(precision)
        if kind == "depthwise" and precision in self.depthwise_channel_block:
            block = self.depthwise_channel_block[precision]
            penalty = self.depthwise_unaligned_efficiency.get(precision, penalty)
        if block is None or penalty is None:
            return 1.0
        size = max(1, round(block.value))
        return penalty.value ** sum(1 for c in channels if c % size)

    def overlap(self) -> float:
        """Share of the shorter of an op's compute and memory time that overlaps the longer (1 unless given)."""
        return self.memory_overlap.value if self.memory_overlap is not None else 1.0

    def occupancy(self, output_elems: int) -> float:
        """Share of the unit's lanes a MAC kernel writing ``output_elems`` outputs keeps busy (1 without ``occupancy_items``)."""
        if self.occupancy_items is None or self.occupancy_items.value == 0:
            return 1.0
        return min(1.0, output_elems / ITEM_ELEMS / self.occupancy_items.value)

    def op_factor(self, op_type: str, precision: Precision) -> float:
        """Efficiency multiplier for one op type (1 unless the profile singles it out)."""
        entry = self.op_efficiency.get(f"{op_type}:{precision}") or self.op_efficiency.get(op_type)
        return entry.value if entry else 1.0

    @model_validator(mode="after")
    def _precisions_covered(self) -> Unit:
        for field in ("gmacs", "vector_gops"):
            missing = set(self.precisions) - set(getattr(self, field))
            extra = set(getattr(self, field)) - set(self.precisions)
            if missing:
                raise ValueError(f"{field} lacks {', '.join(sorted(missing))}, which the unit lists in precisions")
            if extra:
                raise ValueError(f"{field} has {', '.join(sorted(extra))}, which the unit does not run (not in precisions)")
        missing = set(self.precisions) - set(self.energy.pj_per_mac)
        if missing:
            raise ValueError(f"energy.pj_per_mac lacks {', '.join(sorted(missing))}")
        rates = {
            f"{field}.{key}": item
            for field in ("gmacs", "vector_gops", "kind_efficiency")
            for key, item in getattr(self, field).items()
        }
        rates |= {"cache_gbs": self.cache_gbs, "dram_gbs": self.dram_gbs}
        zero = [name for name, item in rates.items() if item.value <= 0]
        if zero:
            raise ValueError(f"{', '.join(zero)} must be above 0 (a rate of 0 would make every op take forever)")
        lacking = set(CORE_KINDS) - set(self.kind_efficiency)
        if lacking:
            raise ValueError(f"kind_efficiency must give each of {', '.join(CORE_KINDS)} (lacks {', '.join(sorted(lacking))})")
        if self.overlap() > 1:
            raise ValueError(f"memory_overlap {self.overlap():g} is a share: it must lie between 0 and 1")
        if self.threads > self.max_threads:
            raise ValueError(f"threads {self.threads} exceeds max_threads {self.max_threads}")
        unknown = sorted(p for p in self.priors if p.split(".")[0] not in type(self).model_fields or p.startswith("priors"))
        if unknown:
            raise ValueError(f"priors name {', '.join(unknown)}, which are not numbers of a unit (e.g. gmacs.fp32, overhead_us)")
        return self


class Band(_Strict):
    """How far published values (latency, or energy) fall from this unit's predictions on rows it was not fitted
    on: the true value lies in [prediction x low, prediction x high] for ``level`` of them (``bench/holdout.py``,
    ``bench/cost_model.py --part energy``)."""

    low: float = Field(gt=0)
    high: float = Field(gt=0)
    level: float = Field(gt=0, lt=1)
    rows: int = Field(ge=1)
    pooled: bool = False  # True: from other units' rows too (this unit had too few of its own)
    own_rows: int | None = None  # published rows of this unit itself among them (0: the unit is unchecked)
    source: str

    def around(self, value: float) -> tuple[float, float]:
        """The band around a predicted ``value``."""
        return value * self.low, value * self.high

    def describe(self) -> str:
        """``80% band from 12 out-of-sample rows`` (``pooled from other units`` where so)."""
        whose = "of every unit (pooled: this unit has too few)" if self.pooled else "of this unit"
        unchecked = "unchecked on this unit (no published measurement of its own); " if self.own_rows == 0 else ""
        return f"{unchecked}{self.level:.0%} band from {self.rows} out-of-sample rows {whose}"


class Winograd(_Strict):
    """Which convolutions a runtime runs as F(4x4, 3x3) Winograd (at ``kind_efficiency.winograd``): the 3x3,
    stride-1, undilated, ungrouped ones with at least these channels and 4x4 output tiles; ``source`` cites the
    runtime's rule."""

    min_in_channels: int = Field(ge=0)
    min_out_channels: int = Field(ge=0)
    min_tiles: int = Field(ge=0)
    source: str

    def takes(self, channels: tuple[int, int], out_shape: tuple[int, ...]) -> bool:
        """Whether a Winograd-shaped conv with (input, output) ``channels`` writing ``out_shape`` (N, C, H, W) runs so."""
        height, width = (out_shape[-2], out_shape[-1]) if len(out_shape) >= 4 else (1, 1)
        tiles = -(-height // 4) * -(-width // 4)
        return channels[0] >= self.min_in_channels and channels[1] >= self.min_out_channels and tiles >= self.min_tiles


class Profile(_Strict):
    """A device: its compute units and the sources every number cites."""

    # a plain name (no path, no dots): it names files and studies (``PROFILE:UNIT``)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    version: int = Field(ge=1)
    description: str
    default_unit: str
    sources: dict[str, str] = Field(min_length=1)
    units: dict[str, Unit] = Field(min_length=1)
    machine: dict[str, str] | None = None  # a host profile: the machine it was built on (hw_profiles.host)

    @model_validator(mode="after")
    def _references(self) -> Profile:
        if self.default_unit not in self.units:
            raise ValueError(f"default_unit '{self.default_unit}' is not one of the units ({', '.join(self.units)})")
        for unit_name, unit in self.units.items():
            for path, item in sourced_items(unit):
                if item.source not in self.sources:
                    raise ValueError(f"units.{unit_name}.{path} cites source '{item.source}', which is not in sources")
            for field, cited in (
                ("winograd", unit.winograd),
                ("latency_band", unit.latency_band),
                ("energy_band", unit.energy_band),
            ):
                if cited is not None and cited.source not in self.sources:
                    raise ValueError(f"units.{unit_name}.{field} cites source '{cited.source}', which is not in sources")
            if unit.fallback is not None and unit.fallback not in self.units:
                raise ValueError(f"units.{unit_name}.fallback '{unit.fallback}' is not one of the units")
            if unit.fallback == unit_name:
                raise ValueError(f"units.{unit_name}.fallback cannot be the unit itself")
        return self

    def fallback_of(self, name: str) -> Unit | None:
        """The unit that runs what unit ``name`` cannot (precisions it lacks), if it has one."""
        fallback = self.units[name].fallback
        return self.units[fallback] if fallback else None

    def cited_sources(self) -> set[str]:
        """The keys of ``sources`` that some number of some unit cites."""
        numbers = {item.source for unit in self.units.values() for _, item in sourced_items(unit)}
        cited = [
            cite
            for unit in self.units.values()
            for cite in (unit.winograd, unit.latency_band, unit.energy_band)
            if cite is not None
        ]
        return numbers | {cite.source for cite in cited}


def sourced_items(model: BaseModel, prefix: str = ""):
    """Every Sourced number inside ``model``, with its dotted path."""
    for name, value in model:
        path = f"{prefix}{name}"
        if isinstance(value, Sourced):
            yield path, value
        elif isinstance(value, BaseModel):
            yield from sourced_items(value, path + ".")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, Sourced):
                    yield f"{path}.{key}", item
                elif isinstance(item, dict):
                    for sub, leaf in item.items():
                        yield f"{path}.{key}.{sub}", leaf
