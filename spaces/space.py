"""The search space of a model: a prune ratio per coupled group, a precision per compute layer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.precisions import PRECISIONS, by_precision, precision
from spaces.analysis import ModelAnalysis
from spaces.plan import CompressionPlan, LayerPlan, Recipe

if TYPE_CHECKING:
    import optuna

PRUNE_PREFIX = "prune:"
PRECISION_PREFIX = "precision:"


@dataclass(frozen=True)
class SearchSpace:
    """Choices per group and per layer; turns an Optuna trial into a CompressionPlan and back."""

    analysis: ModelAnalysis
    precisions: dict[str, tuple[str, ...]]
    max_prune: float = 0.75
    prune_step: float = 0.125
    recipe: Recipe = field(default_factory=Recipe)

    @classmethod
    def build(
        cls,
        analysis: ModelAnalysis,
        unit_precisions: list[str],
        quantizable: set[str],
        max_prune: float = 0.75,
        prune_step: float = 0.125,
        recipe: Recipe | None = None,
    ) -> SearchSpace:
        """Space of ``analysis`` on a unit: every registered precision the unit runs, most precise first.

        A precision with per-layer support (INT8) is offered only for the ``quantizable`` layers (those NNCF
        actually quantizes); a layer left with no choice gets every precision of the unit.
        """
        order = by_precision([p for p in unit_precisions if p in PRECISIONS])
        precisions: dict[str, tuple[str, ...]] = {}
        for layer in analysis.layers:
            choices = tuple(p for p in order if not precision(p).per_layer_support or layer in quantizable)
            precisions[layer] = choices or tuple(order)
        return cls(analysis, precisions, max_prune, prune_step, recipe or Recipe())

    @property
    def reference_precision(self) -> str:
        """The most precise precision the unit runs: what "uncompressed" means on it."""
        offered = {p for choices in self.precisions.values() for p in choices}
        return by_precision(offered)[0]

    def suggest(self, trial: optuna.Trial) -> CompressionPlan:
        """Ask ``trial`` for every choice and build the plan."""
        ratios = {
            g.root: trial.suggest_float(PRUNE_PREFIX + g.root, 0.0, self.max_prune, step=self.prune_step)
            for g in self.analysis.groups
        }
        precisions = {
            layer: trial.suggest_categorical(PRECISION_PREFIX + layer, list(choices))
            for layer, choices in self.precisions.items()
        }
        return self.plan(ratios, precisions)

    def plan(self, group_ratios: dict[str, float], precisions: dict[str, str]) -> CompressionPlan:
        """Plan from group ratios (by root) and per-layer precisions."""
        layers = {}
        for layer in self.analysis.layers:
            group = self.analysis.group_of(layer)
            ratio = group_ratios.get(group.root, 0.0) if group else 0.0
            layers[layer] = LayerPlan(prune_ratio=ratio, precision=precisions[layer])
        return CompressionPlan(layers=layers, recipe=self.recipe)

    def params(self, plan: CompressionPlan) -> dict[str, float | str]:
        """The Optuna parameters that make ``plan`` (for ``study.enqueue_trial``)."""
        out: dict[str, float | str] = {PRUNE_PREFIX + g.root: plan.layers[g.root].prune_ratio for g in self.analysis.groups}
        out.update({PRECISION_PREFIX + layer: plan.layers[layer].precision for layer in self.precisions})
        return out

    def uniform(self, ratio: float, precision: str | None = None) -> CompressionPlan:
        """Every group pruned by ``ratio``; every layer in ``precision`` where offered, else the reference."""
        ref = self.reference_precision
        precisions = {layer: precision if precision in choices else ref for layer, choices in self.precisions.items()}
        return self.plan(dict.fromkeys((g.root for g in self.analysis.groups), ratio), precisions)

    def signature(self) -> str:
        """A short hash of every choice: two studies with the same signature search the same space."""
        data = {
            "groups": [[g.root, list(g.members)] for g in self.analysis.groups],
            "precisions": {k: list(v) for k, v in self.precisions.items()},
            "max_prune": self.max_prune,
            "prune_step": self.prune_step,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
