"""Quantization-aware recovery: the fine-tune sees INT8 layers fake-quantized; what ships is quantized as always."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spaces.plan import CompressionPlan, LayerPlan, PlanError, Recipe
from tests.conftest import randomise_batchnorm


def _images(digits, count: int = 32) -> np.ndarray:
    return torch.stack([digits.train[i][0] for i in range(count)]).numpy()


def test_inside_the_block_weights_and_inputs_are_on_an_int8_grid(tiny_cnn, digits):
    from spaces.qat import fake_quantized

    layer = tiny_cnn.get_submodule("stage1.conv1.0")
    latent = layer.weight.detach().clone()
    seen = []
    with fake_quantized(tiny_cnn, ["stage1.conv1.0"], _images(digits)):
        handle = layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
        weight = layer.weight.detach()
        scale = latent.abs().amax(dim=(1, 2, 3)) / 127
        steps = weight / scale[:, None, None, None]
        assert torch.allclose(steps, steps.round(), atol=1e-3) and not torch.equal(weight, latent)
        tiny_cnn(torch.from_numpy(_images(digits, 4)))
    handle.remove()
    # a hook registered after the quantizer sees the quantized input: every value on one grid, at most 256 of them
    values = torch.unique(seen[-1])
    grid = values[values > 0].min()
    assert torch.allclose(values / grid, (values / grid).round(), atol=1e-3) and len(values) <= 256
    assert not torch.nn.utils.parametrize.is_parametrized(layer)
    assert torch.equal(layer.weight.detach(), latent)  # the latent weights are kept, the quantizers are gone
    assert not layer._forward_pre_hooks


def test_in_training_an_inputs_range_widens_to_the_batch_so_nothing_is_clipped(tiny_cnn, digits):
    """A clipped input gets no gradient (straight-through within the range only): training batches, wider than
    the eval-mode calibration images, widen the range, which then stays wide."""
    from spaces.qat import fake_quantized

    layer = tiny_cnn.get_submodule("stage1.conv1.0")
    raw, quantized = [], []
    before = layer.register_forward_pre_hook(lambda _m, args: raw.append(args[0].detach().clone()))
    with fake_quantized(tiny_cnn, ["stage1.conv1.0"], _images(digits)):
        after = layer.register_forward_pre_hook(lambda _m, args: quantized.append(args[0].detach().clone()))
        tiny_cnn.train()
        tiny_cnn(10 * torch.from_numpy(_images(digits, 8)))  # a batch far outside the calibration range
        step = (raw[-1].max() - raw[-1].min()) / 255
        assert (quantized[-1] - raw[-1]).abs().max() <= step  # rounded, not clipped
        tiny_cnn.eval()
        tiny_cnn(torch.from_numpy(_images(digits, 8)))
        values = torch.unique(quantized[-1])
        assert (values[1:] - values[:-1]).min() >= 0.9 * step  # the wide grid is kept
    before.remove()
    after.remove()


def test_qat_fine_tunes_an_unpruned_int8_plan_and_ptq_does_not(tiny_cnn, digits):
    from spaces.apply import prune_and_recover

    randomise_batchnorm(tiny_cnn)
    layers = {name: LayerPlan(0.0, "int8") for name in ("stem.0", "stage1.conv1.0", "stage1.conv2.0")}
    before = tiny_cnn.get_submodule("stage1.conv1.0").weight.detach().clone()
    for recovery, moves in (("ptq", False), ("qat", True)):
        plan = CompressionPlan(layers, Recipe(finetune_epochs=1, calibration_size=16, recovery=recovery))
        candidate = prune_and_recover(plan, tiny_cnn, digits.train, 16)
        after = candidate.get_submodule("stage1.conv1.0").weight.detach()
        assert (not torch.equal(after, before)) == moves, recovery
        assert not torch.nn.utils.parametrize.is_parametrized(candidate.get_submodule("stage1.conv1.0"))


def test_an_unknown_recovery_is_refused():
    with pytest.raises(PlanError, match="recovery 'qta' is not one of ptq, qat"):
        Recipe(recovery="qta")
