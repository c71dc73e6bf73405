from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from core.errors import UserError
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
    with pytest.raises(UncoveredOpError, match=r"^op 'NonMaxSuppression' \(node 'nms'\) is not covered") as raised:
        read_graph(helper.make_model(graph))
    assert isinstance(raised.value, UserError) and raised.value.op_type == "NonMaxSuppression"
    assert str(raised.value).endswith("export the model without it or open an issue") and "\n" not in str(raised.value)


def test_shape_arithmetic_is_folded_not_counted():
    class Reshaping(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(x.shape[0], -1) * 2

    graph = read_graph(export_onnx(Reshaping(), 4))
    assert [op.op_type for op in graph.ops] == ["Reshape", "Mul"]
    onnx.checker.check_model(export_onnx(Reshaping(), 4))


class GeluAndLayerScale(torch.nn.Module):
    """A conv, an exact GELU (which exporters write out as Div, Erf, Add, Mul, Mul) and a per-channel layer scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.pw = torch.nn.Conv2d(8, 8, 1)
        self.gamma = torch.nn.Parameter(torch.full((8, 1, 1), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.gelu(self.conv(x))
        return y + self.pw(y) * self.gamma


def test_exported_gelu_is_one_op_and_a_layer_scale_folds_into_its_conv():
    exported = export_onnx(GeluAndLayerScale().eval(), 8)
    assert {"Erf", "Div"} <= {node.op_type for node in exported.graph.node}
    graph = read_graph(exported)
    assert [op.op_type for op in graph.ops] == ["Conv", "Gelu", "Conv", "Add"]
    gelu, add = graph.ops[1], graph.ops[3]
    assert gelu.inputs == [0] and gelu.kind == "activation" and gelu.output_elems == 8 * 8 * 8
    assert add.inputs == [1, 2]  # the residual reads the GELU and the scaled conv, whose scale is in its weights


@pytest.mark.parametrize(
    ("forward", "kept"),
    [
        (lambda conv, x: 1.0 - conv(x), "Sub"),  # c - x is not a shift of x
        (lambda conv, x: conv(x) * torch.ones(1, 8, 8, 8), "Mul"),  # a full tensor, not per channel
        (lambda conv, x: conv(x) * 0.5 + conv(x).sum(), "Mul"),  # the conv output has another reader
    ],
)
def test_only_a_scale_or_shift_read_by_its_conv_alone_is_folded(forward, kept):
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return forward(self.conv, x)

    assert kept in [op.op_type for op in read_graph(export_onnx(Model().eval(), 8)).ops]


@pytest.mark.parametrize("half_first", [False, True])
def test_gelu_is_found_whichever_side_the_half_is_on(half_first):
    """torch writes x * (1 + erf(x / c)) * 0.5; tf2onnx writes (0.5 * x) * (1 + erf(x / c))."""
    constants = [
        helper.make_tensor(name, TensorProto.FLOAT, [], [value]) for name, value in [("c", 1.41), ("one", 1.0), ("h", 0.5)]
    ]
    nodes = [
        helper.make_node("Relu", ["in"], ["x"], name="relu"),
        helper.make_node("Div", ["x", "c"], ["s"], name="/act/Div"),
        helper.make_node("Erf", ["s"], ["e"], name="/act/Erf"),
        helper.make_node("Add", ["e", "one"], ["a"], name="/act/Add"),
    ]
    if half_first:
        nodes += [
            helper.make_node("Mul", ["h", "x"], ["hx"], name="/act/Mul"),
            helper.make_node("Mul", ["hx", "a"], ["out"], name="/act/Mul_1"),
        ]
    else:
        nodes += [
            helper.make_node("Mul", ["x", "a"], ["xa"], name="/act/Mul"),
            helper.make_node("Mul", ["xa", "h"], ["out"], name="/act/Mul_1"),
        ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("in", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
        constants,
    )
    ops = read_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])).ops
    assert [(op.op_type, op.name, op.inputs) for op in ops] == [("Relu", "relu", [-1]), ("Gelu", "/act", [0])]
