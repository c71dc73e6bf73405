"""Models by name (built-in, timm, torchvision) and their weights from a checkpoint or a state dict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError, unknown_name

if TYPE_CHECKING:
    from torch import nn


def _small_cnn(num_classes: int, in_chans: int) -> nn.Module:
    from search.models.small_cnn import SmallCNN

    return SmallCNN(num_classes=num_classes, in_chans=in_chans)


def _hl_cnn(num_classes: int, in_chans: int) -> nn.Module:
    from search.models.hl_cnn import HLCNN

    return HLCNN(num_classes=num_classes, in_chans=in_chans)


BUILTIN_MODELS: dict[str, Callable[[int, int], nn.Module]] = {"small_cnn": _small_cnn, "hl_cnn": _hl_cnn}


TORCHVISION_PREFIX = "torchvision:"


def _torchvision_models() -> list[str]:
    from torchvision import models

    return models.list_models(module=models)


def torchvision_name(name: str) -> str | None:
    """The torchvision model ``name`` stands for: ``torchvision:NAME``, or a plain name timm lacks (``squeezenet1_1``)."""
    if name.startswith(TORCHVISION_PREFIX):
        return name[len(TORCHVISION_PREFIX) :]
    import timm

    return name if not timm.is_model(name) and name in _torchvision_models() else None


def check_model_name(name: str) -> None:
    """Raise a UserError naming the closest models if ``name`` is not built in, in timm or in torchvision."""
    if name in BUILTIN_MODELS:
        return
    vision = torchvision_name(name)
    if name.startswith(TORCHVISION_PREFIX):
        known = _torchvision_models()
        if vision not in known:
            raise unknown_name("torchvision model", str(vision), known, "torchvision.models.list_models()")
        return
    import timm

    if vision is None and not timm.is_model(name):
        known = [*BUILTIN_MODELS, *timm.list_models(), *_torchvision_models()]
        raise unknown_name("model", name, known, "timm.list_models() and torchvision.models.list_models()")
    architecture, _, tag = name.partition(".")
    if vision is None and tag and name not in timm.list_pretrained(f"{architecture}.*"):
        tags = [known.partition(".")[2] for known in timm.list_pretrained(f"{architecture}.*")]
        raise UserError(f"timm model '{architecture}' has no tag '{tag}': its tags are {', '.join(tags) or 'none'}")


def check_pretrained(name: str) -> None:
    """Refuse ``--pretrained`` for a model that has no pretrained weights to ask for (built-in and torchvision
    models are built with random weights here)."""
    if name in BUILTIN_MODELS or torchvision_name(name) is not None:
        raise UserError(f"--pretrained: '{name}' has no pretrained weights here (only timm models do): pass --checkpoint")


def build_model(name: str, num_classes: int, in_chans: int = 3, pretrained: bool = False) -> nn.Module:
    """Create a model by name: a built-in one (``small_cnn``, ``hl_cnn``), any timm model, or a torchvision model
    (``torchvision:NAME``, or its plain name where timm has none of that name, e.g. ``squeezenet1_1``).

    Args:
        name: Model name.
        num_classes: Size of the classifier output.
        in_chans: Input channels.
        pretrained: Passed to timm (needs internet); ignored for built-in models.
    """
    check_model_name(name)
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name](num_classes, in_chans)
    vision = torchvision_name(name)
    if vision is not None:
        from torchvision import models

        return models.get_model(vision, weights=None, num_classes=num_classes)
    import timm

    return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans)


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a state dict saved with ``torch.save`` (plain, or under 'state_dict'/'model') into ``model``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' not found: pass the path of a saved state_dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch raises many types for a bad or unsafe file)
        raise UserError(
            f"checkpoint '{path}' cannot be read with weights_only=True ({type(exc).__name__}): save a plain state_dict"
        ) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"checkpoint '{path}' does not fit the model ({first}): check --model and --checkpoint") from None


def load_model(name: str, num_classes: int, weights: str | Path | dict | None = None, pretrained: bool = False) -> nn.Module:
    """Model ``name`` with ``weights`` (a checkpoint file, read with ``weights_only=True``, or a state dict), in eval
    mode; the one way the tool builds an uncompressed model and loads its weights."""
    model = build_model(name, num_classes, pretrained=pretrained)
    if isinstance(weights, dict):
        model.load_state_dict(weights)
    elif weights is not None:
        load_checkpoint(model, weights)
    return model.eval()


def check_input_size(model: nn.Module, name: str, input_size: int) -> None:
    """One forward pass of ``model`` at ``input_size``: an input smaller than the network's downsampling is refused
    before anything trains."""
    import torch

    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise UserError(f"{name} cannot run on {input_size} px inputs ({first}): pass a larger --input-size") from None
