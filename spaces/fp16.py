"""Run chosen compute layers in FP16: weights stored as float16, Casts inserted around each layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spaces.onnx_export import consumers, initializers, remove_unused_initializers

if TYPE_CHECKING:
    import onnx


def convert_layers_fp16(model: onnx.ModelProto, fp16_layers: list[str]) -> onnx.ModelProto:
    """Make each named compute node run in float16, in place; returns ``model``.

    The node's data input is cast to float16, its weight and bias initializers
    are stored as float16, and its output is cast back to float32. Back-to-back
    Casts that cancel (FP16 layer feeding an FP16 layer) are removed afterwards.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    wanted = set(fp16_layers)
    inits = initializers(model)
    nodes = []
    for node in model.graph.node:
        if node.name not in wanted:
            nodes.append(node)
            continue
        wanted.discard(node.name)
        cast_in = f"{node.name}/to_fp16"
        nodes.append(helper.make_node("Cast", [node.input[0]], [cast_in], name=cast_in, to=TensorProto.FLOAT16))
        node.input[0] = cast_in
        for i, name in enumerate(node.input[1:], start=1):
            if name in inits:
                array = numpy_helper.to_array(inits[name]).astype(np.float16)
                node.input[i] = f"{name}/fp16"
                model.graph.initializer.append(numpy_helper.from_array(array, node.input[i]))
        out = node.output[0]
        node.output[0] = f"{node.name}/fp16_out"
        nodes.append(node)
        nodes.append(helper.make_node("Cast", [node.output[0]], [out], name=f"{node.name}/to_fp32", to=TensorProto.FLOAT))
    if wanted:
        raise KeyError(f"no compute node named {', '.join(sorted(wanted))}")
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _remove_cancelling_casts(model)
    remove_unused_initializers(model)
    return model


def _remove_cancelling_casts(model: onnx.ModelProto) -> None:
    """Drop Cast(to fp32) -> Cast(to fp16) pairs: the FP16 tensor flows straight to the next FP16 layer."""
    from onnx import TensorProto

    readers = consumers(model)
    graph_outputs = {o.name for o in model.graph.output}
    dropped = set()
    for node in model.graph.node:
        if node.op_type != "Cast" or node.attribute[0].i != TensorProto.FLOAT or node.output[0] in graph_outputs:
            continue
        after = readers.get(node.output[0], [])
        if after and all(n.op_type == "Cast" and n.attribute[0].i == TensorProto.FLOAT16 for n in after):
            for cast16 in after:
                for reader in readers.get(cast16.output[0], []):
                    for i, name in enumerate(reader.input):
                        if name == cast16.output[0]:
                            reader.input[i] = node.input[0]
                dropped.add(id(cast16))
            dropped.add(id(node))
    keep = [n for n in model.graph.node if id(n) not in dropped]
    del model.graph.node[:]
    model.graph.node.extend(keep)
