"""INT8 post-training quantization of chosen layers into a QDQ graph, by one of three quantizers.

``nncf`` (the tool's own): NNCF with per-tensor activations, so onnxruntime fuses
every INT8 conv. ``nncf-default``: NNCF with its defaults, as a user calling
``nncf.quantize`` gets it. ``ort``: onnxruntime's ``quantize_static`` with its
defaults (per-tensor weights, MinMax calibration). Each quantizes exactly the
layers it is given; the fixed recipes ``int8-nncf`` and ``int8-ort`` use the latter two.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import TYPE_CHECKING

from core.onnx_ops import MOVES_VALUES, TRANSPARENT
from spaces.onnx_export import INPUT_NAME, compute_node_names

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import onnx

# Statistics are collected over batches of this many images (half the time of one-by-one, same accuracy).
CALIBRATION_BATCH = 32


DEFAULT_QUANTIZER = "nncf"


def quantize_int8(
    model: onnx.ModelProto,
    calibration: np.ndarray,
    int8_layers: list[str],
    batch: int = CALIBRATION_BATCH,
    quantizer: str = DEFAULT_QUANTIZER,
) -> onnx.ModelProto:
    """Quantize the weights and inputs of ``int8_layers`` to INT8 with ``quantizer``; other compute layers stay as they are.

    Args:
        model: A prepared FP32 graph (see ``spaces.onnx_export``).
        calibration: Calibration images, shape (N, C, H, W).
        int8_layers: Names of the compute nodes to quantize.
        batch: Images per calibration batch (1 for a graph with a fixed batch of one).
        quantizer: One of :data:`QUANTIZERS`.
    """
    batches = [calibration[i : i + batch] for i in range(0, len(calibration), batch)]
    return QUANTIZERS[quantizer](model, batches, int8_layers)


def _nncf(model: onnx.ModelProto, batches: list[np.ndarray], int8_layers: list[str], tool_settings: bool) -> onnx.ModelProto:
    """NNCF post-training quantization; every compute layer not in ``int8_layers`` is in its ignored scope.

    With ``tool_settings``, activations are quantized per tensor: NNCF's default per-channel
    activation quantizers before depthwise convs stop onnxruntime from fusing INT8 convs
    (see STACK.md), which makes the "INT8" graph slower than FP32.
    """
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" on CPU machines
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    logging.getLogger("nncf").setLevel(logging.ERROR)
    wanted = set(int8_layers)
    ignored = [name for name in compute_node_names(model) if name not in wanted]
    options: dict = {}
    if tool_settings:
        options = dict(
            fast_bias_correction=True,
            advanced_parameters=AdvancedQuantizationParameters(
                activations_quantization_params=QuantizationParameters(per_channel=False),
                batchwise_statistics=True,
            ),
        )
    else:  # as a user's data loader of single images feeds it, every other setting NNCF's own
        batches = [image[None] for batch in batches for image in batch]
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws progress bars on stdout, with no switch to turn them off
        return nncf.quantize(
            model,
            nncf.Dataset(batches, lambda x: {INPUT_NAME: x}),
            subset_size=len(batches),
            ignored_scope=nncf.IgnoredScope(names=ignored),
            **options,
        )


def _onnxruntime(model: onnx.ModelProto, batches: list[np.ndarray], int8_layers: list[str]) -> onnx.ModelProto:
    """onnxruntime's static quantization with its defaults (QDQ, per-tensor INT8 weights and activations, MinMax)."""
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Images(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        onnx.save(model, source)
        quantize_static(source, target, Images(), quant_format=QuantFormat.QDQ, nodes_to_quantize=list(int8_layers))
        return onnx.load(target)


QUANTIZERS: dict[str, Callable[[onnx.ModelProto, list[np.ndarray], list[str]], onnx.ModelProto]] = {
    DEFAULT_QUANTIZER: lambda model, batches, layers: _nncf(model, batches, layers, tool_settings=True),
    "nncf-default": lambda model, batches, layers: _nncf(model, batches, layers, tool_settings=False),
    "ort": _onnxruntime,
}


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
