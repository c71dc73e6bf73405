"""What both graph views share: the ops and graphs they build, how an op is counted, how ops link up.

A graph view (:mod:`evaluators.graph` for the exported graph as a device runs it,
:mod:`evaluators.runtime_graph` for the graph onnxruntime executes) walks an ONNX
graph and builds :class:`Op` objects through this module: a compute op's MACs,
parameters and stored bytes (:func:`compute_op`), a vector op's element work
(:func:`vector_op`), and the links between ops (:class:`GraphBuilder`). Bytes
per precision come from the precision registry (:mod:`core.precisions`) only.

An op carries the model's own counts (``macs``, ``params``, ``weight_bytes``)
and, where a runtime's kernel does more than the model asks (channels padded
to a vector block, weights widened to FP32), the work it really does
(``work_macs``, ``work_weight_bytes``), which is what the latency model costs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.precisions import precision as registered_precision

if TYPE_CHECKING:
    import onnx

# onnx.TensorProto data types the views tell apart (kept here so that importing this module stays light).
FLOAT, UINT8, INT8, INT32, INT64, FLOAT16 = 1, 2, 3, 6, 7, 10
INT8_TYPES = {UINT8, INT8}
COMPUTE = {"Conv", "Gemm", "MatMul"}
# ONNX op type -> cost kind of the non-compute ops the model covers.
KIND = {
    **dict.fromkeys(["MaxPool", "AveragePool", "LpPool"], "pool"),
    **dict.fromkeys(["GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceSum", "ReduceMin"], "reduce"),
    **dict.fromkeys(
        [
            "Relu",
            "Clip",
            "LeakyRelu",
            "PRelu",
            "HardSwish",
            "HardSigmoid",
            "Sigmoid",
            "Tanh",
            "Elu",
            "Selu",
            "Softplus",
            "Gelu",
            "Erf",
            "Exp",
            "Log",
            "Sqrt",
            "Reciprocal",
            "Neg",
            "Abs",
            "Floor",
            "Ceil",
            "Round",
            "Mish",
            "Swish",
        ],
        "activation",
    ),
    **dict.fromkeys(
        ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater"], "eltwise"
    ),
    **dict.fromkeys(["BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization", "LRN"], "norm"),
    **dict.fromkeys(["Softmax", "LogSoftmax"], "softmax"),
    **dict.fromkeys(
        ["Concat", "Split", "Slice", "Pad", "Transpose", "Tile", "Expand", "Gather", "DepthToSpace", "SpaceToDepth"], "copy"
    ),
    **dict.fromkeys(["Resize", "Upsample"], "resize"),
    **dict.fromkeys(["Reshape", "Flatten", "Squeeze", "Unsqueeze"], "reshape"),
    **dict.fromkeys(["ArgMax", "TopK"], "reduce"),
}

Shape = tuple[int, ...]


class UncoveredOpError(UserError):
    """The graph holds an op the latency model does not cover; it is never counted as free."""

    def __init__(self, op_type: str, node: str) -> None:
        super().__init__(
            f"op '{op_type}' (node '{node}') is not covered by the latency model: it cannot be estimated; "
            "export the model without it or open an issue"
        )
        self.op_type = op_type


@dataclass
class Op:
    """One operation as the runtime runs it.

    ``macs``, ``params`` and ``weight_bytes`` are the model's (what it computes and stores);
    ``work_macs`` and ``work_weight_bytes`` are what the kernel really does and reads
    (channels padded to a vector block, weights widened for the kernel). They default to the model's.
    """

    name: str
    op_type: str
    kind: str
    precision: str
    macs: int = 0
    vector_ops: int = 0
    params: int = 0
    weight_bytes: int = 0
    input_elems: int = 0
    output_elems: int = 0
    shape: Shape = ()
    inputs: list[int] = field(default_factory=list)
    input_sizes: list[int] = field(default_factory=list)
    readers: int = 0
    channels: tuple[int, int] = (0, 0)  # (input channels per group, output channels) the kernel works on
    storage: str = ""  # precision the model stores the op's weights in ("" without weights)
    work_macs: int = 0
    work_weight_bytes: int = 0
    winograd_shape: bool = False  # a 3x3, stride-1, undilated, ungrouped conv: what Winograd kernels take

    def __post_init__(self) -> None:
        self.work_macs = self.work_macs or self.macs
        self.work_weight_bytes = self.work_weight_bytes or self.weight_bytes


@dataclass
class Graph:
    """The ops of a graph in execution order; ``-1`` in ``Op.inputs`` is the graph input."""

    ops: list[Op]
    output_ops: list[int]
    explicit_conversions: bool = False

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the model's compute ops."""
        return sum(op.macs for op in self.ops)

    @property
    def work_macs(self) -> int:
        """Multiply-accumulates the kernels really run (padded channels included)."""
        return sum(op.work_macs for op in self.ops)

    @property
    def params(self) -> int:
        """Weights of the compute ops (biases included)."""
        return sum(op.params for op in self.ops)

    @property
    def size_bytes(self) -> int:
        """Bytes of the weights, each stored in its layer's precision."""
        return sum(op.weight_bytes for op in self.ops)


def element_bytes(precision: str) -> float:
    """Bytes of one activation value in ``precision``."""
    return registered_precision(precision).activation_bytes


def run_as(graph: Graph, runs_as: Mapping[str, str]) -> Graph:
    """``graph`` with each op in a precision of ``runs_as`` run in the precision it maps to, weights widened (or
    narrowed) to it: a runtime that stores a layer's weights in one precision but computes in another, e.g.
    XNNPACK without its FP16 flag widens float16 weights to FP32 at load."""
    if not runs_as:
        return graph
    ops = []
    for op in graph.ops:
        target = runs_as.get(op.precision)
        if target is None:
            ops.append(op)
            continue
        ratio = registered_precision(target).weight_bytes / registered_precision(op.precision).weight_bytes
        ops.append(dataclasses.replace(op, precision=target, work_weight_bytes=round(op.work_weight_bytes * ratio)))
    return dataclasses.replace(graph, ops=ops)


def stored_bytes(precision: str, weights: int, biases: int = 0) -> int:
    """Bytes of ``weights`` weights and ``biases`` biases of a layer stored in ``precision`` (INT8 keeps INT32 biases)."""
    return registered_precision(precision).stored_bytes(weights, biases)


def dtype_precision(dtype: int | None) -> str:
    """The precision an ONNX tensor of ``dtype`` holds: INT8/UINT8 -> int8, FLOAT16 -> fp16, anything else fp32."""
    if dtype in INT8_TYPES:
        return "int8"
    return "fp16" if dtype == FLOAT16 else "fp32"


def conv_kind(group: int, weight_dims: Shape) -> str:
    """Cost kind of a convolution from its group count and weight shape (O, I/group, kH, kW)."""
    if group == 1:
        return "pointwise" if math.prod(weight_dims[2:]) == 1 else "conv"
    return "depthwise" if weight_dims[1] == 1 else "grouped"


def is_winograd_shape(node: onnx.NodeProto, weight_dims: Shape) -> bool:
    """Whether a Conv is 3x3, stride 1, dilation 1 and ungrouped: the only shape F(4x4, 3x3) Winograd kernels take."""
    ones = [1] * (len(weight_dims) - 2)
    return (
        attribute(node, "group", 1) == 1
        and tuple(weight_dims[2:]) == (3, 3)
        and list(attribute(node, "strides", ones)) == ones
        and list(attribute(node, "dilations", ones)) == ones
    )


def conv_macs(out_elems: int, weight_dims: Shape) -> int:
    """Multiply-accumulates of a convolution: each output reads (input channels per group x kernel taps) inputs."""
    return out_elems * int(weight_dims[1]) * math.prod(weight_dims[2:])


def gemm_depth(a_shape: Shape, trans_a: int) -> int:
    """The reduced dimension of a Gemm or MatMul: the first input's last (or, transposed, second last) dimension."""
    return a_shape[-2] if trans_a and len(a_shape) > 1 else a_shape[-1]


def compute_op(
    node: onnx.NodeProto,
    kind: str,
    precision: str,
    *,
    macs: int,
    weights: int,
    biases: int,
    storage: str,
    in_elems: int,
    out_shape: Shape,
    channels: tuple[int, int],
    work_macs: int = 0,
    work_weight_bytes: int = 0,
    winograd_shape: bool = False,
) -> Op:
    """A conv or linear op: the model's MACs, parameters (biases included) and bytes stored in ``storage``."""
    return Op(
        node.name,
        node.op_type,
        kind,
        precision,
        macs=macs,
        params=weights + biases,
        weight_bytes=stored_bytes(storage, weights, biases) if weights or biases else 0,
        input_elems=in_elems,
        output_elems=math.prod(out_shape),
        shape=out_shape,
        channels=channels,
        storage=storage if weights or biases else "",
        work_macs=work_macs,
        work_weight_bytes=work_weight_bytes,
        winograd_shape=winograd_shape,
    )


def vector_op(node: onnx.NodeProto, kind: str, precision: str, in_elems: int, out_shape: Shape) -> Op:
    """A non-MAC op: its vector work by kind (pool: outputs x window; reduce/softmax/norm: the larger side; reshape: none)."""
    out_elems = math.prod(out_shape)
    vector_ops = out_elems
    if kind == "pool":
        vector_ops = out_elems * math.prod(attribute(node, "kernel_shape", [1]))
    elif kind in ("reduce", "softmax", "norm"):
        vector_ops = max(in_elems, out_elems)
    elif kind == "reshape":
        vector_ops = 0
    return Op(
        node.name,
        node.op_type,
        kind,
        precision,
        vector_ops=vector_ops,
        input_elems=in_elems,
        output_elems=out_elems,
        shape=out_shape,
    )


def attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    """The value of ``node``'s attribute ``name``, else ``default``."""
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class GraphBuilder:
    """Ops in execution order, each linked to the ops that write its inputs."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.producer: dict[str, int] = {}  # tensor -> index of the op that writes it

    def link(self, op: Op, tensors: Iterable[str], sizes: Iterable[int]) -> None:
        """Record ``op``'s inputs: the op writing each tensor (``-1``: the graph input) and its elements."""
        for name, size in zip(tensors, sizes, strict=True):
            producer = self.producer.get(name, -1)
            op.inputs.append(producer)
            op.input_sizes.append(size)
            if producer >= 0:
                self.ops[producer].readers += 1

    def add(self, op: Op, outputs: Iterable[str]) -> int:
        """Append ``op``, the writer of ``outputs``; returns its index."""
        index = len(self.ops)
        for out in outputs:
            self.producer[out] = index
        self.ops.append(op)
        return index

    def alias(self, tensor: str, source: str) -> None:
        """``tensor`` is ``source`` under another name (an Identity)."""
        if source in self.producer:
            self.producer[tensor] = self.producer[source]

    def graph(self, outputs: Iterable[str], explicit_conversions: bool = False) -> Graph:
        """The graph whose outputs are the tensors ``outputs`` (each counts as one more reader of its op)."""
        output_ops = [self.producer[name] for name in outputs if name in self.producer]
        for i in output_ops:
            self.ops[i].readers += 1
        return Graph(ops=self.ops, output_ops=output_ops, explicit_conversions=explicit_conversions)


def value_types(model: onnx.ModelProto) -> tuple[dict[str, Shape], dict[str, int]]:
    """Static shapes (every dimension known) and element types of the graph's inputs, annotations and outputs."""
    shapes: dict[str, Shape] = {}
    dtypes: dict[str, int] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        t = vi.type.tensor_type
        dtypes[vi.name] = t.elem_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in t.shape.dim)
    return shapes, dtypes


def constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Every constant tensor of the graph: initializers and the values of Constant nodes."""
    found = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = attribute(node, "value", None)
            if value is not None:
                found[node.output[0]] = value
    return found
