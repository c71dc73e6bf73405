"""Numeric precisions a layer can run in: storage and activation sizes, how a graph realises them.

Order matters: precisions are registered from the most precise (the reference a
unit's "uncompressed" model runs in) to the least. Profiles list the
precisions each unit runs (``hw_profiles``); the search space offers a layer
every precision its unit runs (``spaces.space``); a realisation step turns a
plan's layers into that precision in the ONNX graph (``spaces.realise``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.registry import Registry


class Realisation(StrEnum):
    """How the ONNX graph carries a precision (``spaces.realise`` holds one step per kind)."""

    NONE = "none"  # the exported FP32 graph as it is
    INT8_QDQ = "int8-qdq"  # QuantizeLinear/DequantizeLinear pairs from post-training quantization
    FP16_CAST = "fp16-cast"  # weights stored as float16, Casts around the layer


@dataclass(frozen=True)
class Precision:
    """One precision.

    Attributes:
        name: What plans, profiles and the CLI call it (``int8``).
        weight_bytes: Bytes per stored weight.
        bias_bytes: Bytes per stored bias (INT8 layers keep an INT32 bias).
        activation_bytes: Bytes per activation value a layer in this precision reads and writes.
        realisation: How the ONNX graph carries it.
        per_layer_support: Offered only for the layers the quantizer accepts (probed once per study).
        description: One line for listings.
    """

    name: str
    weight_bytes: float
    bias_bytes: float
    activation_bytes: float
    realisation: Realisation
    per_layer_support: bool = False
    description: str = ""

    def stored_bytes(self, weights: int, biases: int = 0) -> int:
        """Bytes of ``weights`` weights and ``biases`` biases stored in this precision."""
        return round(weights * self.weight_bytes + biases * self.bias_bytes)


PRECISIONS: Registry[Precision] = Registry("precision", "search hw list")
PRECISIONS.register(Precision("fp32", 4, 4, 4, Realisation.NONE, description="32-bit float: the exported graph"))
PRECISIONS.register(Precision("fp16", 2, 2, 2, Realisation.FP16_CAST, description="16-bit float weights and arithmetic"))
PRECISIONS.register(
    Precision("int8", 1, 4, 1, Realisation.INT8_QDQ, per_layer_support=True, description="8-bit integer (NNCF PTQ)")
)
REFERENCE = "fp32"  # the precision models are exported and trained in


def precision(name: str) -> Precision:
    """The registered precision ``name`` (a UserError naming the closest ones otherwise)."""
    return PRECISIONS.get(name)


def precision_names() -> list[str]:
    """Every registered precision, most precise first."""
    return PRECISIONS.names()


def by_precision(names: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """``names`` in registry order (most precise first); unregistered names last, as given."""
    order = precision_names()
    return sorted(names, key=lambda n: order.index(n) if n in order else len(order))
