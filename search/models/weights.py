"""The uncompressed model's weights: loaded from a checkpoint, or trained here once and cached."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.files import atomic_target
from search.data import DataSpec, Splits

if TYPE_CHECKING:
    from torch import nn

    from spaces.finetune import Run, TrainRecipe


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


# A small train split still gets this many optimizer steps per epoch: the batch shrinks (down to 16 images).
MIN_STEPS_PER_EPOCH = 32


def baseline_recipe(data: DataSpec, epochs: int, model: nn.Module, train_images: int, **changes: Any) -> TrainRecipe:
    """The baseline training recipe of ``model`` on ``data``: its family's learning rate and a batch that gives at
    least :data:`MIN_STEPS_PER_EPOCH` steps per epoch over ``train_images``, unless ``changes`` set them; mirror
    flips (when asked for) only where the data's classes are mirror-invariant."""
    from core.data_kinds import DATA_KINDS
    from spaces.finetune import TrainRecipe, family_lr

    if changes.get("lr") is None:
        changes["lr"] = family_lr(model)
    if changes.get("batch_size") is None:
        changes["batch_size"] = min(TrainRecipe.batch_size, max(16, train_images // MIN_STEPS_PER_EPOCH))
    changes["flip"] = bool(changes.get("flip")) and DATA_KINDS.get(data.kind).mirror_invariant
    return TrainRecipe(epochs=epochs, **changes)


def baseline_path(model_name: str, data: DataSpec, recipe: TrainRecipe, cache_dir: Path, pretrained: bool = False) -> Path:
    """Where the baseline of this model, data (kind, folder, train size, split seed), input size and recipe is cached."""
    parts = [model_name, data.kind, data.path, data.input_size, data.seed, data.val_fraction, data.train_size, pretrained]
    key = json.dumps([*parts, recipe.to_dict()], sort_keys=True)
    return cache_dir / f"{model_name}-{data.kind}-{data.input_size}px-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"


def partial_path(path: Path) -> Path:
    """The file a training in progress saves after every epoch (removed when it ends)."""
    return path.with_suffix(".partial.pt")


def record_path(path: Path) -> Path:
    """The JSON record beside a cached baseline: recipe, accuracy per epoch, seconds, the CPU it ran on."""
    return path.with_suffix(".json")


def prepare_weights(
    model_name: str,
    splits: Splits,
    data: DataSpec,
    cache_dir: Path,
    recipe: TrainRecipe,
    checkpoint: str | None = None,
    pretrained: bool = False,
    device: str = "cpu",
    log: Callable[[str], object] = print,
    on_step: Callable[[int, int, float], None] | None = None,
) -> UncompressedWeights:
    """Load the model's weights from ``checkpoint``, or train it by ``recipe`` on the train split and cache it.

    The cache key covers model, data (and train size), input size, seed and recipe: a later run with the same key
    reuses the file. A training saves its state after every epoch; a run killed mid-way resumes from there.

    Raises:
        UserError: the training diverged (nothing is cached).
    """
    import torch

    from hw_profiles.host import this_machine
    from search.models.factory import build_model, load_model
    from spaces.finetune import fit

    if checkpoint:
        model = load_model(model_name, splits.num_classes, checkpoint, pretrained)
        return UncompressedWeights(model, str(Path(checkpoint).resolve()), file_sha256(Path(checkpoint)))
    path = baseline_path(model_name, data, recipe, cache_dir, pretrained)
    if path.is_file():
        model = load_model(model_name, splits.num_classes, path, pretrained)
        log(f"baseline: reusing {path}")
        return UncompressedWeights(model.eval(), str(path.resolve()), file_sha256(path))
    torch.manual_seed(data.seed)
    model = build_model(model_name, splits.num_classes, pretrained=pretrained)
    resume = _read_partial(partial_path(path))
    done = resume["progress"]["epoch"] if resume else 0
    log(
        f"baseline: training {model_name} on {data.label} ({len(splits.train)} images, {data.input_size} px) for "
        f"{recipe.epochs} epochs on {device}" + (f", resuming after epoch {done}" if done else "")
    )
    cache_dir.mkdir(parents=True, exist_ok=True)

    def save(run: Run) -> None:
        with atomic_target(partial_path(path)) as temporary:
            torch.save(run.state_dict(), temporary)
        val = run.progress.val_top1[-1]
        log(
            f"baseline: epoch {run.progress.epoch}/{recipe.epochs}: loss {run.progress.losses[-1]:.4f}, "
            f"val top-1 {100 * (val or 0):.2f}% ({run.progress.seconds[-1]:.0f} s)"
        )

    try:
        progress = fit(
            model, splits.train, recipe, data.seed, device=device, val=splits.val, resume=resume, on_epoch=save,
            on_step=on_step,
        )  # fmt: skip
    except FloatingPointError as exc:
        partial_path(path).unlink(missing_ok=True)
        raise UserError(
            f"training {model_name} diverged ({exc}): nothing was cached; lower --lr or pass --checkpoint of trained weights"
        ) from None
    record = {
        "model": model_name,
        "data": data.label,
        "train_images": len(splits.train),
        "input_size": data.input_size,
        "seed": data.seed,
        "recipe": recipe.to_dict(),
        "device": device,
        "cpu": this_machine()["cpu"],
        "epochs": progress.epoch,
        "loss": progress.losses,
        "val_top1": progress.val_top1,
        "epoch_seconds": progress.seconds,
    }
    with atomic_target(path) as temporary:
        torch.save(model.state_dict(), temporary)
    with atomic_target(record_path(path)) as temporary:
        temporary.write_text(json.dumps(record, indent=1) + "\n")
    partial_path(path).unlink(missing_ok=True)
    return UncompressedWeights(model.eval(), str(path.resolve()), file_sha256(path))


def _read_partial(path: Path) -> dict[str, Any] | None:
    """A saved training state, or None (none saved, or unreadable: the training starts over)."""
    import torch

    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (a truncated or foreign file: start over rather than fail)
        return None
