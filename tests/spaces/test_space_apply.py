from __future__ import annotations

import json

import onnx
import optuna
import pytest
import torch

from evaluators.graph import read_graph
from spaces.analysis import analyse
from spaces.apply import quantizable_layers, realise
from spaces.plan import CompressionPlan, LayerPlan, PlanError, Recipe
from spaces.space import SearchSpace
from spaces.strategies import default_strategies, strategy_plans


@pytest.fixture()
def space(tiny_cnn):
    analysis = analyse(tiny_cnn, torch.zeros(1, 3, 16, 16))
    int8 = set(analysis.layers) - {"fc"}
    return SearchSpace.build(analysis, ["fp32", "fp16", "int8"], int8, recipe=Recipe(finetune_epochs=1))


def test_space_follows_unit_and_quantizable_layers(space, tiny_cnn):
    assert space.precisions["fc"] == ("fp32", "fp16")
    assert space.precisions["stem.0"] == ("fp32", "fp16", "int8")
    fp32_only = SearchSpace.build(space.analysis, ["fp32"], set(space.analysis.layers))
    assert set(fp32_only.precisions.values()) == {("fp32",)}
    assert fp32_only.signature() != space.signature()
    assert default_strategies(fp32_only) == ["uncompressed", "prune-uniform-25", "prune-uniform-50"]


def test_enqueued_baselines_come_back_as_the_same_plans(space):
    study = optuna.create_study(directions=["maximize", "minimize"])
    baselines = strategy_plans(space, default_strategies(space))
    assert list(baselines) == ["uncompressed", "all-int8", "prune-uniform-25", "prune-uniform-50", "prune-uniform-50-int8"]
    for plan in baselines.values():
        study.enqueue_trial(space.params(plan))
    for plan in baselines.values():
        assert space.suggest(study.ask()) == plan
    assert baselines["all-int8"].layers["fc"].precision == "fp32"  # INT8 is not offered where NNCF cannot quantize
    random_plan = space.suggest(study.ask())
    for group in space.analysis.groups:
        assert len({random_plan.layers[m].prune_ratio for m in group.members}) == 1


def test_apply_is_replayable_and_really_compresses(space, tiny_cnn, digits):
    plan = space.plan(
        {g.root: 0.5 for g in space.analysis.groups},
        {name: ("int8" if i % 2 else "fp16") if name != "fc" else "fp32" for i, name in enumerate(space.analysis.layers)},
    )
    first = realise(plan, tiny_cnn, digits.train, 16).graph
    second = realise(plan, tiny_cnn, digits.train, 16).graph
    assert first.SerializeToString() == second.SerializeToString()
    stored = json.loads({p.key: p.value for p in first.metadata_props}["compression_plan"])
    assert CompressionPlan.from_dict(stored) == plan
    graph = read_graph(first)
    assert graph.params < 0.5 * sum(p.numel() for p in tiny_cnn.parameters())
    realised = {op.name: op.precision for op in graph.ops if op.op_type in ("Conv", "Gemm")}
    assert realised == {name: lp.precision for name, lp in plan.layers.items()}
    onnx.checker.check_model(first)


def test_plan_for_another_model_is_refused(tiny_cnn, digits):
    with pytest.raises(PlanError, match=r"layers the model does not have: features\.0"):
        realise(CompressionPlan({"features.0": LayerPlan()}), tiny_cnn, digits.train, 16)


def test_quantizable_layers_probe(tiny_hlcnn, digits):
    layers = quantizable_layers(tiny_hlcnn, digits.train, 16)
    assert {"stem.0", "block1.expand.0", "head.0"} <= layers
    assert layers <= set(analyse(tiny_hlcnn, torch.zeros(1, 3, 16, 16)).layers)


@pytest.mark.parametrize("fixture", ["tiny_cnn", "tiny_hlcnn"])
def test_quantized_nodes_are_the_layers_the_device_view_reads_as_int8(fixture, digits, request):
    """spaces reads the QDQ graph without evaluators; both must agree, the linear layer behind a Flatten included."""
    from evaluators.graph import read_graph
    from spaces.apply import calibration_images
    from spaces.onnx_export import compute_node_names, export_onnx
    from spaces.quantize import quantize_int8, quantized_nodes

    graph = export_onnx(request.getfixturevalue(fixture), 16)
    names = compute_node_names(graph)
    quantized = quantize_int8(graph, calibration_images(digits.train, 16, 0), names)
    device_view = {op.name for op in read_graph(quantized).ops if op.name in names and op.precision == "int8"}
    assert quantized_nodes(quantized) & set(names) == device_view
    assert fixture != "tiny_cnn" or "fc" in device_view
