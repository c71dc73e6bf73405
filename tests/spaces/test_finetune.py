"""The training loop: a seeded run is reproducible, a resumed run equals an uninterrupted one, augmentation keeps
shapes and flips only when asked, the weight average ships only when it scores better, and step budgets count steps."""

from __future__ import annotations

import itertools

import pytest
import torch

from spaces.finetune import TrainRecipe, augment, fit, lr_at, resolve_device

QUICK = TrainRecipe(epochs=3, batch_size=32, lr=3e-3, ema_decay=0.9)


def _fit(model, digits, **kwargs):
    return fit(model, digits.train, kwargs.pop("recipe", QUICK), 0, val=digits.val, **kwargs)


def _weights(model) -> list[torch.Tensor]:
    return [t.clone() for t in model.state_dict().values()]


def test_a_seeded_training_learns_and_repeats(digits, tiny_cnn):
    import copy

    other = copy.deepcopy(tiny_cnn)
    progress = _fit(tiny_cnn, digits)
    assert progress.epoch == 3 and len(progress.losses) == len(progress.val_top1) == 3
    assert progress.val_top1[-1] > 0.5  # chance is 0.1
    _fit(other, digits)
    assert all(torch.equal(a, b) for a, b in zip(_weights(tiny_cnn), _weights(other), strict=True))


def test_a_resumed_training_ends_where_an_uninterrupted_one_does(digits, tiny_cnn):
    import copy

    resumed = copy.deepcopy(tiny_cnn)
    _fit(tiny_cnn, digits)
    saved = []

    class Killed(Exception):
        pass

    def kill_after_first(run):
        saved.append(copy.deepcopy(run.state_dict()))
        raise Killed

    fresh = copy.deepcopy(resumed)
    with pytest.raises(Killed):
        _fit(resumed, digits, on_epoch=kill_after_first)
    progress = _fit(fresh, digits, resume=saved[0])
    assert progress.epoch == 3 and len(progress.losses) == 3
    assert all(torch.equal(a, b) for a, b in zip(_weights(tiny_cnn), _weights(fresh), strict=True))


def test_augmentation_crops_and_flips_only_when_asked():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    plain = augment(images, TrainRecipe(crop=False, flip=False), torch.Generator().manual_seed(0))
    assert torch.equal(plain, images)
    flipped = [augment(images, TrainRecipe(crop=False, flip=True), torch.Generator().manual_seed(s)) for s in range(8)]
    assert all(torch.equal(f[i], images[i]) or torch.equal(f[i], images[i].flip(2)) for f in flipped for i in range(2))
    assert any(torch.equal(f[0], images[0].flip(2)) for f in flipped)
    cropped = augment(images, TrainRecipe(crop=True, flip=False), torch.Generator().manual_seed(0))
    assert cropped.shape == images.shape and not torch.equal(cropped, images)


def test_the_learning_rate_warms_up_then_falls_to_zero():
    recipe = TrainRecipe(lr=1.0, warmup=0.1)
    rates = [lr_at(recipe, step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:])) and rates[-1] < 0.01


def test_a_step_budget_counts_steps_not_epochs(digits, tiny_cnn):
    seen = []
    fit(tiny_cnn, digits.train, QUICK, 0, steps=5, on_step=lambda step, total, loss: seen.append((step, total)))
    assert seen == [(step, 5) for step in range(1, 6)]


def test_a_diverging_training_raises(digits, tiny_cnn):
    with pytest.raises(FloatingPointError):
        fit(tiny_cnn, digits.train, TrainRecipe(epochs=2, batch_size=32, lr=1e12, warmup=0.0), 0)


def test_cuda_is_refused_where_torch_sees_no_gpu():
    from core.errors import UserError

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match="--device cuda: torch sees no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_ends_on_the_cpu(digits, tiny_cnn):
    _fit(tiny_cnn, digits, device="cuda")
    assert all(p.device.type == "cpu" for p in tiny_cnn.parameters())


def test_batchnorm_reestimation_matches_the_data_and_keeps_the_weights(digits, tiny_cnn):
    from spaces.finetune import reestimate_batchnorm

    norm = next(m for m in tiny_cnn.modules() if isinstance(m, torch.nn.BatchNorm2d))
    weights = [p.clone() for p in tiny_cnn.parameters()]
    reestimate_batchnorm(tiny_cnn, digits.train, count=4, seed=0)
    assert norm.momentum == 0.1 and not tiny_cnn.training
    assert norm.num_batches_tracked.item() == 4 and not torch.allclose(norm.running_mean, torch.zeros_like(norm.running_mean))
    assert all(torch.equal(a, b) for a, b in zip(weights, tiny_cnn.parameters(), strict=True))


def test_depthwise_networks_train_at_the_higher_rate(tiny_cnn, tiny_hlcnn):
    from spaces.finetune import DEPTHWISE_LR, family_lr

    assert family_lr(tiny_hlcnn) == DEPTHWISE_LR and family_lr(tiny_cnn) == TrainRecipe.lr
