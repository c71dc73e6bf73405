from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from evaluators.estimate import estimate_model, graph_for_unit
from evaluators.graph import read_graph
from evaluators.runtime_graph import onnxruntime_graph, read_executed_graph
from hw_profiles import load_profile
from spaces.fp16 import convert_layers_fp16
from spaces.onnx_export import compute_node_names, export_onnx
from spaces.quantize import quantize_int8


def _int8_graph():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()
    graph = export_onnx(model, 32)
    calibration = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    return quantize_int8(graph, calibration, compute_node_names(graph))


def test_executed_graph_shows_what_onnxruntime_runs():
    profile, unit, _ = load_profile("host")
    graph = graph_for_unit(_int8_graph(), unit)
    assert graph.explicit_conversions
    kinds = {(op.op_type, op.precision) for op in graph.ops}
    assert ("QLinearConv", "int8") in kinds
    assert any(op.op_type == "QuantizeLinear" for op in graph.ops)
    assert all(op.shape for op in graph.ops)
    conv_macs = sum(op.macs for op in graph.ops if op.op_type == "QLinearConv")
    device_view = read_graph(_int8_graph())
    assert conv_macs == sum(op.macs for op in device_view.ops if op.op_type == "Conv")
    estimate = estimate_model(_int8_graph(), profile, "cpu")
    assert not [row for row in estimate.layers if row.op_type == "Convert"]  # conversions are the graph's own ops
    assert estimate.latency_ms > 0
    # the 3-channel stem misses the symmetric INT8 kernel's channel alignment: onnxruntime runs it as im2col + QGEMM
    assert [op.kind for op in graph.ops if op.op_type == "QLinearConv"] == ["im2col", "conv"]


def test_host_and_device_views_count_the_same_weights():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)
    ).eval()
    unit = load_profile("host")[1]
    expected = sum(p.numel() for p in model.parameters())  # the classifier's bias included
    assert graph_for_unit(export_onnx(model, 16), unit).params == read_graph(export_onnx(model, 16)).params == expected


class _MeanThenLinear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(3, 16, 3), torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


@pytest.mark.parametrize("opset", [17, 18])  # 18 gives ReduceMean its axes as an input, 17 as an attribute
def test_host_view_reads_the_shape_a_reduction_leaves(tmp_path, opset):
    path = tmp_path / "mean.onnx"
    torch.onnx.export(_MeanThenLinear().eval(), (torch.randn(1, 3, 16, 16),), str(path), opset_version=opset, dynamo=False)
    host = graph_for_unit(onnx.load(path), load_profile("host")[1])
    (reduce,) = [op for op in host.ops if op.op_type == "ReduceMean"]
    (gemm,) = [op for op in host.ops if op.kind == "gemm"]
    assert reduce.shape == (1, 16) and gemm.macs == 16 * 10


class _SiluSplit(torch.nn.Module):  # MixNet-style: one tensor split into groups with their own kernel sizes
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.SiLU())
        self.small, self.large = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.stem(x), [8, 8], dim=1)
        return torch.cat([self.small(a), self.large(b)], 1).reshape(1, 16, -1).mean(-1)


def test_host_view_reads_silu_fusions_splits_and_reshapes():
    model = export_onnx(_SiluSplit().eval(), 16)
    host = graph_for_unit(model, load_profile("host")[1])
    assert {"QuickGelu", "Split"} <= {op.op_type for op in host.ops}  # onnxruntime fuses x * Sigmoid(x)
    assert host.macs == read_graph(model).macs  # the split halves and the reshaped tensor keep their shapes


class _Mixed(torch.nn.Module):
    """Channel counts a block of 16 pads (24) and an SE-free MobileNet-like body, then two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.expand = torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.Conv2d(16, 24, 3, padding=1)
        self.dw, self.project = torch.nn.Conv2d(24, 24, 3, padding=1, groups=24), torch.nn.Conv2d(24, 32, 1)
        self.fc1, self.fc2 = torch.nn.Linear(32, 16), torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.dw(torch.relu(self.expand(torch.relu(self.stem(x))))))
        x = torch.nn.functional.adaptive_avg_pool2d(self.project(x), 1).flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))


LAYERS = ["stem", "expand", "dw", "project", "fc1", "fc2"]
PLANS = {  # precision -> layers; the rest stay FP32
    "fp32": {},
    "fp16": {"fp16": LAYERS},
    "int8": {"int8": LAYERS},
    "mixed": {"int8": ["expand", "project", "fc1"], "fp16": ["dw", "fc2"]},
}


def _realised(plan: dict[str, list[str]]) -> onnx.ModelProto:
    torch.manual_seed(0)
    graph = export_onnx(_Mixed().eval(), 16)
    if plan.get("int8"):
        calibration = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
        graph = quantize_int8(graph, calibration, plan["int8"], batch=8)
    if plan.get("fp16"):
        graph = convert_layers_fp16(graph, plan["fp16"])
    return graph


def _bytes_by_storage(graph) -> dict[str, int]:
    found: dict[str, int] = {}
    for op in graph.ops:
        if op.storage:
            found[op.storage] = found.get(op.storage, 0) + op.weight_bytes
    return found


@pytest.mark.parametrize("name", list(PLANS))
def test_static_and_executed_views_agree_on_params_bytes_and_macs(name):
    graph = _realised(PLANS[name])
    device, executed = read_graph(graph), read_executed_graph(onnxruntime_graph(graph))
    assert (executed.params, executed.size_bytes, executed.macs) == (device.params, device.size_bytes, device.macs)
    assert _bytes_by_storage(executed) == _bytes_by_storage(device)
    expected = {"fp32": {"fp32"}, "fp16": {"fp16"}, "int8": {"int8"}, "mixed": {"fp32", "fp16", "int8"}}[name]
    assert set(_bytes_by_storage(device)) == expected
    model = _Mixed()
    assert device.params == sum(p.numel() for p in model.parameters())
    precision_of = {layer: precision for precision, layers in PLANS[name].items() for layer in layers}
    stored = 0
    for layer in LAYERS:
        conv = getattr(model, layer)
        precision = precision_of.get(layer, "fp32")
        size = {"fp32": 4, "fp16": 2, "int8": 1}[precision]
        stored += conv.weight.numel() * size + conv.bias.numel() * (4 if precision == "int8" else size)  # INT32 biases
    assert device.size_bytes == stored


def test_int8_convs_are_costed_on_whole_16_channel_weight_panels():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.Conv2d(32, 20, 1), torch.nn.ReLU(), torch.nn.Conv2d(20, 32, 1)
    ).eval()
    graph = export_onnx(model, 16)
    calibration = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    int8 = quantize_int8(graph, calibration, compute_node_names(graph))
    convs = [op for op in graph_for_unit(int8, load_profile("host")[1]).ops if op.op_type == "QLinearConv"]
    assert [op.work_macs / op.macs for op in convs][:2] == [1.0, 32 / 20]  # 20 output channels run as 32
