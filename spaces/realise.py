"""Put layers of an exported FP32 graph into their precisions: one step per kind of realisation.

Each registered precision (``core.precisions``) names how the graph carries it;
this module holds the step that does it. Steps run in the order of ``STEPS``
(quantization first: NNCF reads the FP32 graph; then the FP16 casts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.precisions import REFERENCE, Realisation, precision
from spaces.plan import PlanError
from spaces.quantize import DEFAULT_QUANTIZER

if TYPE_CHECKING:
    import numpy as np
    import onnx

Images = Callable[[], "np.ndarray"]


@dataclass(frozen=True)
class Calibration:
    """What a quantizing step calibrates on and with which quantizer (``spaces.quantize.QUANTIZERS``).

    Attributes:
        images: Returns calibration images (N, C, H, W); called only when a step quantizes.
        batch: Calibration batch (1 for a graph with a fixed batch of one); the quantizer's default if None.
        quantizer: Name of the INT8 quantizer.
    """

    images: Images
    batch: int | None = None
    quantizer: str = DEFAULT_QUANTIZER


def _int8_qdq(graph: onnx.ModelProto, layers: list[str], calibration: Calibration) -> onnx.ModelProto:
    from spaces.quantize import CALIBRATION_BATCH, quantize_int8

    batch = calibration.batch or CALIBRATION_BATCH
    return quantize_int8(graph, calibration.images(), layers, batch=batch, quantizer=calibration.quantizer)


def _fp16_cast(graph: onnx.ModelProto, layers: list[str], calibration: Calibration) -> onnx.ModelProto:
    from spaces.fp16 import convert_layers_fp16

    return convert_layers_fp16(graph, layers)


STEPS: dict[Realisation, Callable[[onnx.ModelProto, list[str], Calibration], onnx.ModelProto]] = {
    Realisation.INT8_QDQ: _int8_qdq,
    Realisation.FP16_CAST: _fp16_cast,
}


def realise_precisions(graph: onnx.ModelProto, layers: Mapping[str, Sequence[str]], calibration: Calibration) -> onnx.ModelProto:
    """``graph`` with the layers of each precision (``layers``: precision -> node names) realised.

    Args:
        graph: A prepared FP32 graph (``spaces.onnx_export``).
        layers: Compute node names per precision; the reference precision needs no step.
        calibration: What quantizing steps calibrate on, and the quantizer.

    Raises:
        PlanError: a precision with layers has no realisation step here.
    """
    kinds = {name: precision(name).realisation for name, names in layers.items() if names}
    missing = sorted(
        name for name, kind in kinds.items() if kind not in STEPS and (kind != Realisation.NONE or name != REFERENCE)
    )
    if missing:
        raise PlanError(f"precision {', '.join(missing)} has no realisation step in spaces.realise: add one to STEPS")
    for kind, step in STEPS.items():
        for name, realisation in kinds.items():
            if realisation == kind:
                graph = step(graph, list(layers[name]), calibration)
    return graph
