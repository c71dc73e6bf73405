"""Supervised training, optionally distilled from a teacher: baseline training and recovery fine-tune.

One loop serves both. A :class:`TrainRecipe` says how (AdamW, warmup then cosine, label smoothing, an EMA of the
weights, random crops and mirror flips on the batch tensors); :func:`fit` runs it for a number of optimizer steps
over seeded per-epoch permutations of the data, on CPU or CUDA, and hands its state to a callback at every epoch end
so that a killed run resumes from its last epoch with the same batches.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn


class ImageDataset(Protocol):
    """What training, calibration and evaluation need of a data set: a length and (image, label) items."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Any, Any]: ...


DISTILL_TEMPERATURE = 4.0


@dataclass(frozen=True)
class TrainRecipe:
    """How a model is trained. The defaults are the baseline recipe: what paid on fashion-mnist (docs/baselines.md):
    within a budget of a few epochs, random crops and flips slowed learning more than they helped, so they are off;
    networks with depthwise convolutions learn fastest at a higher rate (:func:`family_lr`).

    Attributes:
        epochs: Passes over the data (a fine-tune may give ``steps`` instead, see :func:`fit`).
        batch_size: Images per optimizer step.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup: Share of the steps over which the learning rate rises linearly from 0 (then cosine to 0).
        label_smoothing: Of the cross-entropy targets.
        ema_decay: Decay of an exponential moving average of the weights (0: none); the average ships when it
            scores better on validation.
        crop: Random crops of the image padded by 1/8 of its side.
        flip: Random mirror flips (only for data whose classes are mirror-invariant).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    label_smoothing: float = 0.1
    ema_decay: float = 0.999
    crop: bool = False
    flip: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for cache keys and the record beside a checkpoint)."""
        return asdict(self)


DEPTHWISE_LR = 1e-2  # AdamW peak rate for networks with depthwise convolutions (MobileNets, EfficientNets, HL-CNN)


def family_lr(model: nn.Module) -> float:
    """The baseline learning rate of ``model``'s family: :data:`DEPTHWISE_LR` where it has a depthwise convolution
    (two epochs of MobileNetV2 and HL-CNN on fashion-mnist: 82.5% and 84.2% val at 1e-2, 79.5% and 80.1% at 5e-3 and
    2e-3), the recipe's default otherwise (ResNet-18: 87.5% at 2e-3, 86.6% at 1e-2)."""
    from torch import nn

    depthwise = any(isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels for m in model.modules())
    return DEPTHWISE_LR if depthwise else TrainRecipe.lr


def finetune_recipe(lr: float, epochs: int = 0) -> TrainRecipe:
    """The recovery fine-tune: plain AdamW with a cosine schedule, no augmentation, smoothing or average."""
    return TrainRecipe(
        epochs=epochs, batch_size=64, lr=lr, weight_decay=1e-4, warmup=0.0, label_smoothing=0.0, ema_decay=0.0,
        crop=False, flip=False,
    )  # fmt: skip


@dataclass
class Progress:
    """Where a training stands: epochs done, mean loss and validation top-1 per epoch (None when not measured)."""

    epoch: int = 0
    losses: list[float] = field(default_factory=list)
    val_top1: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """``--device``: ``auto`` is ``cuda`` where torch sees a GPU, else ``cpu``.

    Raises:
        UserError: an unknown name, or ``cuda`` where torch sees no GPU.
    """
    import torch

    from core.errors import UserError

    if name not in DEVICES:
        raise UserError(f"--device '{name}' is not one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA GPU here: use --device cpu (or auto)")
    return "cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name)


def lr_at(recipe: TrainRecipe, step: int, total: int) -> float:
    """The learning rate of ``step`` (0-based) of ``total``: linear warmup, then cosine down to 0."""
    warm = int(recipe.warmup * total)
    if step < warm:
        return recipe.lr * (step + 1) / warm
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


def augment(images: torch.Tensor, recipe: TrainRecipe, generator: torch.Generator) -> torch.Tensor:
    """Random crops (edge-replicated padding of 1/8 of the side) and mirror flips of a batch, per image."""
    import torch
    from torch.nn import functional as F

    n, _, h, w = images.shape
    if recipe.crop:
        pad = max(1, h // 8)
        padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
        images = padded[torch.arange(n)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None], rows, cols]
    if recipe.flip:
        flip = torch.rand(n, generator=generator) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
    return images


def batches(dataset: ImageDataset, batch_size: int, generator: torch.Generator):
    """One epoch of (images, labels) batches in a seeded random order (a last short batch is dropped when the data
    holds more than one batch)."""
    import torch

    order = torch.randperm(len(dataset), generator=generator).tolist()
    size = len(order) if len(order) <= batch_size else batch_size
    for start in range(0, len(order) - size + 1, size):
        items = [dataset[i] for i in order[start : start + size]]
        yield torch.stack([image for image, _ in items]), torch.as_tensor([int(label) for _, label in items])


def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Move the floating tensors (weights and BatchNorm statistics) of ``ema`` towards ``model``'s."""
    import torch

    with torch.no_grad():
        for average, current in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
            if average.dtype.is_floating_point:
                average.lerp_(current, 1 - decay)
            else:
                average.copy_(current)


def top1(model: nn.Module, dataset: ImageDataset, device: str = "cpu", batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (in eval mode, in torch) on ``dataset``."""
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            images = torch.stack([image for image, _ in items]).to(device).contiguous(memory_format=torch.channels_last)
            labels = torch.as_tensor([int(label) for _, label in items], device=device)
            correct += int((model(images).argmax(1) == labels).sum())
    return correct / max(len(dataset), 1)


@dataclass
class Run:
    """A training in progress: the model, its weight average, the optimizer and the progress so far."""

    model: nn.Module
    ema: nn.Module | None
    optimizer: torch.optim.Optimizer
    progress: Progress

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (plain tensors and numbers: loadable with ``weights_only=True``)."""
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "progress": asdict(self.progress),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = Progress(**state["progress"])


def fit(
    model: nn.Module,
    dataset: ImageDataset,
    recipe: TrainRecipe,
    seed: int,
    *,
    steps: int | None = None,
    teacher: nn.Module | None = None,
    device: str = "cpu",
    val: ImageDataset | None = None,
    resume: dict[str, Any] | None = None,
    on_epoch: Callable[[Run], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> Progress:
    """Train ``model`` in place by ``recipe``; it ends in eval mode on the CPU, holding the weight average where that
    scored better on ``val``.

    Args:
        model: Model to train.
        dataset: (image, label) pairs.
        recipe: How.
        seed: Seeds the batch order and augmentation of every epoch (so a resumed run sees the same batches).
        steps: Optimizer steps in all (default: ``recipe.epochs`` passes); a fine-tune budget that does not depend
            on the size of the data.
        teacher: If given, the loss is half cross-entropy, half KL divergence to its soft outputs.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        val: Scored after every epoch (top-1 of what would ship) when given.
        resume: A :meth:`Run.state_dict` to continue from.
        on_epoch: Called with the run after every epoch (to save it).
        on_step: Called with (step, total steps, loss) after every step.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
    """
    import time

    import torch
    from torch.nn import functional as F

    per_epoch = max(1, len(dataset) // recipe.batch_size) if len(dataset) > recipe.batch_size else 1
    total = steps if steps is not None else recipe.epochs * per_epoch
    if total <= 0:
        return Progress()
    model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # about 2x faster on CPU for depthwise nets
    run = Run(
        model,
        copy.deepcopy(model).eval() if recipe.ema_decay > 0 else None,
        torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay),
        Progress(),
    )
    if resume is not None:
        run.load_state_dict(resume)
    if teacher is not None:
        teacher.to(device).eval()
    step = run.progress.epoch * per_epoch
    while step < total:
        started, total_loss, count = time.perf_counter(), 0.0, 0
        generator = torch.Generator().manual_seed(seed * 100_003 + run.progress.epoch)
        model.train()
        for batch, targets in batches(dataset, recipe.batch_size, generator):
            if step >= total:
                break
            images = augment(batch, recipe, generator).to(device).contiguous(memory_format=torch.channels_last)
            labels = targets.to(device)
            for group in run.optimizer.param_groups:
                group["lr"] = lr_at(recipe, step, total)
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
            if teacher is not None:
                with torch.no_grad():
                    soft = F.softmax(teacher(images) / DISTILL_TEMPERATURE, dim=1)
                kd = F.kl_div(F.log_softmax(logits / DISTILL_TEMPERATURE, dim=1), soft, reduction="batchmean")
                loss = 0.5 * loss + 0.5 * kd * DISTILL_TEMPERATURE**2
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} in epoch {run.progress.epoch + 1}")
            run.optimizer.zero_grad()
            loss.backward()
            run.optimizer.step()
            if run.ema is not None:
                update_ema(run.ema, model, min(recipe.ema_decay, (1 + step) / (10 + step)))
            step += 1
            total_loss += value * len(labels)
            count += len(labels)
            if on_step is not None:
                on_step(step, total, value)
        run.progress.epoch += 1
        run.progress.losses.append(total_loss / max(count, 1))
        run.progress.val_top1.append(top1(run.ema or model, val, device) if val is not None else None)
        run.progress.seconds.append(time.perf_counter() - started)
        if on_epoch is not None:
            on_epoch(run)
    if run.ema is not None and val is not None and top1(run.ema, val, device) >= top1(model, val, device):
        model.load_state_dict(run.ema.state_dict())
    model.to("cpu").to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    model.eval()
    return run.progress


def reestimate_batchnorm(model: nn.Module, dataset: ImageDataset, count: int, seed: int, batch_size: int = 64) -> None:
    """Recompute every BatchNorm layer's running statistics of ``model`` as the plain average over ``count`` batches
    of ``dataset`` (no weight changes): a pruned model's statistics no longer match its channels, and this is the
    cheapest repair (the cheap fidelity's first step)."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or count <= 0:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches seen
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for done, (images, _) in enumerate(batches(dataset, batch_size, generator)):
            if done >= count:
                break
            model(images)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def train(
    model: nn.Module,
    dataset: ImageDataset,
    epochs: int,
    lr: float,
    seed: int,
    teacher: nn.Module | None = None,
    steps: int | None = None,
    device: str = "cpu",
) -> float:
    """The recovery fine-tune of ``model`` in place (:func:`finetune_recipe`) for ``epochs`` passes over ``dataset``,
    or ``steps`` optimizer steps when given, on ``device``; returns the last epoch's mean loss (NaN when nothing
    ran)."""
    progress = fit(model, dataset, finetune_recipe(lr, epochs), seed, steps=steps, teacher=teacher, device=device)
    return progress.losses[-1] if progress.losses else float("nan")
