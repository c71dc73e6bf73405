"""Rewrites of an ONNX graph before it is read: a batch of one, shape arithmetic folded, exact GELUs fused.

Both graph views read a copy with every symbolic dimension set to one
(:func:`batch_one`); the device view also evaluates constant shape arithmetic
(:func:`fold_static_shapes`) and reads the pieces an exporter writes for an
exact GELU as one op (:func:`fuse_erf_gelu`), as device converters do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


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
