"""CompressionPlan: per layer, a prune ratio and a precision. Plain data, YAML round-trip."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError, yaml_where
from core.precisions import PRECISIONS, REFERENCE
from spaces.quantize import DEFAULT_QUANTIZER

RECOVERIES = ("ptq", "qat")


class PlanError(UserError):
    """A plan that is malformed or does not fit the model."""


def number(value: Any, key: str, low: float, high: float, high_open: bool = False) -> None:
    """Refuse a plan field that is not a finite number in [low, high] (or [low, high)): a string, a bool, nan."""
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlanError(f"{key} {value!r} is not a number")
    if not low <= value <= high or (high_open and value == high):
        raise PlanError(f"{key} {value} is outside [{low:g}, {high:g}{')' if high_open else ']'}")


def whole(value: Any, key: str, low: int, high: int) -> None:
    """Refuse a plan field that is not a whole number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{key} {value!r} is not a whole number")
    if not low <= value <= high:
        raise PlanError(f"{key} {value} is outside [{low}, {high}]")


@dataclass(frozen=True)
class LayerPlan:
    """What happens to one conv/linear layer: share of output channels removed, and its precision."""

    prune_ratio: float = 0.0
    precision: str = REFERENCE

    def __post_init__(self) -> None:
        if not isinstance(self.precision, str) or self.precision not in PRECISIONS:
            raise PlanError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS.names())}")
        number(self.prune_ratio, "prune_ratio", 0.0, 1.0, high_open=True)


@dataclass(frozen=True)
class Recipe:
    """How a plan is realised: recovery fine-tune (``finetune_steps`` optimizer steps over the train split when
    given, else ``finetune_epochs`` passes, after ``bn_batches`` batches of BatchNorm re-estimation; ``ptq``: in
    FP32, then INT8 by post-training quantization; ``qat``: with the INT8 layers fake-quantized, see
    ``spaces.qat``), calibration and INT8 quantizer, channel rounding, seed."""

    finetune_epochs: int = 3
    finetune_lr: float = 3e-3
    finetune_steps: int = 0  # > 0: that many optimizer steps over the whole train split instead of epochs
    bn_batches: int = 0  # > 0: BatchNorm statistics re-estimated on that many batches after pruning
    distill: bool = False
    calibration_size: int = 128
    round_to: int = 4
    seed: int = 0
    quantizer: str = DEFAULT_QUANTIZER
    recovery: str = "ptq"

    def __post_init__(self) -> None:
        from spaces.quantize import QUANTIZERS

        whole(self.finetune_epochs, "finetune_epochs", 0, 1000)
        whole(self.finetune_steps, "finetune_steps", 0, 10_000_000)
        whole(self.bn_batches, "bn_batches", 0, 1_000_000)
        number(self.finetune_lr, "finetune_lr", 0.0, float("inf"))
        whole(self.calibration_size, "calibration_size", 1, 100_000)
        whole(self.round_to, "round_to", 1, 1024)
        whole(self.seed, "seed", 0, 2**32 - 1)
        if not isinstance(self.distill, bool):
            raise PlanError(f"distill {self.distill!r} is not true or false")
        for key in ("quantizer", "recovery"):
            if not isinstance(getattr(self, key), str):
                raise PlanError(f"{key} {getattr(self, key)!r} is not a name")
        if self.quantizer not in QUANTIZERS:
            raise PlanError(f"quantizer '{self.quantizer}' is not one of {', '.join(QUANTIZERS)}")
        if self.recovery not in RECOVERIES:
            raise PlanError(f"recovery '{self.recovery}' is not one of {', '.join(RECOVERIES)}")


@dataclass(frozen=True)
class CompressionPlan:
    """Layer name -> LayerPlan, plus the recipe that realises it; replayable by ``spaces.apply``."""

    layers: dict[str, LayerPlan]
    recipe: Recipe = field(default_factory=Recipe)

    def layers_in(self, precision: str) -> list[str]:
        """Names of the layers that run in ``precision``."""
        return [name for name, lp in self.layers.items() if lp.precision == precision]

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-serialisable dict."""
        return {
            "layers": {name: {"prune_ratio": lp.prune_ratio, "precision": lp.precision} for name, lp in self.layers.items()},
            "recipe": asdict(self.recipe),
        }

    @classmethod
    def from_dict(cls, data: Any) -> CompressionPlan:
        """Inverse of :meth:`to_dict`; raises PlanError on anything malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("layers"), dict):
            raise PlanError("a plan needs a 'layers' mapping of layer name -> {prune_ratio, precision}")
        unknown = set(data) - {"layers", "recipe", "source"}
        if unknown:
            raise PlanError(f"unknown plan keys: {', '.join(sorted(unknown))}")
        try:
            layers = {str(name): LayerPlan(**spec) for name, spec in data["layers"].items()}
            recipe = Recipe(**data.get("recipe", {}))
        except (TypeError, ValueError, PlanError) as exc:  # a missing or unknown key; a ratio that is not a number
            raise PlanError(f"malformed plan entry: {exc}") from None
        return cls(layers=layers, recipe=recipe)

    def to_yaml(self, path: str | Path, source: dict[str, Any] | None = None) -> None:
        """Write the plan as YAML; ``source`` (model, data, profile) is written beside it for humans."""
        import yaml

        data = self.to_dict()
        if source:
            data["source"] = source
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False))

    @classmethod
    def read_yaml(cls, path: str | Path) -> tuple[CompressionPlan, dict[str, Any]]:
        """Read a plan written by :meth:`to_yaml` (``yaml.safe_load``): the plan and its ``source`` section."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise PlanError(f"the file is not valid YAML{yaml_where(exc)}") from None
        except UnicodeDecodeError:
            raise PlanError("the file is not UTF-8 text") from None
        plan = cls.from_dict(data)
        source = data.get("source")
        return plan, source if isinstance(source, dict) else {}
