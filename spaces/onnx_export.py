"""Export a torch model to a clean ONNX graph: BatchNorm folded, compute nodes named after their module."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx
    from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 17
COMPUTE_OPS = ("Conv", "Gemm", "MatMul")


def export_onnx(model: nn.Module, input_size: int, in_chans: int = 3) -> onnx.ModelProto:
    """Export ``model`` (eval mode, dynamic batch) and return the prepared graph (see :func:`prepare_graph`)."""
    return prepare_graph(_export(model, input_size, in_chans))


def batchnorm_of_layers(model: nn.Module, input_size: int, in_chans: int = 3) -> dict[str, str]:
    """Module path of each conv layer -> module path of the BatchNorm :func:`export_onnx` folds into it."""
    graph = _export(model, input_size, in_chans)
    _materialise_identities(graph)
    pairs = [(conv.input[1], bn.input[1]) for conv, bn in _foldable(graph)]
    named = [(c, b) for c, b in pairs if c.endswith(".weight") and b.endswith(".weight")]  # not de-duplicated copies
    return {c.removesuffix(".weight"): b.removesuffix(".weight") for c, b in named}


def _export(model: nn.Module, input_size: int, in_chans: int) -> onnx.ModelProto:
    """The graph torch's exporter writes (opset 17, dynamic batch), BatchNorm still apart."""
    import onnx
    import torch

    model.eval()
    example = torch.zeros(1, in_chans, input_size, input_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]  # torch writes to any binary file object
            dynamo=False,
            opset_version=OPSET,
            training=torch.onnx.TrainingMode.PRESERVE,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return onnx.load_from_string(buffer.getvalue())


def prepare_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """Materialise Identity-of-initializer nodes, fold BatchNorm into the conv before it, name compute nodes."""
    _materialise_identities(model)
    _fold_batchnorm(model)
    _name_compute_nodes(model)
    remove_unused_initializers(model)
    return model


def initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Initializers by name."""
    return {t.name: t for t in model.graph.initializer}


def consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it."""
    out: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _materialise_identities(model: onnx.ModelProto) -> None:
    """The exporter de-duplicates equal parameters into Identity nodes; give each its own initializer back."""
    from onnx import numpy_helper

    inits = initializers(model)
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            array = numpy_helper.to_array(inits[node.input[0]])
            model.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _foldable(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(Conv, BatchNormalization) pairs where the BatchNorm is inference-mode, the only reader of the Conv's output,
    and both have constant parameters."""
    inits = initializers(model)
    readers = consumers(model)
    producer = {out: node for node in model.graph.node for out in node.output}
    pairs = []
    for bn in model.graph.node:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or len(readers.get(bn.input[0], [])) != 1:
            continue
        if conv.input[1] in inits and all(name in inits for name in bn.input[1:]):
            pairs.append((conv, bn))
    return pairs


def _fold_batchnorm(model: onnx.ModelProto) -> None:
    """Fold every BatchNormalization of :func:`_foldable` into its Conv."""
    from onnx import numpy_helper

    removed = set()
    for conv, bn in _foldable(model):
        inits = initializers(model)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale = gamma / np.sqrt(var + eps)
        weight = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 else np.zeros_like(mean)
        weight_name = conv.input[1]
        bias_name = weight_name.rsplit(".", 1)[0] + ".bias" if weight_name.endswith(".weight") else weight_name + "_bias"
        _replace_initializer(model, weight_name, (weight * scale.reshape(-1, 1, 1, 1)).astype(np.float32))
        _replace_initializer(model, bias_name, ((bias - mean) * scale + beta).astype(np.float32))
        new_inputs = [conv.input[0], weight_name, bias_name]
        del conv.input[:]
        conv.input.extend(new_inputs)
        removed.add(bn.output[0])
        conv.output[0] = bn.output[0]
    keep = [n for n in model.graph.node if not (n.op_type == "BatchNormalization" and n.output[0] in removed)]
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _replace_initializer(model: onnx.ModelProto, name: str, array: np.ndarray) -> None:
    from onnx import numpy_helper

    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, name))
            return
    model.graph.initializer.append(numpy_helper.from_array(array, name))


def _name_compute_nodes(model: onnx.ModelProto) -> None:
    """Name Conv/Gemm/MatMul nodes after the torch module that owns their weight (e.g. ``stage1.conv1.0``)."""
    inits = initializers(model)
    taken = {n.name for n in model.graph.node}
    for node in model.graph.node:
        if node.op_type not in COMPUTE_OPS or len(node.input) < 2:
            continue
        weight = node.input[1]
        if weight in inits and weight.endswith(".weight"):
            name = weight[: -len(".weight")]
            if name not in taken:
                taken.add(name)
                node.name = name


def remove_unused_initializers(model: onnx.ModelProto) -> None:
    """Drop initializers no node reads."""
    used = {name for node in model.graph.node for name in node.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def compute_node_names(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes, in graph order."""
    return [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS]
