"""LiteRT (.tflite) artifacts of a candidate: convert the pruned torch model, set each layer's precision, verify it.

litert-torch converts the (pruned, recovered) FP32 model; ai-edge-quantizer then applies one recipe entry per
plan layer, selected by the exact name of the layer's op in the flatbuffer: INT8 layers static INT8 (weights per
channel, activations per tensor, calibrated on the same images as the ONNX path), FP16 layers float16 weights
(LiteRT's FLOAT_CASTING: stored in FP16, dequantized to FP32 at load; XNNPACK runs FP16 arithmetic only for a
whole graph, by a delegate flag), FP32 layers as converted. The written file is read back and every layer's
weight type checked against its plan: a mismatch is an error, never a silent FP32 layer.

Optional: needs the ``[litert]`` extra (litert-torch, ai-edge-quantizer, ai-edge-litert), imported lazily.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.precisions import Realisation, precision
from spaces.plan import PlanError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

INSTALL = "pip install -c constraints.txt -e '.[litert]'"
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
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
    """A layer's module path (``stage1.conv1.0``) as litert-torch names it: ``.../<Class>_stage1/<Class>_conv1/<Class>_0``."""
    return re.compile("".join(rf"/[\w.]*_{re.escape(part)}" for part in layer.split(".")) + r"(;\d*)?$")


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
    interpreter = _interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    producers = {}
    details = interpreter._get_ops_details()  # the interpreter's only listing of ops
    for op in details:
        for out in op["outputs"]:
            producers[int(out)] = op
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
        scope = ";".join(outputs) + ";"
        layer_op = LayerOp(int(op["index"]), op["op_name"], scope, weight_type)
        out.append((layer_op, [tensors[weight]["name"], *outputs]))
    return out


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
    import warnings

    from ai_edge_quantizer import qtyping, quantizer

    wanted = {layer: precision(name).realisation for name, names in layers.items() for layer in names}
    ops = layer_ops(float_path, list(wanted))
    recipe = quantizer.Quantizer(str(float_path))
    for layer, realisation in wanted.items():
        op, regex = ops[layer], f"^{re.escape(ops[layer].scope)}$"
        kind = qtyping.TFLOperationName(op.op_type)
        if realisation == Realisation.INT8_QDQ:
            recipe.add_static_config(regex, kind, activation_num_bits=8, weight_num_bits=8)
        elif realisation == Realisation.FP16_CAST:
            fp16 = qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT)
            config = qtyping.OpQuantizationConfig(
                weight_tensor_config=fp16, compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True
            )
            recipe.update_quantization_recipe(regex, kind, op_config=config, algorithm_key="float_casting")
        elif realisation != Realisation.NONE:
            raise PlanError(f"precision realisation '{realisation}' has no LiteRT recipe in spaces.litert")
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


def _input_name(path: Path) -> str:
    """The name of the model's one input in its serving signature."""
    runner = _interpreter(path).get_signature_runner("serving_default")
    return next(iter(runner.get_input_details()))
