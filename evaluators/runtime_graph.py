"""The graph onnxruntime really executes, read as ops: for units whose runtime is onnxruntime itself.

onnxruntime rewrites a QDQ graph before running it: it fuses
DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv only where the
quantization parameters allow, keeps the rest as FP32 convs on dequantized
inputs, inserts Transposes around NHWC INT8 regions and NCHWc reorders around
FP32 conv regions, and drops the casts of FP16 layers it cannot run in FP16.
Which of these happen depends on the graph's quantization parameters, so the
faithful view is onnxruntime's own optimized graph. Here every remaining
QuantizeLinear, DequantizeLinear, Cast, Transpose and reorder is an op with
its own cost; ``Graph.explicit_conversions`` tells the cost model not to add
implicit precision switches.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluators.graph import KIND, Graph, Op, UncoveredOpError, batch_one

if TYPE_CHECKING:
    import onnx

    from hw_profiles.schema import Precision

INT8_TYPES = {2, 3}  # onnx.TensorProto.UINT8, INT8
FP16_TYPE = 10
INT64_TYPE = 7
INT_TYPES = {6, INT64_TYPE}  # onnx.TensorProto.INT32, INT64
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


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class _ExecutedReader:
    def __init__(self, model: onnx.ModelProto) -> None:
        model = batch_one(model, keep_value_info=True)
        self.graph = model.graph
        self.shape: dict[str, tuple[int, ...]] = {}
        self.dtype: dict[str, int] = {}
        for vi in [*model.graph.input, *model.graph.value_info]:
            t = vi.type.tensor_type
            self.dtype[vi.name] = t.elem_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim)
            if t.HasField("shape") and all(dims):
                self.shape[vi.name] = dims
        self.static: dict[str, tuple[tuple[int, ...], int]] = {}
        self.ints: dict[str, list[int]] = {}  # small integer constants: axes, split sizes, reshape targets
        for init in model.graph.initializer:
            self.static[init.name] = (tuple(init.dims), init.data_type)
            self.shape[init.name], self.dtype[init.name] = tuple(init.dims), init.data_type
            self._keep_ints(init.name, init)
        self.producer: dict[str, int] = {}

    def read(self) -> Graph:
        ops: list[Op] = []
        for node in self.graph.node:
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.static[node.output[0]] = (tuple(value.dims), value.data_type)
                    self._keep_ints(node.output[0], value)
                continue
            if node.op_type in ("Shape", "Size"):  # metadata of a tensor whose shape is fixed: no cost
                for out in node.output:
                    self.static[out] = ((), INT64_TYPE)
                continue
            if node.op_type == "Identity":
                src, out = node.input[0], node.output[0]
                if src in self.static:
                    self.static[out] = self.static[src]
                if src in self.shape:
                    self.shape[out] = self.shape[src]
                if src in self.dtype:
                    self.dtype[out] = self.dtype[src]
                if src in self.producer:
                    self.producer[out] = self.producer[src]
                continue
            try:
                op, data = self._op(node)
            except UncoveredOpError:
                raise
            except (IndexError, ValueError):  # a shape the optimized graph leaves unknown
                raise UncoveredOpError(f"{node.op_type} with an input shape the host view cannot read", node.name) from None
            for name in data:
                producer = self.producer.get(name, -1)
                op.inputs.append(producer)
                op.input_sizes.append(math.prod(self.shape.get(name, (1,))))
                if producer >= 0:
                    ops[producer].readers += 1
            for out in node.output:
                self.producer[out] = len(ops)
            ops.append(op)
        outputs = [self.producer[o.name] for o in self.graph.output if o.name in self.producer]
        for i in outputs:
            ops[i].readers += 1
        return Graph(ops=ops, output_ops=outputs, explicit_conversions=True)

    def _keep_ints(self, name: str, tensor: onnx.TensorProto) -> None:
        from onnx import numpy_helper

        if tensor.data_type in INT_TYPES and math.prod(tensor.dims) <= MAX_AXES:
            self.ints[name] = [int(v) for v in numpy_helper.to_array(tensor).ravel()]

    def _precision(self, name: str) -> Precision:
        dtype = self.dtype.get(name)
        if dtype in INT8_TYPES:
            return "int8"
        return "fp16" if dtype == FP16_TYPE else "fp32"

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
            precision: Precision = "int8" if op_type.startswith("Q") else self._precision(data[0])
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
        out_elems = math.prod(out_shape)
        vector_ops = out_elems
        if kind == "pool":
            vector_ops = out_elems * math.prod(_attr(node, "kernel_shape", [1]))
        elif kind in ("reduce", "softmax", "norm"):
            vector_ops = max(in_elems, out_elems)
        elif kind == "reshape":
            vector_ops = 0
        op = Op(
            node.name,
            op_type,
            kind,
            precision,
            vector_ops=vector_ops,
            input_elems=in_elems,
            output_elems=out_elems,
            shape=out_shape,
        )
        return op, data

    def _set(self, name: str, shape: tuple[int, ...], dtype: int) -> None:
        self.shape.setdefault(name, shape)
        self.dtype.setdefault(name, dtype)

    def _out_shape(self, node: onnx.NodeProto, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape of a non-compute op (value_info first, else from its semantics)."""
        if node.output[0] in self.shape:
            return self.shape[node.output[0]]
        op_type, channels_last = node.op_type, bool(_attr(node, "channels_last", 0))
        if op_type in ("Transpose",):
            perm = _attr(node, "perm", list(reversed(range(len(in_shape)))))
            return tuple(in_shape[i] for i in perm)
        if op_type == "ReorderInput":
            n, c, h, w = (in_shape[0], in_shape[3], in_shape[1], in_shape[2]) if channels_last else in_shape
            return (n, math.ceil(c / 8) * 8, h, w)
        if op_type == "ReorderOutput":
            n, _, h, w = in_shape
            c = int(_attr(node, "channels", in_shape[1]))
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
            keep = bool(_attr(node, "keepdims", 1))
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
        if op_type == "Flatten":
            axis = int(_attr(node, "axis", 1))
            return (math.prod(in_shape[:axis]), math.prod(in_shape[axis:]))
        data = [t for t in node.input if t and t not in self.static and t in self.shape]
        return max((self.shape[t] for t in data), key=math.prod, default=in_shape)  # elementwise with broadcast

    def _list_arg(self, node: onnx.NodeProto, name: str) -> list[int] | None:
        """An integer list given as attribute ``name`` (older opsets) or as the node's second input (newer ones)."""
        given = _attr(node, name, None)
        if given is None and len(node.input) > 1:
            given = self.ints.get(node.input[1])
        return given

    def _split_shapes(self, node: onnx.NodeProto, in_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Shapes of a Split's outputs: sizes from its attribute or input, else equal parts."""
        axis = int(_attr(node, "axis", 0)) % len(in_shape)
        sizes = self._list_arg(node, "split")
        if not sizes:
            parts = len(node.output)
            sizes = [math.ceil(in_shape[axis] / parts)] * (parts - 1)
            sizes.append(in_shape[axis] - sum(sizes))
        return [(*in_shape[:axis], size, *in_shape[axis + 1 :]) for size in sizes]

    def _weight(self, name: str) -> tuple[tuple[int, ...], int]:
        if name not in self.static:
            raise UncoveredOpError("compute op with a non-constant weight", name)
        return self.static[name]

    def _conv(self, node: onnx.NodeProto) -> tuple[Op, list[str]]:
        quantized = node.op_type == "QLinearConv"
        x, w = (node.input[0], node.input[3]) if quantized else (node.input[0], node.input[1])
        dims, dtype = self._weight(w)
        in_shape = self.shape.get(x, (1,))
        channels_last = bool(_attr(node, "channels_last", 0))
        spatial = _spatial(node, in_shape[1:3] if channels_last else in_shape[2:], dims[2:])
        cout = dims[0] if node.domain != "com.microsoft.nchwc" else math.ceil(dims[0] / 8) * 8
        out_shape = (in_shape[0], *spatial, cout) if channels_last else (in_shape[0], cout, *spatial)
        if node.output[0] in self.shape:
            out_shape = self.shape[node.output[0]]
        precision: Precision = "int8" if quantized else ("fp16" if dtype == FP16_TYPE else "fp32")
        self._set(node.output[0], out_shape, 2 if quantized else dtype)
        group = int(_attr(node, "group", 1))
        kernel = math.prod(dims[2:])
        out_elems = math.prod(out_shape)
        specialised = quantized or node.domain == "com.microsoft.nchwc"
        if not specialised:  # onnxruntime's generic path: im2col + GEMM, one GEMM per group
            kind = "im2col" if group == 1 else "grouped"
        elif group == 1:
            kind = "pointwise" if kernel == 1 else "conv"
        else:
            kind = "depthwise" if dims[1] == 1 else "grouped"
        bias_index = 8 if quantized else 2
        bias = (
            math.prod(self.static[node.input[bias_index]][0])
            if len(node.input) > bias_index and node.input[bias_index] in self.static
            else 0
        )
        data = [x] + ([node.input[3]] if node.domain == "com.microsoft.nchwc" and len(node.input) > 3 and node.input[3] else [])
        params = math.prod(dims)
        weight_bytes = params * (1 if quantized else (2 if dtype == FP16_TYPE else 4)) + 4 * bias
        op = Op(
            node.name,
            node.op_type,
            kind,
            precision,
            macs=out_elems * dims[1] * kernel,
            params=params + bias,
            weight_bytes=weight_bytes,
            input_elems=sum(math.prod(self.shape.get(t, (1,))) for t in data),
            output_elems=out_elems,
            shape=out_shape,
            channels=(int(dims[1]), int(dims[0])),
        )
        return op, data

    def _gemm(self, node: onnx.NodeProto) -> tuple[Op, list[str]]:
        quantized = node.op_type == "QGemm"
        a, b = (node.input[0], node.input[3]) if quantized else (node.input[0], node.input[1])
        a_shape = self.shape.get(a, (1,))
        if b in self.static:
            dims, dtype = self.static[b]
            data = [a]
        else:
            dims, dtype = self.shape.get(b, (1, 1)), self.dtype.get(b, 1)
            data = [a, b]
        trans_b = int(_attr(node, "transB", 0))
        n = dims[0] if trans_b else dims[-1]
        k = a_shape[-1]
        out_shape = (*a_shape[:-1], n)
        precision: Precision = "int8" if quantized else ("fp16" if dtype == FP16_TYPE else "fp32")
        self._set(node.output[0], out_shape, 1)
        params = math.prod(dims) if b in self.static else 0
        bias_index = 6 if quantized else 2  # Gemm, FusedGemm: C; QGemm: C after A, B and their scales and zero points
        has_bias = len(node.input) > bias_index and node.input[bias_index] in self.static
        bias = math.prod(self.static[node.input[bias_index]][0]) if has_bias else 0
        op = Op(
            node.name,
            node.op_type,
            "gemm",
            precision,
            macs=math.prod(out_shape) * k,
            params=params + bias,
            weight_bytes=params * (1 if quantized else 4) + 4 * bias,
            input_elems=math.prod(a_shape),
            output_elems=math.prod(out_shape),
            shape=out_shape,
            channels=(int(k), int(n)),
        )
        return op, data

    def _conversion(self, node: onnx.NodeProto) -> tuple[Op, list[str]]:
        src, out = node.input[0], node.output[0]
        if node.op_type == "Cast":
            to = int(_attr(node, "to", 1))
            precision: Precision = "int8" if to in INT8_TYPES else ("fp16" if to == FP16_TYPE else "fp32")
            dtype = to
        else:
            precision = CONVERSIONS[node.op_type]  # type: ignore[assignment]
            dtype = 2 if precision == "int8" else 1
        shape = self.shape.get(src, (1,))
        self._set(out, shape, dtype)
        elems = math.prod(shape)
        if src in self.static:  # a weight dequantized at every run
            self.static[out] = (shape, dtype)
            return Op(
                node.name,
                node.op_type,
                "convert",
                precision,
                vector_ops=elems,
                input_elems=elems,
                output_elems=elems,
                shape=shape,
            ), []
        return Op(
            node.name, node.op_type, "convert", precision, vector_ops=elems, input_elems=elems, output_elems=elems, shape=shape
        ), [src]


def _spatial(node: onnx.NodeProto, size: tuple[int, ...], kernel: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Output spatial size of a conv or pool from its attributes."""
    kernel = tuple(_attr(node, "kernel_shape", list(kernel or (1,) * len(size))))
    strides = _attr(node, "strides", [1] * len(size))
    dilations = _attr(node, "dilations", [1] * len(size))
    pads = _attr(node, "pads", [0] * 2 * len(size))
    ceil_mode = bool(_attr(node, "ceil_mode", 0))
    auto_pad = _attr(node, "auto_pad", b"NOTSET")
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
