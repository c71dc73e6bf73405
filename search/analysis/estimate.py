"""`search estimate`: a model (by name, or an ONNX file) predicted on a profile unit, as a record or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:
    import onnx

    from evaluators.cost_model import Estimate
    from hw_profiles.schema import Profile, Unit


@dataclass(frozen=True)
class UnitEstimate:
    """A model's predicted cost on one unit: the estimate, the graph it was made on, and where layers fell back."""

    profile: Profile
    unit_name: str
    graph: onnx.ModelProto
    estimate: Estimate
    on_fallback: list[str]  # precisions of layers that run on the unit's fallback unit

    @property
    def hw(self) -> str:
        """``PROFILE:UNIT``."""
        return f"{self.profile.name}:{self.unit_name}"

    @property
    def unit(self) -> Unit:
        """The unit."""
        return self.profile.units[self.unit_name]

    @property
    def fallback_note(self) -> str:
        """``; int8 layers run on its fallback unit cpu`` when some do, else empty."""
        if not self.on_fallback:
            return ""
        return f"; {', '.join(self.on_fallback)} layers run on its fallback unit {self.unit.fallback}"


def estimate_on(hw: str, model: str, precision: str | None, input_size: int, threads: int | None) -> UnitEstimate:
    """Predict ``model`` at ``precision`` and ``input_size`` on the unit ``hw`` with ``threads``.

    Raises:
        UserError: too many threads for the unit, a precision neither it nor its fallback runs, an uncovered op.
    """
    from evaluators.estimate import estimate_model
    from hw_profiles import load_profile
    from search.models import model_graph

    profile, _, unit_name = load_profile(hw)
    unit = profile.units[unit_name]
    label = f"{profile.name}:{unit_name}"
    if threads and threads > unit.max_threads:
        raise UserError(f"--threads {threads}: {label} runs at most {unit.max_threads} thread(s)")
    fallback_unit = profile.fallback_of(unit_name)
    runs = {*unit.precisions, *(fallback_unit.precisions if fallback_unit else ())}
    if precision and precision not in runs:
        raise UserError(f"{label} does not run {precision}: use --precision {' or '.join(sorted(runs))}")
    graph = model_graph(model, precision, input_size)
    try:
        estimate = estimate_model(graph, profile, unit_name, threads)
    except UserError as exc:  # an uncovered op, or a precision neither the unit nor its fallback runs
        raise UserError(f"{model} on {label}: {exc}") from None
    on_fallback = sorted({row.precision for row in estimate.layers if row.unit != unit_name and row.op_type != "Convert"})
    return UnitEstimate(profile, unit_name, graph, estimate, on_fallback)


def estimate_json(result: UnitEstimate, model: str, precision: str | None, by_layer: bool) -> dict[str, Any]:
    """``result`` as the JSON object of ``search estimate --json``."""
    from core.precisions import REFERENCE
    from search.models import input_dims

    unit, estimate = result.unit, result.estimate
    data = {
        "hw": result.hw,
        "profile_version": result.profile.version,
        "model": model,
        "precision": precision or ("as given" if model.endswith(".onnx") else REFERENCE),
        "input_size": input_dims(result.graph)[2],
        "fallback_unit": unit.fallback if result.on_fallback else None,
        "protocol": unit.protocol,  # what the latency means: KERNELS@YEAR/CORES/TIMED (hw_profiles.protocol)
        **estimate.summary(),
        "latency_band_ms": list(unit.latency_band.around(estimate.latency_ms)) if unit.latency_band else None,
        "latency_band": unit.latency_band.describe() if unit.latency_band else "no out-of-sample check",
        "energy_checked": unit.energy_band is not None,
        "energy_band_mj": list(unit.energy_band.around(estimate.energy_mj)) if unit.energy_band else None,
        "slower_than_fp32": [vars(layer) for layer in estimate.slower_than_fp32()],
    }
    if by_layer:
        data["layers"] = [vars(row) | {"shape": list(row.shape)} for row in estimate.layers]
    return data
