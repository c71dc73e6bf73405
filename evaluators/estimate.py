"""One entry point: predicted latency and energy of an ONNX graph on a unit of a hardware profile."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evaluators.cost_model import CostModel, Estimate
from evaluators.graph import Graph, read_graph
from evaluators.graph_core import run_as

if TYPE_CHECKING:
    import onnx

    from hw_profiles.schema import Profile, Unit


def graph_for_unit(model: onnx.ModelProto, unit: Unit) -> Graph:
    """The ops of ``model`` as ``unit``'s runtime runs them (QDQ device view, or onnxruntime's executed graph), in
    the precisions it computes them in (``unit.runs_as``)."""
    if unit.graph == "onnxruntime":
        from evaluators.runtime_graph import onnxruntime_graph, read_executed_graph

        return read_executed_graph(onnxruntime_graph(model))
    return run_as(read_graph(model), unit.runs_as)


def cost_model(profile: Profile, unit_name: str, threads: int | None = None) -> CostModel:
    """The cost model of one unit of ``profile``, with its fallback unit resolved."""
    return CostModel(profile.units[unit_name], threads=threads, fallback=profile.fallback_of(unit_name), name=unit_name)


def estimate_model(model: onnx.ModelProto, profile: Profile, unit_name: str, threads: int | None = None) -> Estimate:
    """Latency (ms), energy (mJ), parameters, MACs and per-layer costs of one inference of ``model``."""
    return cost_model(profile, unit_name, threads).estimate(graph_for_unit(model, profile.units[unit_name]))
