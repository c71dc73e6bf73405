"""Models: the registry and factory (built-in, timm, torchvision), the uncompressed weights of a study, and a
model's ONNX graph at a precision (for estimates and calibration)."""

from search.models.factory import (
    BUILTIN_MODELS,
    build_model,
    check_input_size,
    check_model_name,
    check_pretrained,
    load_checkpoint,
    load_model,
)
from search.models.graphs import input_dims, model_graph
from search.models.weights import UncompressedWeights, baseline_recipe, file_sha256, prepare_weights

__all__ = [
    "BUILTIN_MODELS",
    "UncompressedWeights",
    "baseline_recipe",
    "build_model",
    "check_input_size",
    "check_model_name",
    "check_pretrained",
    "file_sha256",
    "input_dims",
    "load_checkpoint",
    "load_model",
    "model_graph",
    "prepare_weights",
]
