"""One schema for every device profile: units, precisions, throughputs, bandwidths, energies, each with a source."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Precision = Literal["fp32", "fp16", "int8"]
# Op kinds the cost model distinguishes for compute-bound work (see evaluators.graph).
ComputeKind = Literal["conv", "pointwise", "depthwise", "grouped", "gemm"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Strict):
    """A number and the key (in the profile's ``sources``) of where it comes from."""

    value: float = Field(ge=0)
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
    gmacs: dict[Precision, Sourced]
    kind_efficiency: dict[ComputeKind, Sourced]
    vector_gops: dict[Precision, Sourced]
    cache_kb: Sourced
    cache_gbs: Sourced
    dram_gbs: Sourced
    overhead_us: Sourced
    switch_overhead_us: Sourced
    fused_activations: list[str] = Field(default_factory=lambda: ["Relu", "Clip"])
    energy: Energy

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
        kinds = set(ComputeKind.__args__)  # type: ignore[attr-defined]
        if set(self.kind_efficiency) != kinds:
            raise ValueError(f"kind_efficiency must give each of {', '.join(sorted(kinds))}")
        if self.threads > self.max_threads:
            raise ValueError(f"threads {self.threads} exceeds max_threads {self.max_threads}")
        return self


class Profile(_Strict):
    """A device: its compute units and the sources every number cites."""

    name: str
    version: int = Field(ge=1)
    description: str
    default_unit: str
    sources: dict[str, str] = Field(min_length=1)
    units: dict[str, Unit] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Profile:
        if self.default_unit not in self.units:
            raise ValueError(f"default_unit '{self.default_unit}' is not one of the units ({', '.join(self.units)})")
        for unit_name, unit in self.units.items():
            for path, item in _sourced_items(unit):
                if item.source not in self.sources:
                    raise ValueError(f"units.{unit_name}.{path} cites source '{item.source}', which is not in sources")
        return self

    def unit(self, name: str | None = None) -> Unit:
        """The named unit, or the default one."""
        return self.units[name or self.default_unit]


def _sourced_items(model: BaseModel, prefix: str = ""):
    """Every Sourced number inside ``model``, with its dotted path."""
    for name, value in model:
        path = f"{prefix}{name}"
        if isinstance(value, Sourced):
            yield path, value
        elif isinstance(value, BaseModel):
            yield from _sourced_items(value, path + ".")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, Sourced):
                    yield f"{path}.{key}", item
