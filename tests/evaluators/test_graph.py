from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from evaluators.graph import UncoveredOpError, read_graph
from spaces.fp16 import convert_layers_fp16
from spaces.onnx_export import export_onnx


class Known(torch.nn.Module):
    """Layers whose MACs are easy to count by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)  # 16*16*8 outputs x 3*9 = 55,296 MACs
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)  # 16*16*8 x 9 = 18,432
        self.pw = torch.nn.Conv2d(8, 16, 1)  # 16*16*16 x 8 = 32,768
        self.fc = torch.nn.Linear(16, 10)  # 160

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.pw(self.dw(torch.relu(self.conv(x)))))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_macs_params_kinds_and_size():
    model = Known().eval()
    graph = read_graph(export_onnx(model, 16))
    by_name = {op.name: op for op in graph.ops}
    assert by_name["conv"].macs == 55_296 and by_name["conv"].kind == "conv"
    assert by_name["dw"].macs == 18_432 and by_name["dw"].kind == "depthwise"
    assert by_name["pw"].macs == 32_768 and by_name["pw"].kind == "pointwise"
    assert by_name["fc"].macs == 160 and by_name["fc"].kind == "gemm"
    assert graph.macs == 55_296 + 18_432 + 32_768 + 160
    assert graph.params == sum(p.numel() for p in model.parameters())
    assert graph.size_bytes == 4 * graph.params
    fp16 = read_graph(convert_layers_fp16(export_onnx(model, 16), ["conv", "pw"]))
    assert fp16.size_bytes == graph.size_bytes - 2 * (model.conv.weight.numel() + 8 + model.pw.weight.numel() + 16)
    assert {op.name: op.precision for op in fp16.ops}["pw"] == "fp16"


def test_activation_runs_in_its_producers_precision():
    graph = read_graph(convert_layers_fp16(export_onnx(Known().eval(), 16), ["conv"]))
    relu = next(op for op in graph.ops if op.op_type == "Relu")
    assert relu.precision == "fp16"


class Attention(torch.nn.Module):
    """A projection, an element-wise scale and a product of two activations (as in attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Conv2d(3, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.flatten(self.proj(x), 2) * 0.5
        return torch.matmul(q, q.transpose(1, 2))


def test_fp16_stays_fp16_through_element_wise_ops_and_activation_products():
    graph = read_graph(convert_layers_fp16(export_onnx(Attention().eval(), 8), ["proj"]))
    kinds = {op.op_type: op.precision for op in graph.ops}
    assert kinds["Mul"] == "fp16" and kinds["MatMul"] == "fp16"
    fp32 = read_graph(export_onnx(Attention().eval(), 8))
    assert {op.precision for op in fp32.ops} == {"fp32"}


def test_uncovered_op_raises_with_its_name():
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["out"], name="nms")
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 4]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.INT64, [None, 3])],
    )
    with pytest.raises(UncoveredOpError, match="NonMaxSuppression"):
        read_graph(helper.make_model(graph))


def test_shape_arithmetic_is_folded_not_counted():
    class Reshaping(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(x.shape[0], -1) * 2

    graph = read_graph(export_onnx(Reshaping(), 4))
    assert [op.op_type for op in graph.ops] == ["Reshape", "Mul"]
    onnx.checker.check_model(export_onnx(Reshaping(), 4))
