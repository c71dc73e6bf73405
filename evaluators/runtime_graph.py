"""The graph onnxruntime really executes, read as ops: for units whose runtime is onnxruntime itself.

onnxruntime rewrites a QDQ graph before running it: it fuses
DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv only where the
quantization parameters allow, keeps the rest as FP32 convs on dequantized
inputs, inserts Transposes around NHWC INT8 regions and NCHWc reorders around
FP32 conv regions, and widens FP16 weights to FP32 for kernels it has only in FP32.
Which of these happen depends on the graph's quantization parameters and on the
CPU, so the faithful view is onnxruntime's own optimized graph. Here every remaining
QuantizeLinear, DequantizeLinear, Cast, Transpose and reorder is an op with
its own cost; ``Graph.explicit_conversions`` tells the cost model not to add
implicit precision switches.

Each op's MACs, parameters and bytes are still the model's: a blocked conv's
padded channels (:mod:`evaluators.nchwc`) and a widened FP16 weight count in its
``work_macs`` and ``work_weight_bytes``, which the latency model costs, never in
the model's counts. Ops, counting and linking come from :mod:`evaluators.graph_core`.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from evaluators.graph_core import (
    FLOAT,
    INT8,
    INT64,
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
    stored_bytes,
    value_types,
    vector_op,
)
from evaluators.graph_rewrites import batch_one
from evaluators.nchwc import BlockedChannels, from_batch_norm, is_blocked, reordered_channels

if TYPE_CHECKING:
    import numpy as np
    import onnx

INT_TYPES = {6, INT64}  # onnx.TensorProto.INT32, INT64
MAX_AXES = 8
CONV_OPS = {"Conv", "FusedConv", "QLinearConv"}
GEMM_OPS = {"Gemm", "MatMul", "QGemm", "FusedGemm", "FusedMatMul"}
CONVERSIONS = {"QuantizeLinear": "int8", "DequantizeLinear": "fp32", "DynamicQuantizeLinear": "int8"}
# Contrib ops: op type -> (cost kind, indices of the data inputs).
CONTRIB = {
    "QLinearAdd": ("eltwise", (0, 3)),
    "QLinearMul": ("eltwise", (0, 3)),
    "QLinearGlobalAveragePool": ("reduce", (0,)),
    "QLinearAveragePool": ("pool", (0,)),
    "QLinearSigmoid": ("activation", (0,)),
    "QLinearLeakyRelu": ("activation", (0,)),
    "QLinearSoftmax": ("softmax", (0,)),
    "NhwcMaxPool": ("pool", (0,)),
    "QuickGelu": ("activation", (0,)),  # onnxruntime's fusion of x * Sigmoid(x) (SiLU / Swish)
    "FastGelu": ("activation", (0,)),
    "BiasGelu": ("activation", (0,)),
    "ReorderInput": ("copy", (0,)),
    "ReorderOutput": ("copy", (0,)),
    "Upsample": ("resize", (0,)),
}


def onnxruntime_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` as onnxruntime's CPU provider optimizes it (level ALL), before running it."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def read_executed_graph(model: onnx.ModelProto) -> Graph:
    """Read an onnxruntime-optimized graph: every node that runs is an op, conversions included."""
    return _ExecutedReader(model).read()


def fp16_exact(values: np.ndarray) -> bool:
    """Whether FP32 ``values`` all survive a round trip through FP16: an FP16 weight onnxruntime widened to FP32."""
    import numpy as np

    return bool(np.array_equal(values.astype(np.float16).astype(np.float32), values))


class _ExecutedReader:
    def __init__(self, model: onnx.ModelProto) -> None:
        model = batch_one(model, keep_value_info=True)
        self.graph = model.graph
        self.shape, self.dtype = value_types(model)
        self.initializers = {init.name: init for init in model.graph.initializer}
        self.static: dict[str, tuple[Shape, int]] = {}
        self.ints: dict[str, list[int]] = {}  # small integer constants: axes, split sizes, reshape targets
        for name, tensor in constants(model).items():
            self.static[name] = (tuple(tensor.dims), tensor.data_type)
            self._keep_ints(name, tensor)
        for name, init in self.initializers.items():
            self.shape[name], self.dtype[name] = tuple(init.dims), init.data_type
        self.source: dict[str, str] = {}  # constant -> the constant it was computed from (dequantized, cast, renamed)
        self.reordered = reordered_channels(self.graph.node, {k: v[0] for k, v in self.static.items()})
        self.built = GraphBuilder()
        self.blocked: list[tuple[int, onnx.NodeProto]] = []  # blocked convs, counted once the graph is read

    def read(self) -> Graph:
        for node in self.graph.node:
            if node.op_type == "Constant":
                continue
            if node.op_type in ("Shape", "Size"):  # metadata of a tensor whose shape is fixed: no cost
                for out in node.output:
                    self.static[out] = ((), INT64)
                continue
            if node.op_type == "Identity":
                src, out = node.input[0], node.output[0]
                if src in self.static:
                    self.static[out] = self.static[src]
                    self.source[out] = src
                if src in self.shape:
                    self.shape[out] = self.shape[src]
                if src in self.dtype:
                    self.dtype[out] = self.dtype[src]
                self.built.alias(out, src)
                continue
            try:
                op, data = self._op(node)
            except (IndexError, ValueError):  # a shape the optimized graph leaves unknown
                raise UncoveredOpError(f"{node.op_type} with an input shape the host view cannot read", node.name) from None
            self.built.link(op, data, [math.prod(self.shape.get(t, (1,))) for t in data])
            index = self.built.add(op, node.output)
            if is_blocked(node) and node.op_type == "Conv":
                self.blocked.append((index, node))
        self._count_blocked_convs()
        return self.built.graph([o.name for o in self.graph.output], explicit_conversions=True)

    def _count_blocked_convs(self) -> None:
        """Give each blocked conv the model's MACs, parameters and bytes (its padded ones stay its work)."""
        if not self.blocked:
            return
        channels = BlockedChannels(list(self.graph.node), self.shape, {k: v[0] for k, v in self.static.items()}, self._array)
        for index, node in self.blocked:
            op = self.built.ops[index]
            if from_batch_norm(node):  # the model's BatchNormalization: a norm op without MACs or weights, as on a device
                self.built.ops[index] = dataclasses.replace(op, macs=0, params=0, weight_bytes=0, storage="")
                continue
            dims = self.static[node.input[1]][0]
            per_group, outputs = channels.conv(node, dims, self.shape)
            weights = outputs * per_group * math.prod(dims[2:])
            biases = outputs if len(node.input) > 2 and node.input[2] else 0
            positions = op.output_elems // dims[0]  # output pixels; the padded channels are dims[0]
            self.built.ops[index] = dataclasses.replace(
                op,
                macs=positions * weights,
                params=weights + biases,
                weight_bytes=stored_bytes(op.storage, weights, biases),
            )

    def _array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.initializers[name])

    def _keep_ints(self, name: str, tensor: onnx.TensorProto) -> None:
        from onnx import numpy_helper

        if tensor.data_type in INT_TYPES and math.prod(tensor.dims) <= MAX_AXES:
            self.ints[name] = [int(v) for v in numpy_helper.to_array(tensor).ravel()]

    def _precision(self, name: str) -> str:
        return dtype_precision(self.dtype.get(name))

    def _storage(self, name: str) -> str:
        """Precision the model stores a constant weight in (what onnxruntime widened or dequantized it from)."""
        while name in self.source:
            name = self.source[name]
        dtype = self.static[name][1]
        if dtype == FLOAT and name in self.initializers and fp16_exact(self._array(name)):
            return "fp16"
        return dtype_precision(dtype)

    def _op(self, node: onnx.NodeProto) -> tuple[Op, list[str]]:
        """The op of ``node`` and the names of its data inputs; fills in output shapes and types."""
        op_type = node.op_type
        if op_type in CONV_OPS or (op_type == "Conv" and node.domain):
            return self._conv(node)
        if op_type in GEMM_OPS:
            return self._gemm(node)
        if op_type in CONVERSIONS or op_type == "Cast":
            return self._conversion(node)
        if op_type in CONTRIB:
            kind, indices = CONTRIB[op_type]
            data = [node.input[i] for i in indices if i < len(node.input) and node.input[i]]
            precision = "int8" if op_type.startswith("Q") else self._precision(data[0])
        elif op_type in KIND:
            kind = KIND[op_type]
            data = [t for t in node.input if t and t not in self.static]
            precision = self._precision(data[0]) if data else "fp32"
        else:
            raise UncoveredOpError(op_type, node.name)
        if not data:  # shape arithmetic on constants: folded, no cost
            for out in node.output:
                self.static[out] = ((), 1)
            return Op(node.name, op_type, "reshape", "fp32"), []
        in_shape = self.shape.get(data[0], (1,))
        dtype = self.dtype.get(data[0], 1) if precision != "int8" else 2
        if op_type == "Split":
            for out, part in zip(node.output, self._split_shapes(node, in_shape), strict=False):
                self._set(out, part, dtype)
            out_shape = in_shape  # the parts together
        else:
            out_shape = self._out_shape(node, in_shape)
            self._set(node.output[0], out_shape, dtype)
        in_elems = sum(math.prod(self.shape.get(t, (1,))) for t in data)
        return vector_op(node, kind, precision, in_elems, out_shape), data

    def _set(self, name: str, shape: Shape, dtype: int) -> None:
        self.shape.setdefault(name, shape)
        self.dtype.setdefault(name, dtype)

    def _out_shape(self, node: onnx.NodeProto, in_shape: Shape) -> Shape:
        """Output shape of a non-compute op (value_info first, else from its semantics)."""
        if node.output[0] in self.shape:
            return self.shape[node.output[0]]
        op_type, channels_last = node.op_type, bool(attribute(node, "channels_last", 0))
        if op_type in ("Transpose",):
            perm = attribute(node, "perm", list(reversed(range(len(in_shape)))))
            return tuple(in_shape[i] for i in perm)
        if op_type == "ReorderInput":  # channels padded to the block of the conv that reads it
            n, c, h, w = (in_shape[0], in_shape[3], in_shape[1], in_shape[2]) if channels_last else in_shape
            return (n, self.reordered.get(node.output[0], c), h, w)
        if op_type == "ReorderOutput":
            n, _, h, w = in_shape
            c = int(attribute(node, "channels", in_shape[1]))
            return (n, h, w, c) if channels_last else (n, c, h, w)
        if op_type in ("GlobalAveragePool", "GlobalMaxPool", "QLinearGlobalAveragePool"):
            return (in_shape[0], 1, 1, in_shape[3]) if channels_last else (*in_shape[:2], 1, 1)
        if op_type in ("MaxPool", "AveragePool", "NhwcMaxPool", "QLinearAveragePool"):
            spatial = _spatial(node, in_shape[1:3] if op_type == "NhwcMaxPool" or channels_last else in_shape[2:])
            if op_type == "NhwcMaxPool" or channels_last:
                return (in_shape[0], *spatial, in_shape[3])
            return (*in_shape[:2], *spatial)
        if op_type.startswith("Reduce"):
            given = self._list_arg(node, "axes")
            axes = {a % len(in_shape) for a in given} if given else set(range(len(in_shape)))
            keep = bool(attribute(node, "keepdims", 1))
            return tuple(1 if i in axes else d for i, d in enumerate(in_shape) if keep or i not in axes)
        if op_type == "Reshape" and node.input[1] in self.ints:
            target = [in_shape[i] if d == 0 else d for i, d in enumerate(self.ints[node.input[1]])]
            known = math.prod(d for d in target if d != -1)
            return tuple(math.prod(in_shape) // known if d == -1 else d for d in target)
        if op_type in ("Squeeze", "Unsqueeze"):
            given = self._list_arg(node, "axes") or []
            if op_type == "Squeeze":
                drop = {a % len(in_shape) for a in given} if given else {i for i, d in enumerate(in_shape) if d == 1}
                return tuple(d for i, d in enumerate(in_shape) if i not in drop)
            shape = list(in_shape)
            for a in sorted(a % (len(in_shape) + len(given)) for a in given):
                shape.insert(a, 1)
            return tuple(shape)
        if op_type == "Concat":
            axis = int(attribute(node, "axis", 0)) % len(in_shape)
            parts = [self.shape.get(t) for t in node.input if t]
            if all(parts):
                return (*in_shape[:axis], sum(part[axis] for part in parts if part), *in_shape[axis + 1 :])
        if op_type == "Flatten":
            axis = int(attribute(node, "axis", 1))
            return (math.prod(in_shape[:axis]), math.prod(in_shape[axis:]))
        data = [t for t in node.input if t and t not in self.static and t in self.shape]
        return max((self.shape[t] for t in data), key=math.prod, default=in_shape)  # elementwise with broadcast

    def _list_arg(self, node: onnx.NodeProto, name: str) -> list[int] | None:
        """An integer list given as attribute ``name`` (older opsets) or as the node's second input (newer ones)."""
        given = attribute(node, name, None)
        if given is None and len(node.input) > 1:
            given = self.ints.get(node.input[1])
        return given

    def _split_shapes(self, node: onnx.NodeProto, in_shape: Shape) -> list[Shape]:
        """Shapes of a Split's outputs: sizes from its attribute or input, else equal parts."""
        axis = int(attribute(node, "axis", 0)) % len(in_shape)
        sizes = self._list_arg(node, "split")
        if not sizes:
            parts = len(node.output)
            sizes = [math.ceil(in_shape[axis] / parts)] * (parts - 1)
            sizes.append(in_shape[axis] - sum(sizes))
        return [(*in_shape[:axis], size, *in_shape[axis + 1 :]) for size in sizes]

    def _weight(self, name: str) -> tuple[Shape, int]:
        if name not in self.static:
            raise UncoveredOpError("compute op with a non-constant weight", name)
        return self.static[name]

    def _bias(self, node: onnx.NodeProto, index: int) -> int:
        """Elements of the constant bias at input ``index``, if any."""
        has_bias = len(node.input) > index and node.input[index] in self.static
        return math.prod(self.static[node.input[index]][0]) if has_bias else 0

    def _conv(self, node: onnx.NodeProto) -> tuple[Op, list[str]]:
        quantized = node.op_type == "QLinearConv"
        x, w = (node.input[0], node.input[3]) if quantized else (node.input[0], node.input[1])
        dims, dtype = self._weight(w)
        in_shape = self.shape.get(x, (1,))
        channels_last = bool(attribute(node, "channels_last", 0))
        spatial = _spatial(node, in_shape[1:3] if channels_last else in_shape[2:], dims[2:])
        out_shape = (in_shape[0], *spatial, dims[0]) if channels_last else (in_shape[0], dims[0], *spatial)
        if node.output[0] in self.shape:
            out_shape = self.shape[node.output[0]]
        precision = dtype_precision(INT8 if quantized else dtype)
        self._set(node.output[0], out_shape, 2 if quantized else dtype)
        group = int(attribute(node, "group", 1))
        blocked = is_blocked(node)
        kind = conv_kind(group, dims)
        if not (quantized or blocked):  # onnxruntime's generic path: im2col + GEMM, one GEMM per group
            kind = "im2col" if group == 1 else "grouped"
        if quantized and kind == "conv" and not symmetric_int8_channels(int(dims[1]), int(dims[0])):
            kind = "im2col"  # the generic im2col + QGEMM path (e.g. an image stem's 3 input channels)
        data = [x] + ([node.input[3]] if blocked and len(node.input) > 3 and node.input[3] else [])
        weights, biases = math.prod(dims), self._bias(node, 8 if quantized else 2)
        macs = conv_macs(math.prod(out_shape), dims)
        work_macs = macs
        if quantized and group == 1:  # MLAS packs INT8 weights in panels of 16 output channels, zero-padded
            work_macs = macs * -(-int(dims[0]) // INT8_PANEL) * INT8_PANEL // int(dims[0])
        op = compute_op(
            node,
            kind,
            precision,
            macs=macs,
            weights=weights,
            biases=biases,
            storage=self._storage(w),
            in_elems=sum(math.prod(self.shape.get(t, (1,))) for t in data),
            out_shape=out_shape,
            channels=(int(dims[1]), int(dims[0])),
            work_macs=work_macs,
            work_weight_bytes=stored_bytes(precision, weights, biases),
        )
        return op, data

    def _gemm(self, node: onnx.NodeProto) -> tuple[Op, list[str]]:
        quantized = node.op_type == "QGemm"
        a, b = (node.input[0], node.input[3]) if quantized else (node.input[0], node.input[1])
        a_shape = self.shape.get(a, (1,))
        constant = b in self.static
        if constant:
            dims, dtype = self.static[b]
            data = [a]
        else:
            dims, dtype = self.shape.get(b, (1, 1)), self.dtype.get(b, 1)
            data = [a, b]
        n = dims[0] if attribute(node, "transB", 0) else dims[-1]
        trans_a = attribute(node, "transA", 0)
        k = gemm_depth(a_shape, trans_a)
        rows = (*a_shape[:-2], a_shape[-1]) if trans_a and len(a_shape) > 1 else a_shape[:-1]
        out_shape = (*rows, n)
        precision = dtype_precision(INT8 if quantized else dtype)
        self._set(node.output[0], out_shape, 1)
        weights = math.prod(dims) if constant else 0
        biases = self._bias(node, 6 if quantized else 2)  # Gemm, FusedGemm: C; QGemm: C after A, B, scales, zero points
        op = compute_op(
            node,
            "gemm",
            precision,
            macs=math.prod(out_shape) * k,
            weights=weights,
            biases=biases,
            storage=self._storage(b) if constant else "fp32",
            in_elems=math.prod(a_shape),
            out_shape=out_shape,
            channels=(int(k), int(n)),
            work_weight_bytes=stored_bytes(precision, weights, biases),
        )
        return op, data

    def _conversion(self, node: onnx.NodeProto) -> tuple[Op, list[str]]:
        src, out = node.input[0], node.output[0]
        if node.op_type == "Cast":
            dtype = int(attribute(node, "to", 1))
            precision = dtype_precision(dtype)
        else:
            precision = CONVERSIONS[node.op_type]
            dtype = 2 if precision == "int8" else 1
        shape = self.shape.get(src, (1,))
        self._set(out, shape, dtype)
        elems = math.prod(shape)
        op = Op(
            node.name, node.op_type, "convert", precision, vector_ops=elems, input_elems=elems, output_elems=elems, shape=shape
        )
        if src in self.static:  # a weight dequantized or cast at every run
            self.static[out] = (shape, dtype)
            self.source[out] = src
            return op, []
        return op, [src]


# Output channels per packed weight panel of MLAS's INT8 convolutions and GEMMs (convsym.cpp
# FilterOutputChannelPackCount, MlasGemmPackB's AlignedN): other counts are computed padded to it.
INT8_PANEL = 16


def symmetric_int8_channels(input_channels: int, output_channels: int) -> bool:
    """Whether onnxruntime's symmetric INT8 convolution kernel takes an ungrouped conv of these channel counts
    (MLAS convsym.cpp, ``MlasConvSymPackWSize`` on x86: input channels a multiple of 4, output channels a multiple of
    4 (8 on AVX2) and at least 16); other convs run the generic im2col + QGEMM path."""
    return input_channels % 4 == 0 and output_channels % 4 == 0 and output_channels >= 16


def _spatial(node: onnx.NodeProto, size: Shape, kernel: Shape | None = None) -> Shape:
    """Output spatial size of a conv or pool from its attributes."""
    kernel = tuple(attribute(node, "kernel_shape", list(kernel or (1,) * len(size))))
    strides = attribute(node, "strides", [1] * len(size))
    dilations = attribute(node, "dilations", [1] * len(size))
    pads = attribute(node, "pads", [0] * 2 * len(size))
    ceil_mode = bool(attribute(node, "ceil_mode", 0))
    auto_pad = attribute(node, "auto_pad", b"NOTSET")
    out = []
    for i, n in enumerate(size):
        if auto_pad in (b"SAME_UPPER", b"SAME_LOWER"):
            out.append(math.ceil(n / strides[i]))
            continue
        span = dilations[i] * (kernel[i] - 1) + 1
        total = n + pads[i] + pads[i + len(size)] - span
        step = strides[i]
        out.append((math.ceil(total / step) if ceil_mode else total // step) + 1)
    return tuple(out)
