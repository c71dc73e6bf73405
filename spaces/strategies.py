"""Fixed compression recipes ("strategies"): one plan each, the yardsticks a search must beat.

A strategy turns a model's search space (and, for ``seed-hybrid``, the per-layer
INT8 sensitivity) into one CompressionPlan and the recipe changes that realise
it (another INT8 quantizer). ``search run`` enqueues the default ones before
searching; ``search run --strategy`` runs chosen ones alone; ``search compare``
runs them all beside a search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.precisions import PRECISIONS, REFERENCE, by_precision
from core.registry import Registry
from spaces.plan import CompressionPlan
from spaces.space import SearchSpace

INT8 = "int8"
SEED_PRUNE_RATIO = 0.25  # the seed's magnitude filter pruning: one ratio for every layer
SEED_SENSITIVE_SHARE = 0.2  # the share of layers (most INT8-sensitive first) the seed keeps in FP16


@dataclass(frozen=True)
class Strategy:
    """One fixed recipe.

    Attributes:
        name: What users type (``--strategy int8-ort``).
        description: One line for help texts and docs.
        build: Space and per-layer INT8 sensitivity (val top-1 change in points; None if not computed)
            -> the plan, or None where the unit cannot run it (``all-int8`` on a GPU without INT8).
        recipe: Changes to the study's recipe this strategy needs (``{"quantizer": "ort"}``).
        needs_sensitivity: Whether ``build`` reads the sensitivity.
    """

    name: str
    description: str
    build: Callable[[SearchSpace, Mapping[str, float] | None], CompressionPlan | None]
    recipe: dict[str, Any] = field(default_factory=dict)
    needs_sensitivity: bool = False

    def plan(self, space: SearchSpace, sensitivity: Mapping[str, float] | None = None) -> CompressionPlan | None:
        """The plan of this strategy on ``space`` with its recipe changes applied, or None where it cannot run."""
        plan = self.build(space, sensitivity)
        return None if plan is None else replace(plan, recipe=replace(plan.recipe, **self.recipe))


STRATEGIES: Registry[Strategy] = Registry("strategy", "search run --help")


def _offers(space: SearchSpace, name: str) -> bool:
    return any(name in choices for choices in space.precisions.values())


def _all_in(name: str) -> Callable[[SearchSpace, Mapping[str, float] | None], CompressionPlan | None]:
    return lambda space, _: space.uniform(0.0, name) if _offers(space, name) and name != space.reference_precision else None


def _pruned(ratio: float, name: str | None = None) -> Callable[[SearchSpace, Mapping[str, float] | None], CompressionPlan | None]:
    def build(space: SearchSpace, _: Mapping[str, float] | None) -> CompressionPlan | None:
        if ratio > space.max_prune or (name is not None and not _offers(space, name)):
            return None
        return space.uniform(ratio, name)

    return build


def seed_hybrid(space: SearchSpace, sensitivity: Mapping[str, float] | None) -> CompressionPlan | None:
    """The seed study's hand-made recipe: every group pruned by 25% (magnitude), the 20% of layers whose INT8 costs the
    most validation accuracy in the next more precise precision the layer offers (FP16 where the unit runs it), the
    rest INT8. None without a sensitivity, on a unit without INT8 or with nothing above it, or if 25% > max prune."""
    if sensitivity is None or not _offers(space, INT8) or space.max_prune < SEED_PRUNE_RATIO:
        return None
    int8_layers = [layer for layer, choices in space.precisions.items() if INT8 in choices]
    by_cost = sorted(int8_layers, key=lambda layer: (sensitivity.get(layer, 0.0), layer))  # most negative change first
    sensitive = set(by_cost[: max(1, round(SEED_SENSITIVE_SHARE * len(int8_layers)))])
    precisions = {}
    for layer, choices in space.precisions.items():
        above = [p for p in by_precision(choices) if p != INT8]
        if layer in sensitive:
            if not above:  # an INT8-only unit: the recipe cannot keep a layer out of INT8
                return None
            precisions[layer] = above[-1]  # the least precise choice above INT8: FP16 if offered, else FP32
        else:
            precisions[layer] = INT8 if INT8 in choices else space.reference_precision
    return space.plan(dict.fromkeys((g.root for g in space.analysis.groups), SEED_PRUNE_RATIO), precisions)


STRATEGIES.register(
    Strategy("uncompressed", "every layer as trained, in the unit's most precise precision", lambda space, _: space.uniform(0.0))
)
for _name in PRECISIONS.names():
    if _name != REFERENCE:
        STRATEGIES.register(
            Strategy(
                f"all-{_name}",
                f"every layer the unit runs in {_name} in {_name} (the tool's own quantizer for INT8), nothing pruned",
                _all_in(_name),
            )
        )
for _ratio in (25, 50):
    STRATEGIES.register(
        Strategy(f"prune-uniform-{_ratio}", f"every group pruned by {_ratio}% (magnitude), fine-tuned", _pruned(_ratio / 100))
    )
    STRATEGIES.register(
        Strategy(f"prune-uniform-{_ratio}-int8", f"prune-uniform-{_ratio}, then every layer in INT8", _pruned(_ratio / 100, INT8))
    )
STRATEGIES.register(
    Strategy(
        "int8-ort", "onnxruntime's static INT8 (quantize_static defaults) of every layer", _all_in(INT8), {"quantizer": "ort"}
    )
)
STRATEGIES.register(
    Strategy(
        "int8-nncf", "NNCF's post-training INT8 with its defaults, every layer", _all_in(INT8), {"quantizer": "nncf-default"}
    )
)
STRATEGIES.register(
    Strategy(
        "seed-hybrid",
        f"prune every group {SEED_PRUNE_RATIO:.0%}, fine-tune, the "
        f"{SEED_SENSITIVE_SHARE:.0%} most INT8-sensitive layers FP16, the rest INT8",
        seed_hybrid,
        needs_sensitivity=True,
    )
)


def default_strategies(space: SearchSpace) -> list[str]:
    """The strategies ``search run`` enqueues before searching (its warm start): uncompressed, every layer in the least
    precise precision the unit offers (all-INT8 on units that run it), uniform pruning by 25% and by 50%, and the
    combination of both extremes where it is a strategy (prune-uniform-50-int8): the fastest fixed recipe, which a
    search of a few dozen trials over many dimensions otherwise rarely reaches."""
    least = by_precision({p for choices in space.precisions.values() for p in choices})[-1]
    lowest = [f"all-{least}"] if least != space.reference_precision else []
    combined = [f"prune-uniform-50-{least}"] if lowest and f"prune-uniform-50-{least}" in STRATEGIES else []
    return ["uncompressed", *lowest, "prune-uniform-25", "prune-uniform-50", *combined]


def strategy_plans(
    space: SearchSpace, names: list[str], sensitivity: Mapping[str, float] | None = None
) -> dict[str, CompressionPlan]:
    """Plans of the named strategies the unit can run, in the order given."""
    plans = {}
    for name in names:
        plan = STRATEGIES.get(name).plan(space, sensitivity)
        if plan is not None:
            plans[name] = plan
    return plans
