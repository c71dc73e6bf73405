"""ONNX graphs for estimates and calibration: a model by name (or an ONNX file) at a uniform precision."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError
from core.precisions import REFERENCE
from core.precisions import precision as precision_of

if TYPE_CHECKING:
    import onnx

RANDOM_IMAGES = 8  # calibration images of a uniform conversion: enough for a latency figure, not for accuracy


def convert_precision(graph: onnx.ModelProto, precision: str, input_size: int) -> onnx.ModelProto:
    """Every compute layer of ``graph`` in ``precision`` (quantization calibrated on random images: latency only)."""
    import numpy as np

    from spaces.onnx_export import compute_node_names
    from spaces.realise import Calibration, realise_precisions

    batch, channels, height, width = input_dims(graph)
    shape = (RANDOM_IMAGES, channels, height or input_size, width or input_size)
    images = Calibration(lambda: np.random.default_rng(0).standard_normal(shape).astype(np.float32), batch or RANDOM_IMAGES)
    return realise_precisions(graph, {precision: compute_node_names(graph)}, images)


def _data_inputs(graph: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph's inputs that are fed at run time (older exporters also list weights as inputs)."""
    from spaces.onnx_export import initializers

    weights = initializers(graph)
    return [i for i in graph.graph.input if i.name not in weights]


def input_dims(graph: onnx.ModelProto) -> list[int]:
    """The (N, C, H, W) of the graph's image input; 0 where a dimension is dynamic."""
    return [d.dim_value for d in _data_inputs(graph)[0].type.tensor_type.shape.dim]


def _as_image_input(graph: onnx.ModelProto, model: str, input_size: int) -> onnx.ModelProto:
    """A user's ONNX file with its image input named as ours and dynamic height/width fixed to ``input_size``.

    Raises:
        UserError: the graph's input is not one (N, C, H, W) image.
    """
    from spaces.onnx_export import INPUT_NAME

    inputs = _data_inputs(graph)
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        raise UserError(f"'{model}' must take one image input of shape (N, C, H, W): export it that way")
    image = inputs[0]
    for dim in image.type.tensor_type.shape.dim[2:]:
        if not dim.dim_value:
            dim.ClearField("dim_param")
            dim.dim_value = input_size
    if image.name != INPUT_NAME:
        for node in graph.graph.node:
            node.input[:] = [INPUT_NAME if name == image.name else name for name in node.input]
        image.name = INPUT_NAME
    return graph


@lru_cache(maxsize=32)
def _named_graph_bytes(name: str, precision: str, input_size: int) -> bytes:
    import torch

    from search.models.factory import build_model
    from spaces.onnx_export import export_onnx

    torch.manual_seed(0)
    graph = export_onnx(build_model(name, num_classes=1000).eval(), input_size)
    return convert_precision(graph, precision, input_size).SerializeToString()


def model_graph(model: str, precision: str | None, input_size: int) -> onnx.ModelProto:
    """The graph of ``model``: an ONNX file as given (converted if ``precision`` is given), or a model name exported.

    Raises:
        UserError: unknown model name, unreadable ONNX file or unknown precision.
    """
    import onnx

    if precision is not None:
        precision = precision_of(precision).name  # an unknown name is one line naming the closest
    if model.endswith(".onnx"):
        path = Path(model)
        if not path.is_file():
            raise UserError(f"ONNX file '{model}' not found: pass a path to a .onnx file or a model name")
        try:
            graph = onnx.load(path)
            onnx.checker.check_model(graph)
        except Exception as exc:  # noqa: BLE001 (onnx raises many types for a bad file)
            raise UserError(f"'{model}' is not a valid ONNX model ({type(exc).__name__}): export it again") from None
        graph = _as_image_input(graph, model, input_size)
        return convert_precision(graph, precision, input_size) if precision else graph
    from search.models.factory import check_model_name

    check_model_name(model)
    try:
        return onnx.load_from_string(_named_graph_bytes(model, precision or REFERENCE, input_size))
    except RuntimeError as exc:  # torch refuses an input too small for the network's strides and kernels
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{model} cannot run at --input-size {input_size} ({first}): use a larger size") from None
