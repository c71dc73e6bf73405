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


@dataclass(frozen=True)
class LayerPlan:
    """What happens to one conv/linear layer: share of output channels removed, and its precision."""

    prune_ratio: float = 0.0
    precision: str = REFERENCE

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise PlanError(f"precision '{self.precision}' is not one of {', '.join(PRECISIONS.names())}")
        if not 0.0 <= float(self.prune_ratio) < 1.0:
            raise PlanError(f"prune_ratio {self.prune_ratio} is outside [0, 1)")


@dataclass(frozen=True)
class Recipe:
    """How a plan is realised: recovery fine-tune (``ptq``: in FP32, then INT8 by post-training quantization;
    ``qat``: with the INT8 layers fake-quantized, see ``spaces.qat``), calibration and INT8 quantizer, channel
    rounding, seed."""

    finetune_epochs: int = 3
    finetune_lr: float = 3e-3
    distill: bool = False
    calibration_size: int = 128
    round_to: int = 4
    seed: int = 0
    quantizer: str = DEFAULT_QUANTIZER
    recovery: str = "ptq"

    def __post_init__(self) -> None:
        from spaces.quantize import QUANTIZERS

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
        except (TypeError, ValueError) as exc:  # a missing or unknown key; a ratio that is not a number
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
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise PlanError(f"the file is not valid YAML{yaml_where(exc)}") from None
        plan = cls.from_dict(data)
        source = data.get("source")
        return plan, source if isinstance(source, dict) else {}
