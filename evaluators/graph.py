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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hw_profiles.schema import Precision

if TYPE_CHECKING:
    import onnx

BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
TRANSPARENT = {"QuantizeLinear", "DequantizeLinear", "Cast", "Identity", "Dropout"}
STATIC_SOURCES = {"Constant", "Shape", "Size", "ConstantOfShape"}
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
SCALE_OR_SHIFT = {"Mul", "Div", "Add", "Sub"}
# Ops that move or select values without arithmetic: an INT8 input stays INT8 through them.
PASS_THROUGH_KINDS = {"reshape", "copy"}
PASS_THROUGH_OPS = {"MaxPool", "GlobalMaxPool"}


def passes_int8_through(op_type: str, kind: str) -> bool:
    """Whether an op keeps quantized values quantized (max pooling, reshapes, copies)."""
    return kind in PASS_THROUGH_KINDS or op_type in PASS_THROUGH_OPS


class UncoveredOpError(ValueError):
    """The graph holds an op type the cost model does not cover; it is never counted as free."""

    def __init__(self, op_type: str, node: str) -> None:
        super().__init__(f"op '{op_type}' (node '{node}') is not covered by the latency model")
        self.op_type = op_type


@dataclass
class Op:
    """One operation as the device runs it."""

    name: str
    op_type: str
    kind: str
    precision: Precision
    macs: int = 0
    vector_ops: int = 0
    params: int = 0
    weight_bytes: int = 0
    input_elems: int = 0
    output_elems: int = 0
    shape: tuple[int, ...] = ()
    inputs: list[int] = field(default_factory=list)
    input_sizes: list[int] = field(default_factory=list)
    readers: int = 0
    channels: tuple[int, int] = (0, 0)  # (input channels per group, output channels) of a compute op


@dataclass
class Graph:
    """The ops of a graph in execution order; ``-1`` in ``Op.inputs`` is the graph input."""

    ops: list[Op]
    output_ops: list[int]
    explicit_conversions: bool = False

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the compute ops."""
        return sum(op.macs for op in self.ops)

    @property
    def params(self) -> int:
        """Weights of the compute ops (biases included)."""
        return sum(op.params for op in self.ops)

    @property
    def size_bytes(self) -> int:
        """Bytes of the weights, each stored in its layer's precision."""
        return sum(op.weight_bytes for op in self.ops)


def read_graph(model: onnx.ModelProto) -> Graph:
    """Turn ``model`` (batch fixed to 1 for shapes) into a :class:`Graph`."""
    return _Reader(model).read()


class _Reader:
    def __init__(self, model: onnx.ModelProto) -> None:
        import onnx
        from onnx import numpy_helper

        model = fold_static_shapes(batch_one(model))
        self.graph = model.graph
        self.dtype: dict[str, int] = {}
        self.shape: dict[str, tuple[int, ...]] = {}
        for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
            t = vi.type.tensor_type
            self.dtype[vi.name] = t.elem_type
            if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                self.shape[vi.name] = tuple(d.dim_value for d in t.shape.dim)
        self.consts: dict[str, tuple[tuple[int, ...], int]] = {}
        for init in model.graph.initializer:
            self.consts[init.name] = (tuple(init.dims), init.data_type)
        for node in model.graph.node:
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.consts[node.output[0]] = (tuple(value.dims), value.data_type)
        self.static = set(self.consts)
        self.nodes = fuse_erf_gelu(list(model.graph.node), self.static)
        self.readers = tensor_readers(self.nodes)
        self.outputs = {o.name for o in model.graph.output}
        self.alias: dict[str, str] = {}  # tensor -> tensor it passes through unchanged (transparent nodes)
        self.via_dq: set[str] = set()  # tensors read through a DequantizeLinear
        self.producer: dict[str, int] = {}
        self.onnx = onnx
        self.numpy_helper = numpy_helper

    def root(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def read(self) -> Graph:
        ops: list[Op] = []
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
            if passes_int8_through(op.op_type, op.kind) and all(t in self.via_dq for t in data):
                self.via_dq.update(node.output)
            for name in data:
                producer = self.producer.get(self.root(name), -1)
                op.inputs.append(producer)
                op.input_sizes.append(math.prod(self.shape.get(name, ())))
                if producer >= 0:
                    ops[producer].readers += 1
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
            for out in node.output:
                self.producer[out] = len(ops)
            ops.append(op)
        outputs = [self.producer[self.root(o.name)] for o in self.graph.output if self.root(o.name) in self.producer]
        for i in outputs:
            ops[i].readers += 1
        return Graph(ops=ops, output_ops=outputs)

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
        producer = self.producer.get(tensor)
        constant = self.root(next(t for t in node.input if t and t != data[0]))
        if producer is None or ops[producer].op_type not in COMPUTE or constant not in self.consts:
            return False
        return math.prod(self.consts[constant][0]) in (1, ops[producer].channels[1])

    def _weight(self, name: str) -> tuple[tuple[int, ...], Precision] | None:
        """Shape and storage precision of a constant weight input (possibly behind DequantizeLinear), else None."""
        through_dq = name in self.via_dq
        name = self.root(name)
        if name not in self.consts:
            return None
        dims, dtype = self.consts[name]
        if through_dq or dtype in (self.onnx.TensorProto.INT8, self.onnx.TensorProto.UINT8):
            return dims, "int8"
        return dims, "fp16" if dtype == self.onnx.TensorProto.FLOAT16 else "fp32"

    def _data_precision(self, data: list[str]) -> Precision:
        if all(t in self.via_dq for t in data):
            return "int8"
        if any(self.dtype.get(t) == self.onnx.TensorProto.FLOAT16 for t in data):
            return "fp16"
        return "fp32"

    def _op(self, node: onnx.NodeProto, data: list[str]) -> Op:
        out_shape = self.shape.get(node.output[0], ())
        out_elems = math.prod(out_shape)
        in_elems = sum(math.prod(self.shape.get(t, ())) for t in data)
        if node.op_type in COMPUTE:
            return self._compute_op(node, data, out_shape, in_elems)
        if node.op_type not in KIND:
            raise UncoveredOpError(node.op_type, node.name)
        kind = KIND[node.op_type]
        vector_ops = out_elems
        if kind == "pool":
            kernel = next((a.ints for a in node.attribute if a.name == "kernel_shape"), [1])
            vector_ops = out_elems * math.prod(kernel)
        elif kind in ("reduce", "softmax", "norm"):
            vector_ops = max(in_elems, out_elems)
        elif kind == "reshape":
            vector_ops = 0
        return Op(
            node.name,
            node.op_type,
            kind,
            self._data_precision(data),
            vector_ops=vector_ops,
            input_elems=in_elems,
            output_elems=out_elems,
            shape=out_shape,
        )

    def _compute_op(self, node: onnx.NodeProto, data: list[str], out_shape: tuple[int, ...], in_elems: int) -> Op:
        if node.output[0] not in self.shape:
            raise UncoveredOpError(f"{node.op_type} whose output shape cannot be inferred", node.name)
        weight = self._weight(node.input[1])
        out_elems = math.prod(out_shape)
        if node.op_type == "Conv":
            if weight is None:
                raise UncoveredOpError("Conv with a non-constant weight", node.name)
            dims, storage = weight
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            kernel = math.prod(dims[2:])
            macs = out_elems * dims[1] * kernel
            channels = (int(dims[1]), int(dims[0]))
            if group == 1:
                kind = "pointwise" if kernel == 1 else "conv"
            else:
                kind = "depthwise" if dims[1] == 1 else "grouped"
        else:
            a_shape = self.shape.get(node.input[0], (1,))
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            depth = a_shape[-2] if trans_a and len(a_shape) > 1 else a_shape[-1]
            macs = out_elems * depth
            channels = (int(depth), int(out_shape[-1]) if out_shape else 0)
            kind = "gemm"
            dims, storage = weight if weight else ((), "fp32")
        params = math.prod(dims) if weight else 0
        bias = self._weight(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        bias_elems = math.prod(bias[0]) if bias else 0
        activations_int8 = all(t in self.via_dq for t in data)
        precision = "fp32" if storage == "int8" and not activations_int8 else storage
        weight_bytes = params * BYTES[storage] + bias_elems * (4 if storage == "int8" else BYTES[storage])
        return Op(
            node.name,
            node.op_type,
            kind,
            precision,
            macs=macs,
            params=params + bias_elems,
            weight_bytes=weight_bytes,
            input_elems=in_elems,
            output_elems=out_elems,
            shape=out_shape,
            channels=channels,
        )


def tensor_readers(nodes: list[onnx.NodeProto]) -> dict[str, list[onnx.NodeProto]]:
    """The nodes that read each tensor."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def fuse_erf_gelu(nodes: list[onnx.NodeProto], static: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` with each exact GELU an exporter wrote out (x/c, Erf, +1, times x, times 0.5) as one Gelu node."""
    from onnx import helper

    producer = {out: node for node in nodes for out in node.output}
    readers = tensor_readers(nodes)
    replaced: dict[int, onnx.NodeProto] = {}
    dropped: set[int] = set()
    for erf in (n for n in nodes if n.op_type == "Erf"):
        region = _erf_gelu_region(erf, producer, readers, static)
        if region is None:
            continue
        sink = region[-1]
        scope: list[str] = []  # the nodes' common name scope: '/blocks.0/act' of '/blocks.0/act/Div', ...
        for parts in zip(*(n.name.split("/")[:-1] for n in region), strict=False):
            if len(set(parts)) > 1:
                break
            scope.append(parts[0])
        x = _data(region[0], static)[0]
        replaced[id(sink)] = helper.make_node("Gelu", [x], [sink.output[0]], name="/".join(scope) or sink.name)
        dropped.update(id(n) for n in region[:-1])
    return [replaced.get(id(n), n) for n in nodes if id(n) not in dropped]


def _data(node: onnx.NodeProto, static: set[str]) -> list[str]:
    return [t for t in node.input if t and t not in static]


def _only_reader(readers: dict[str, list[onnx.NodeProto]], tensor: str, op_type: str) -> onnx.NodeProto | None:
    found = readers.get(tensor, [])
    return found[0] if len(found) == 1 and found[0].op_type == op_type else None


def _erf_gelu_region(
    erf: onnx.NodeProto, producer: dict[str, onnx.NodeProto], readers: dict[str, list[onnx.NodeProto]], static: set[str]
) -> list[onnx.NodeProto] | None:
    """The nodes of the GELU around ``erf``, its x/c node first and the node writing its result last; None if none."""
    scale = producer.get(erf.input[0])
    if scale is None or scale.op_type not in ("Div", "Mul") or len(_data(scale, static)) != 1:
        return None
    if _only_reader(readers, erf.input[0], "Erf") is None:
        return None
    x = _data(scale, static)[0]
    add = _only_reader(readers, erf.output[0], "Add")
    if add is None or _data(add, static) != [erf.output[0]]:
        return None
    times = _only_reader(readers, add.output[0], "Mul")
    if times is None or len(_data(times, static)) != 2:
        return None
    other = next(t for t in _data(times, static) if t != add.output[0])
    if other == x:  # x * (1 + erf), then the constant half
        half = _only_reader(readers, times.output[0], "Mul")
        return [scale, erf, add, times] + ([half] if half is not None and len(_data(half, static)) == 1 else [])
    half = producer.get(other)  # (x * 0.5) * (1 + erf)
    if half is None or half.op_type != "Mul" or _data(half, static) != [x] or _only_reader(readers, other, "Mul") is None:
        return None
    return [scale, erf, add, half, times]


NEVER_FOLDED = {"QuantizeLinear", "DequantizeLinear"}  # they mark precisions in the device view
FOLD_LIMIT = 1 << 16  # elements: shape arithmetic is small; weights are not rewritten


def fold_static_shapes(model: onnx.ModelProto, max_rounds: int = 20) -> onnx.ModelProto:
    """Shape inference with every constant subgraph evaluated (e.g. the pads of TF-style 'same' padding).

    With the input size fixed, shape arithmetic (Shape -> Gather/Slice/Concat/... -> Pad or Reshape) is
    constant; ONNX's own inference cannot follow it through every op, so such nodes are evaluated with the
    ONNX reference evaluator and replaced by constants, until nothing changes.
    """
    import numpy as np
    from onnx import numpy_helper, shape_inference
    from onnx.reference import ReferenceEvaluator

    for _ in range(max_rounds):
        model = shape_inference.infer_shapes(model, data_prop=True)
        known = {
            vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
            for vi in [*model.graph.input, *model.graph.value_info]
            if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim)
        }
        values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        folded, keep = [], []
        for node in model.graph.node:
            inputs = [name for name in node.input if name]
            value = None
            if node.op_type == "Constant" and not inputs:
                value = ReferenceEvaluator(node).run(None, {})
            elif node.op_type == "Shape" and inputs[0] in known:
                shape = known[inputs[0]]
                start = next((a.i for a in node.attribute if a.name == "start"), 0)
                end = next((a.i for a in node.attribute if a.name == "end"), len(shape))
                value = [np.array(shape[start:end], dtype=np.int64)]
            elif (
                node.op_type not in NEVER_FOLDED and inputs and all(n in values and values[n].size <= FOLD_LIMIT for n in inputs)
            ):
                value = ReferenceEvaluator(node).run(None, {n: values[n] for n in inputs})
            if value is None:
                keep.append(node)
                continue
            for name, array in zip(node.output, value, strict=False):
                values[name] = np.asarray(array)
                folded.append(numpy_helper.from_array(np.asarray(array), name))
        if not folded:
            return model
        del model.graph.node[:]
        model.graph.node.extend(keep)
        model.graph.initializer.extend(folded)
    return model


def batch_one(model: onnx.ModelProto, keep_value_info: bool = False) -> onnx.ModelProto:
    """A copy of ``model`` with every symbolic dimension set to 1 (the batch); other shape annotations dropped unless kept."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for inp in copy.graph.input:
        for dim in inp.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    if keep_value_info:
        for vi in copy.graph.value_info:
            for dim in vi.type.tensor_type.shape.dim:
                if not dim.HasField("dim_value"):
                    dim.dim_value = 1
    else:
        del copy.graph.value_info[:]
    for out in copy.graph.output:
        out.type.tensor_type.ClearField("shape")
    return copy
