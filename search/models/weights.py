"""The uncompressed model's weights: loaded from a checkpoint, or trained here once and cached."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError
from core.files import atomic_target
from search.data import DataSpec, Splits

if TYPE_CHECKING:
    from torch import nn

TRAIN_LR = 3e-3


@dataclass(frozen=True)
class UncompressedWeights:
    """The uncompressed model with its weights, and where they come from (file path and SHA-256)."""

    model: nn.Module
    source: str
    sha256: str


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare_weights(
    model_name: str,
    splits: Splits,
    data: DataSpec,
    cache_dir: Path,
    epochs: int,
    checkpoint: str | None = None,
    pretrained: bool = False,
    log=print,
) -> UncompressedWeights:
    """Load the model's weights from ``checkpoint``, or train it on the train split (seeded) and cache it.

    The cache key covers model, data (and train size), input size, seed and epochs; a later run
    with the same key reuses the file instead of training again.
    """
    import torch

    from search.models.factory import build_model, load_model
    from spaces.finetune import train

    if checkpoint:
        model = load_model(model_name, splits.num_classes, checkpoint, pretrained)
        return UncompressedWeights(model, str(Path(checkpoint).resolve()), file_sha256(Path(checkpoint)))
    parts = [model_name, data.kind, data.path, data.input_size, data.seed, epochs, pretrained]
    key = json.dumps(parts + ([data.train_size] if data.train_size is not None else []))  # older caches keep their key
    path = cache_dir / f"{model_name}-{data.kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    if path.is_file():
        model = load_model(model_name, splits.num_classes, path, pretrained)
        log(f"baseline: reusing {path}")
    else:
        log(f"baseline: training {model_name} on {data.label} for {epochs} epochs (no --checkpoint given)")
        torch.manual_seed(data.seed)
        model = build_model(model_name, splits.num_classes, pretrained=pretrained)
        try:
            loss = train(model, splits.train, epochs, TRAIN_LR, data.seed)
        except FloatingPointError:
            loss = float("nan")
        if epochs > 0 and not math.isfinite(loss):
            raise UserError(
                f"training {model_name} diverged (loss {loss}): nothing was cached; pass --checkpoint of trained weights"
            )
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_target(path) as temporary:
            torch.save(model.state_dict(), temporary)
    return UncompressedWeights(model.eval(), str(path.resolve()), file_sha256(path))
