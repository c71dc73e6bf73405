"""INT8 post-training quantization of chosen layers with NNCF's ONNX backend (QDQ graph)."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import TYPE_CHECKING

from core.onnx_ops import MOVES_VALUES, TRANSPARENT
from spaces.onnx_export import INPUT_NAME, compute_node_names

if TYPE_CHECKING:
    import numpy as np
    import onnx

# Statistics are collected over batches of this many images (half the time of one-by-one, same accuracy).
CALIBRATION_BATCH = 32


def quantize_int8(
    model: onnx.ModelProto, calibration: np.ndarray, int8_layers: list[str], batch: int = CALIBRATION_BATCH
) -> onnx.ModelProto:
    """Quantize the weights and inputs of ``int8_layers`` to INT8; every other compute layer is in NNCF's ignored scope.

    Activations are quantized per tensor: NNCF's default per-channel activation
    quantizers before depthwise convs stop onnxruntime from fusing INT8 convs
    (see STACK.md), which makes the "INT8" graph slower than FP32.

    Args:
        model: A prepared FP32 graph (see ``spaces.onnx_export``).
        calibration: Calibration images, shape (N, C, H, W).
        int8_layers: Names of the compute nodes to quantize.
        batch: Images per calibration batch (1 for a graph with a fixed batch of one).
    """
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" on CPU machines
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    logging.getLogger("nncf").setLevel(logging.ERROR)
    wanted = set(int8_layers)
    ignored = [name for name in compute_node_names(model) if name not in wanted]
    batches = [calibration[i : i + batch] for i in range(0, len(calibration), batch)]
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws progress bars on stdout, with no switch to turn them off
        return nncf.quantize(
            model,
            nncf.Dataset(batches, lambda x: {INPUT_NAME: x}),
            subset_size=len(batches),
            fast_bias_correction=True,
            ignored_scope=nncf.IgnoredScope(names=ignored),
            advanced_parameters=AdvancedQuantizationParameters(
                activations_quantization_params=QuantizationParameters(per_channel=False),
                batchwise_statistics=True,
            ),
        )


def quantized_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes that run in INT8: their data input and their weight both come from a DequantizeLinear,
    directly or through ops that only move values (a Flatten before a linear layer)."""
    static = {t.name for t in model.graph.initializer}
    static.update(out for node in model.graph.node if node.op_type == "Constant" for out in node.output)
    dequantized: set[str] = set()
    names = set()
    for node in model.graph.node:  # topological order
        inputs = [name for name in node.input if name]
        data = [name for name in inputs if name not in static]
        if node.op_type == "DequantizeLinear" or (
            node.op_type in TRANSPARENT | MOVES_VALUES and data and all(name in dequantized for name in data)
        ):
            dequantized.update(node.output)
        elif len(inputs) > 1 and inputs[0] in dequantized and inputs[1] in dequantized:
            names.add(node.name)
    return names
