"""Supervised training, optionally distilled from a teacher: baseline training and recovery fine-tune."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from torch import nn


class ImageDataset(Protocol):
    """What training, calibration and evaluation need of a data set: a length and (image, label) items."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Any, Any]: ...


DISTILL_TEMPERATURE = 4.0


def train(
    model: nn.Module,
    dataset: ImageDataset,
    epochs: int,
    lr: float,
    seed: int,
    teacher: nn.Module | None = None,
    batch_size: int = 64,
) -> float:
    """Train ``model`` in place with AdamW and a cosine schedule; returns the last epoch's mean loss.

    Args:
        model: Model to train.
        dataset: (image, label) pairs.
        epochs: Passes over ``dataset``; 0 leaves the model untouched.
        lr: Peak learning rate.
        seed: Seeds batch order.
        teacher: If given, the loss is half cross-entropy, half KL divergence to its soft outputs.
        batch_size: Images per step.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
    """
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader

    if epochs <= 0:
        return float("nan")
    generator = torch.Generator().manual_seed(seed)
    loader: DataLoader = DataLoader(
        dataset,  # type: ignore[arg-type]  # any map-style data set works
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(dataset) > batch_size,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    if teacher is not None:
        teacher.eval()
    mean_loss = float("nan")
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for images, labels in loader:
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            if teacher is not None:
                with torch.no_grad():
                    soft = F.softmax(teacher(images) / DISTILL_TEMPERATURE, dim=1)
                kd = F.kl_div(F.log_softmax(logits / DISTILL_TEMPERATURE, dim=1), soft, reduction="batchmean")
                loss = 0.5 * loss + 0.5 * kd * DISTILL_TEMPERATURE**2
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training loss became {loss.item()} in epoch {epoch + 1}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(labels)
            count += len(labels)
        mean_loss = total / max(count, 1)
    model.eval()
    return mean_loss
