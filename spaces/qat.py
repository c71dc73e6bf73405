"""Quantization-aware recovery: the fine-tune sees the INT8 layers as the exported graph computes them.

While :func:`fake_quantized` is active, each INT8 layer's weight is fake-quantized per output channel
(symmetric, scale max|w| / 127: the grid NNCF's post-training quantization gives the exported weights, and the
same grid after a BatchNorm is folded in, since folding scales each output channel) and its input per tensor
([0, max] for non-negative inputs, symmetric otherwise, as NNCF quantizes activations), with straight-through
gradients. An input's range starts from the calibration images and widens to every training batch's (a running
min/max, as torch.ao's MinMaxObserver keeps it; it never shrinks): in training, BatchNorm normalises by batch
statistics, so activations spread wider than in the eval-mode calibration, and a range that clips them zeroes
their gradients. Kept at the calibration range, or following the batches by a moving average, it did so on
MobileNetV2: 28.4% and 37.8% against 54.3% with the running range (``python bench/qat_ranges.py``, docs/qat.md).
On exit the layers are plain again and keep the weights the fine-tune learned; the ONNX graph is then exported
and quantized as every plan is, so what ships is measured, not the fake-quantized model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

QMIN, QMAX = -128, 127


@contextmanager
def fake_quantized(model: nn.Module, layers: Sequence[str], images: np.ndarray) -> Iterator[None]:
    """Fake-quantize the weights and inputs of ``layers`` (module paths) of ``model`` inside the ``with`` block;
    input ranges from ``images`` (N, C, H, W) through the model in eval mode."""
    from torch.nn.utils import parametrize

    modules = {name: model.get_submodule(name) for name in layers}
    ranges = input_ranges(model, modules, images)
    handles = []
    for name, module in modules.items():
        handles.append(module.register_forward_pre_hook(_input_quantizer(*ranges[name])))
        parametrize.register_parametrization(module, "weight", _per_channel_int8())
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module in modules.values():
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)


def input_ranges(model: nn.Module, modules: dict[str, nn.Module], images: np.ndarray) -> dict[str, tuple[float, float]]:
    """The (min, max) each module's input takes over ``images``, run through ``model`` in eval mode."""
    import torch

    seen: dict[str, tuple[float, float]] = {}

    def record(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            low, high = float(args[0].min()), float(args[0].max())
            old = seen.get(name, (low, high))
            seen[name] = (min(old[0], low), max(old[1], high))

        return hook

    handles = [module.register_forward_pre_hook(record(name)) for name, module in modules.items()]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(images), 32):
                model(torch.from_numpy(images[start : start + 32]))
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return seen


def _affine(low: float, high: float) -> tuple[float, int]:
    """Scale and zero point of an INT8 grid over [low, high]: unsigned-like for non-negative inputs, else symmetric."""
    if low >= 0:
        return max(high, 1e-8) / (QMAX - QMIN), QMIN
    return max(abs(low), abs(high), 1e-8) / QMAX, 0


def _input_quantizer(low: float, high: float):
    """A forward pre-hook fake-quantizing a layer's input; in training its range widens to cover each batch."""
    import torch

    state = {"low": low, "high": high}

    def hook(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        if module.training:
            state["low"] = min(state["low"], float(x.detach().min()))
            state["high"] = max(state["high"], float(x.detach().max()))
        scale, zero = _affine(state["low"], state["high"])
        return (torch.fake_quantize_per_tensor_affine(x, scale, zero, QMIN, QMAX), *args[1:])

    return hook


def _per_channel_int8() -> nn.Module:
    """A weight parametrization: symmetric INT8 per output channel, straight-through gradients."""
    import torch

    class PerChannelInt8(torch.nn.Module):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            dims = tuple(range(1, weight.dim()))
            scale = (weight.detach().abs().amax(dim=dims) / QMAX).clamp_min(1e-12).float()
            zero = torch.zeros_like(scale, dtype=torch.int32)
            return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -QMAX, QMAX)

    return PerChannelInt8()
