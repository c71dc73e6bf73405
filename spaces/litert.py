"""LiteRT (.tflite) artifacts of a candidate: convert the pruned torch model, set each layer's precision, verify it.

litert-torch converts the (pruned, recovered) FP32 model; ai-edge-quantizer then applies one recipe entry per
plan layer, selected by the exact name of the layer's op in the flatbuffer: INT8 layers static INT8 (symmetric,
weights per channel, activations per tensor, calibrated on the same images as the ONNX path), FP16 layers float16
weights (LiteRT's FLOAT_CASTING: stored in FP16, dequantized to FP32 at load; XNNPACK runs FP16 arithmetic only
for a whole graph, by a delegate flag), FP32 layers as converted. Adds and pooling ops whose every input comes
from INT8 layers run in INT8 too, as NNCF quantizes them in the ONNX graph, and the biases NNCF corrected there
are carried into the model before conversion (:func:`carry_bias_corrections`); the activation ranges remain
ai-edge-quantizer's own min/max over the calibration images, so the two INT8 artifacts are close, not equal.
The written file is read back and every layer's weight type checked against its plan: a mismatch is an error,
never a silent FP32 layer.

Optional: needs the ``[litert]`` extra (litert-torch, ai-edge-quantizer, ai-edge-litert), imported lazily.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import UserError
from core.precisions import Realisation, precision
from spaces.plan import PlanError

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from spaces.finetune import ImageDataset
    from spaces.plan import CompressionPlan

INSTALL = "pip install -c constraints.txt -e '.[litert]'"
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Ops that run in INT8 when every input comes from INT8 ops, as NNCF quantizes the inputs of the ONNX graph's Add
# and pooling ops between INT8 layers: the .tflite then requantizes where the ONNX graph does, not around every add.
INT8_FOLLOWERS = ("ADD", "MUL", "PAD", "MEAN", "SUM", "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION")
# The weight type each realisation leaves on a layer's op in the .tflite.
WEIGHT_TYPE = {Realisation.NONE: "float32", Realisation.FP16_CAST: "float16", Realisation.INT8_QDQ: "int8"}


@dataclass(frozen=True)
class LayerOp:
    """A plan layer's op in a .tflite: its index, type, scope (its output names, as ai-edge-quantizer matches them)
    and the type its weights are stored in."""

    index: int
    op_type: str
    scope: str
    weight_type: str


def require_litert() -> None:
    """Raise a UserError naming the install command when the ``[litert]`` extra is missing."""
    import importlib.util

    missing = [m for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"LiteRT export needs {', '.join(missing)} (the [litert] extra): {INSTALL}")


def convert(model: nn.Module, input_size: int, path: Path, in_chans: int = 3) -> None:
    """Convert ``model`` (eval mode, FP32) to a .tflite at ``path`` with one NCHW float input of batch 1."""
    import contextlib
    import io

    import torch

    require_litert()
    import litert_torch

    example = torch.zeros(1, in_chans, input_size, input_size)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # progress lines
        converted = litert_torch.convert(model.eval(), (example,))
        converted.export(str(path))


def _module_pattern(layer: str) -> re.Pattern[str]:
    """A layer's module path (``stage1.conv1.0``) as litert-torch names it: ``<Root>/<Class>_stage1/<Class>_conv1/<Class>_0``,
    from the root model's class on (so ``conv1`` is the stem, not every block's ``conv1``)."""
    return re.compile("^[^/]*" + "".join(rf"/[\w.]*_{re.escape(part)}" for part in layer.split(".")) + r"(;\d*)?$")


def layer_ops(path: Path, layers: Sequence[str]) -> dict[str, LayerOp]:
    """Each of ``layers`` (module paths) mapped to its one compute op in the .tflite at ``path``.

    An op belongs to a layer when a part of its weight's or output's name (litert-torch joins fused modules'
    names with ``;;``) ends in the layer's module path. Raises PlanError when a layer has no op or several.
    """
    ops = read_ops(path)
    found: dict[str, list[LayerOp]] = {}
    for layer in layers:
        pattern = _module_pattern(layer)
        found[layer] = [op for op, names in ops if any(pattern.search(part) for name in names for part in name.split(";;"))]
    missing = [layer for layer, matches in found.items() if len(matches) != 1]
    if missing:
        detail = ", ".join(f"{layer} ({len(found[layer])} ops)" for layer in missing[:4])
        raise PlanError(f"the .tflite does not have exactly one op for layer {detail}: LiteRT export cannot set precisions")
    return {layer: matches[0] for layer, matches in found.items()}


def read_ops(path: Path) -> list[tuple[LayerOp, list[str]]]:
    """The compute ops of a .tflite, each with the names of its weight and outputs."""
    details, tensors, producers, _ = _op_table(path)
    out = []
    for op in details:
        if op["op_name"] not in COMPUTE_OPS:
            continue
        weight = int(op["inputs"][1])
        weight_type = tensors[weight]["dtype"].__name__
        source = producers.get(weight)
        if source is not None and source["op_name"] == "DEQUANTIZE":  # weights stored narrower, widened at load
            weight = int(source["inputs"][0])
            weight_type = tensors[weight]["dtype"].__name__
        outputs = [tensors[int(i)]["name"] for i in op["outputs"]]
        layer_op = LayerOp(int(op["index"]), op["op_name"], _scope(op, tensors), weight_type)
        out.append((layer_op, [tensors[weight]["name"], *outputs]))
    return out


def int8_followers(path: Path, int8_ops: set[int]) -> list[tuple[str, str]]:
    """(scope, op type) of the ops of :data:`INT8_FOLLOWERS` whose every input is written by an INT8 op (the
    compute ops ``int8_ops``, by index, or followers found before them); constants do not count as inputs."""
    details, tensors, producers, graph_inputs = _op_table(path)
    int8, out = set(int8_ops), []
    for op in details:
        if op["op_name"] not in INT8_FOLLOWERS:
            continue
        inputs = [int(i) for i in op["inputs"] if int(i) >= 0]
        data = [producers[i] for i in inputs if i in producers]
        if data and not graph_inputs & set(inputs) and all(int(p["index"]) in int8 for p in data):
            int8.add(int(op["index"]))
            out.append((_scope(op, tensors), op["op_name"]))
    return out


def _scope(op: dict[str, Any], tensors: dict[int, dict[str, Any]]) -> str:
    """An op's scope as ai-edge-quantizer matches it: its output tensors' names, each followed by ``;``."""
    return ";".join(tensors[int(i)]["name"] for i in op["outputs"]) + ";"


def _op_table(path: Path) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]], dict[int, dict[str, Any]], set[int]]:
    """Every op of a .tflite in execution order, its tensors by index, the op that writes each tensor, and the
    graph's input tensors (a tensor no op writes is one of these or a constant)."""
    interpreter = _interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    details = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]  # the only listing of ops
    producers = {int(out): op for op in details for out in op["outputs"]}
    return details, tensors, producers, {int(d["index"]) for d in interpreter.get_input_details()}


def _interpreter(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def set_precisions(
    float_path: Path, layers: Mapping[str, Sequence[str]], calibration: np.ndarray, out_path: Path
) -> dict[str, LayerOp]:
    """Write ``out_path``: the FP32 .tflite at ``float_path`` with each precision's layers (``layers``: precision ->
    module paths) realised, INT8 ones calibrated on ``calibration`` (N, C, H, W) one image at a time; returns each
    layer's op as written, its weight type checked against the plan (PlanError on a mismatch)."""
    import contextlib
    import io
    import shutil
    import warnings

    from ai_edge_quantizer import qtyping, quantizer

    wanted = {layer: precision(name).realisation for name, names in layers.items() for layer in names}
    ops = layer_ops(float_path, list(wanted))
    recipe = quantizer.Quantizer(str(float_path))
    int8_config = qtyping.OpQuantizationConfig(  # as NNCF quantizes the ONNX graph: symmetric, weights per channel
        activation_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=True),
        weight_tensor_config=qtyping.TensorQuantizationConfig(
            num_bits=8, symmetric=True, granularity=qtyping.QuantGranularity.CHANNELWISE
        ),
        compute_precision=qtyping.ComputePrecision.INTEGER,
    )
    for layer, realisation in wanted.items():
        op, regex = ops[layer], f"^{re.escape(ops[layer].scope)}$"
        kind = qtyping.TFLOperationName(op.op_type)
        if realisation == Realisation.INT8_QDQ:
            recipe.update_quantization_recipe(regex, kind, op_config=int8_config)
        elif realisation == Realisation.FP16_CAST:
            fp16 = qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT)
            config = qtyping.OpQuantizationConfig(
                weight_tensor_config=fp16, compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True
            )
            recipe.update_quantization_recipe(regex, kind, op_config=config, algorithm_key="float_casting")
        elif realisation != Realisation.NONE:
            raise PlanError(f"precision realisation '{realisation}' has no LiteRT recipe in spaces.litert")
    int8 = {ops[layer].index for layer, realisation in wanted.items() if realisation == Realisation.INT8_QDQ}
    for scope, op_type in int8_followers(float_path, int8):
        recipe.update_quantization_recipe(f"^{re.escape(scope)}$", qtyping.TFLOperationName(op_type), op_config=int8_config)
    if all(realisation == Realisation.NONE for realisation in wanted.values()):
        shutil.copyfile(float_path, out_path)  # nothing to quantize (the quantizer refuses an empty recipe)
    else:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # progress bars, and a warning that calibration keeps every tensor (it must)
            signature = _input_name(float_path)
            samples = [{signature: image[None]} for image in calibration]
            result = recipe.calibrate({"serving_default": samples}, num_threads=1) if recipe.need_calibration else None
            recipe.quantize(result).export_model(str(out_path), overwrite=True)
    written = layer_ops(out_path, list(wanted))
    wrong = [
        f"{layer} is {op.weight_type}, not {WEIGHT_TYPE[wanted[layer]]}"
        for layer, op in written.items()
        if op.weight_type != WEIGHT_TYPE[wanted[layer]]
    ]
    if wrong:
        raise PlanError(f"the .tflite does not carry the plan's precisions: {'; '.join(wrong[:4])}")
    return written


def build_tflite(
    plan: CompressionPlan, candidate: nn.Module, graph: onnx.ModelProto, train_set: ImageDataset, input_size: int, path: Path
) -> dict[str, LayerOp]:
    """Write ``path``: the .tflite of ``plan``'s recovered ``candidate`` (changed in place: it takes the bias
    corrections the quantizer made in the shipped ONNX ``graph``), each layer in its precision, INT8 calibrated
    on the plan's calibration images; returns each layer's op as written."""
    import tempfile

    from core.precisions import precision_names
    from spaces.apply import plan_calibration_images
    from spaces.onnx_export import batchnorm_of_layers, export_onnx

    if plan.layers_in("int8"):  # the biases NNCF corrected in the ONNX graph, corrected alike here
        carry_bias_corrections(candidate, export_onnx(candidate, input_size), graph, batchnorm_of_layers(candidate, input_size))
    layers = {name: plan.layers_in(name) for name in precision_names()}
    with tempfile.TemporaryDirectory() as scratch:
        float_path = Path(scratch) / "fp32.tflite"
        convert(candidate, input_size, float_path)
        return set_precisions(float_path, layers, plan_calibration_images(plan, train_set), path)


def compute_biases(graph: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The bias of each named compute node of an ONNX graph (read through a DequantizeLinear where quantized)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.graph.initializer}
    producer = {out: node for node in graph.graph.node for out in node.output}
    out = {}
    for node in graph.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            continue
        name = node.input[2]
        if name not in inits and name in producer:
            name = producer[name].input[0]
        if name in inits:
            out[node.name] = numpy_helper.to_array(inits[name])
    return out


def carry_bias_corrections(model: nn.Module, before: onnx.ModelProto, after: onnx.ModelProto, folds: dict[str, str]) -> list[str]:
    """Add to ``model``'s layers the bias changes a quantizer made between the FP32 graph ``before`` (exported from
    ``model``) and its quantized graph ``after`` (NNCF's bias correction), so the .tflite quantizes the same biases;
    ``folds``: layer -> the BatchNorm folded into it (its shift takes the change). Returns the layers changed."""
    import torch

    old, new = compute_biases(before), compute_biases(after)
    changed = [layer for layer in old if layer in new and not np.array_equal(old[layer], new[layer])]
    with torch.no_grad():
        for layer in changed:
            delta = torch.from_numpy((new[layer] - old[layer]).astype(np.float32))
            module = model.get_submodule(folds.get(layer, layer))
            bias = module.bias
            if isinstance(bias, torch.Tensor):
                bias += delta
            else:
                module.bias = torch.nn.Parameter(delta.clone())
    return changed


def _input_name(path: Path) -> str:
    """The name of the model's one input in its serving signature."""
    runner = _interpreter(path).get_signature_runner("serving_default")
    return next(iter(runner.get_input_details()))
