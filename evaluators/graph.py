"""Read an ONNX graph as a device runs it: one Op per real operation, with kind, precision, MACs and bytes.

QuantizeLinear / DequantizeLinear / Cast / Identity nodes are not ops here: they
mark precisions. A compute op (Conv, Gemm, MatMul) runs in INT8 when both its
weight and its data input come through DequantizeLinear, in FP16 when its
weight is stored as float16, else in FP32. Other ops run in INT8 when all their
data inputs come through DequantizeLinear, in FP16 when they read float16; a
unary activation runs in the precision of the op that feeds it, and any non-compute
op fed by an FP16 op stays in FP16.
Shape arithmetic (Shape, Constant, ... on static values) is folded away. Two
rewrites follow what a device's converter does: the element-wise pieces an
exporter writes for an exact GELU (Div, Erf, Add, Mul, Mul) are one Gelu op, and a
constant per-channel scale or shift (Mul, Div, Add, Sub by a constant) that is the
only reader of a conv or linear layer is folded into its weights. Any other op
type that is not listed here raises :class:`UncoveredOpError`.

The ops, their counting and their links come from :mod:`evaluators.graph_core`,
which the executed view (:mod:`evaluators.runtime_graph`) shares.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from core.onnx_ops import MOVES_VALUES, TRANSPARENT
from evaluators.graph_core import (
    COMPUTE,
    FLOAT16,
    KIND,
    Graph,
    GraphBuilder,
    Op,
    Shape,
    UncoveredOpError,
    attribute,
    compute_op,
    constants,
    conv_kind,
    conv_macs,
    dtype_precision,
    gemm_depth,
    is_winograd_shape,
    value_types,
    vector_op,
)
from evaluators.graph_rewrites import batch_one, fold_static_shapes, fuse_erf_gelu, tensor_readers

if TYPE_CHECKING:
    import onnx

__all__ = ["COMPUTE", "Graph", "UncoveredOpError", "passes_int8_through", "read_graph"]

STATIC_SOURCES = {"Constant", "Shape", "Size", "ConstantOfShape"}
SCALE_OR_SHIFT = {"Mul", "Div", "Add", "Sub"}


def passes_int8_through(op_type: str) -> bool:
    """Whether an op keeps quantized values quantized (max pooling, reshapes, copies)."""
    return op_type in MOVES_VALUES


def read_graph(model: onnx.ModelProto) -> Graph:
    """Turn ``model`` (batch fixed to 1 for shapes) into a :class:`Graph`."""
    return _Reader(model).read()


class _Reader:
    def __init__(self, model: onnx.ModelProto) -> None:
        model = fold_static_shapes(batch_one(model))
        self.graph = model.graph
        self.shape, self.dtype = value_types(model)
        self.consts: dict[str, tuple[Shape, int]] = {name: (tuple(t.dims), t.data_type) for name, t in constants(model).items()}
        self.static = set(self.consts)
        self.nodes = fuse_erf_gelu(list(model.graph.node), self.static)
        self.readers = tensor_readers(self.nodes)
        self.outputs = {o.name for o in model.graph.output}
        self.alias: dict[str, str] = {}  # tensor -> tensor it passes through unchanged (transparent nodes)
        self.via_dq: set[str] = set()  # tensors read through a DequantizeLinear
        self.built = GraphBuilder()

    def root(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def read(self) -> Graph:
        ops = self.built.ops
        for node in self.nodes:
            if node.op_type in TRANSPARENT:
                src, out = node.input[0], node.output[0]
                self.alias[out] = src
                if node.op_type == "DequantizeLinear" or src in self.via_dq:
                    self.via_dq.add(out)
                if src in self.static:
                    self.static.add(out)
                continue
            data = [t for t in node.input if t and t not in self.static]
            if node.op_type in STATIC_SOURCES or not data:
                self.static.update(node.output)
                continue
            if self._folds_into_weights(node, data, ops):
                self.alias[node.output[0]] = data[0]
                continue
            op = self._op(node, data)
            if passes_int8_through(op.op_type) and all(t in self.via_dq for t in data):
                self.via_dq.update(node.output)
            self.built.link(op, [self.root(t) for t in data], [math.prod(self.shape.get(t, ())) for t in data])
            if node.op_type not in COMPUTE and op.inputs[0] >= 0 and data[0] not in self.via_dq and op.precision != "fp16":
                producer_precision = ops[op.inputs[0]].precision
                # A runtime runs an activation in its producer's precision, and keeps FP16 data in FP16 through
                # the element-wise and data-movement ops that follow (the Cast back to FP32 after an FP16 layer
                # is where the exporter leaves the layer, not where an FP16 runtime converts).
                if op.kind == "activation" or producer_precision == "fp16":
                    op.precision = producer_precision
            fp16_inputs = any(i >= 0 and ops[i].precision == "fp16" for i in op.inputs)
            if node.op_type in COMPUTE and not op.params and op.precision == "fp32" and fp16_inputs:
                op.precision = "fp16"  # a product of two activations (attention) in an FP16 region
            self.built.add(op, node.output)
        return self.built.graph([self.root(o.name) for o in self.graph.output])

    def _folds_into_weights(self, node: onnx.NodeProto, data: list[str], ops: list[Op]) -> bool:
        """A constant scale or shift (scalar or per channel) whose input only a conv or linear layer writes and only it reads."""
        if node.op_type not in SCALE_OR_SHIFT or len(data) != 1:
            return False
        if node.op_type in ("Div", "Sub") and node.input[0] != data[0]:
            return False  # c / x and c - x are not affine in x
        tensor = data[0]
        while True:  # through casts and quantization marks, each read by the next alone
            if len(self.readers.get(tensor, [])) != 1 or tensor in self.outputs:
                return False
            if tensor not in self.alias:
                break
            tensor = self.alias[tensor]
        producer = self.built.producer.get(tensor)
        constant = self.root(next(t for t in node.input if t and t != data[0]))
        if producer is None or ops[producer].op_type not in COMPUTE or constant not in self.consts:
            return False
        return math.prod(self.consts[constant][0]) in (1, ops[producer].channels[1])

    def _weight(self, name: str) -> tuple[Shape, str] | None:
        """Shape and storage precision of a constant weight input (possibly behind DequantizeLinear), else None."""
        through_dq = name in self.via_dq
        name = self.root(name)
        if name not in self.consts:
            return None
        dims, dtype = self.consts[name]
        return dims, "int8" if through_dq else dtype_precision(dtype)

    def _data_precision(self, data: list[str]) -> str:
        if all(t in self.via_dq for t in data):
            return "int8"
        if any(self.dtype.get(t) == FLOAT16 for t in data):
            return "fp16"
        return "fp32"

    def _op(self, node: onnx.NodeProto, data: list[str]) -> Op:
        out_shape = self.shape.get(node.output[0], ())
        in_elems = sum(math.prod(self.shape.get(t, ())) for t in data)
        if node.op_type in COMPUTE:
            return self._compute_op(node, data, out_shape, in_elems)
        if node.op_type not in KIND:
            raise UncoveredOpError(node.op_type, node.name)
        return vector_op(node, KIND[node.op_type], self._data_precision(data), in_elems, out_shape)

    def _compute_op(self, node: onnx.NodeProto, data: list[str], out_shape: Shape, in_elems: int) -> Op:
        if node.output[0] not in self.shape:
            raise UncoveredOpError(f"{node.op_type} whose output shape cannot be inferred", node.name)
        weight = self._weight(node.input[1])
        out_elems = math.prod(out_shape)
        if node.op_type == "Conv":
            if weight is None:
                raise UncoveredOpError("Conv with a non-constant weight", node.name)
            dims, storage = weight
            macs = conv_macs(out_elems, dims)
            channels = (int(dims[1]), int(dims[0]))
            kind = conv_kind(attribute(node, "group", 1), dims)
            winograd = is_winograd_shape(node, dims)
        else:
            a_shape = self.shape.get(node.input[0], (1,))
            depth = gemm_depth(a_shape, attribute(node, "transA", 0))
            macs = out_elems * depth
            channels = (int(depth), int(out_shape[-1]) if out_shape else 0)
            kind = "gemm"
            winograd = False
            dims, storage = weight if weight else ((), "fp32")
        bias = self._weight(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        activations_int8 = all(t in self.via_dq for t in data)
        return compute_op(
            node,
            kind,
            "fp32" if storage == "int8" and not activations_int8 else storage,
            macs=macs,
            weights=math.prod(dims) if weight else 0,
            biases=math.prod(bias[0]) if bias else 0,
            storage=storage,
            in_elems=in_elems,
            out_shape=out_shape,
            channels=channels,
            winograd_shape=winograd,
        )
