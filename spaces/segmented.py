"""A search space where the uniform recipes are neighbours, not corners.

One global prune ratio, and per coupled group a deviation of a few grid steps from it; the layers, in execution
order, cut into a few contiguous segments that each run one precision. ``prune-uniform-25-int8`` is then the
point (global 0.25, no deviation, every segment INT8); one step away lie plans that prune one group more or keep
one segment in FP16. A mixed plan changes precision only at a segment boundary, so it pays a Convert there and not
at every layer. The flat per-layer space (``spaces.space.SearchSpace``) stays available.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spaces.plan import CompressionPlan
from spaces.space import SearchSpace

if TYPE_CHECKING:
    import optuna

GLOBAL_PRUNE = "prune:global"
DEVIATION_PREFIX = "prune_deviation:"
SEGMENT_PREFIX = "precision_segment:"
SPACES = ("flat", "segmented")


@dataclass(frozen=True)
class SegmentedSpace(SearchSpace):
    """Global prune ratio plus per-group deviations (in grid steps, at most ``max_deviation``); one precision per
    segment of ``segments`` contiguous runs of layers."""

    segments: int = 4
    max_deviation: int = 2

    @classmethod
    def of(cls, space: SearchSpace, segments: int = 4, max_deviation: int = 2) -> SegmentedSpace:
        """The segmented space over the same layers, groups, choices and recipe as the flat ``space``."""
        return cls(space.analysis, space.precisions, space.max_prune, space.prune_step, space.recipe, segments, max_deviation)

    def segment_layers(self) -> list[list[str]]:
        """The layers of each segment: execution order cut into ``segments`` runs of (nearly) equal length."""
        layers = list(self.precisions)
        count = max(1, min(self.segments, len(layers)))
        bounds = [round(i * len(layers) / count) for i in range(count + 1)]
        return [layers[bounds[i] : bounds[i + 1]] for i in range(count)]

    def segment_choices(self, layers: list[str]) -> list[str]:
        """The precisions a segment may run: every one offered to any of its layers, most precise first."""
        seen: dict[str, None] = {}
        for layer in layers:
            seen.update(dict.fromkeys(self.precisions[layer]))
        return list(seen)

    def ratio(self, global_ratio: float, deviation: int) -> float:
        """A group's prune ratio: the global one moved by ``deviation`` grid steps, kept within [0, max_prune]."""
        return min(self.max_prune, max(0.0, round(global_ratio + deviation * self.prune_step, 6)))

    def suggest(self, trial: optuna.Trial) -> CompressionPlan:
        """Ask ``trial`` for the global ratio, each group's deviation and each segment's precision."""
        global_ratio = trial.suggest_float(GLOBAL_PRUNE, 0.0, self.max_prune, step=self.prune_step)
        ratios = {
            g.root: self.ratio(
                global_ratio, trial.suggest_int(DEVIATION_PREFIX + g.root, -self.max_deviation, self.max_deviation)
            )
            for g in self.analysis.groups
        }
        precisions: dict[str, str] = {}
        for index, layers in enumerate(self.segment_layers()):
            chosen = trial.suggest_categorical(SEGMENT_PREFIX + str(index), self.segment_choices(layers))
            precisions.update({layer: self._in(layer, chosen) for layer in layers})
        return self.plan(ratios, precisions)

    def _in(self, layer: str, chosen: str) -> str:
        """``chosen`` where ``layer`` can run it, else the reference precision."""
        return chosen if chosen in self.precisions[layer] else self.reference_precision

    def params(self, plan: CompressionPlan) -> dict[str, float | str]:
        """The nearest point of this space to ``plan``: the median group ratio on the grid, each group's deviation
        from it (clipped), each segment's most common precision. Uniform recipes land exactly on a point."""
        ratios = sorted(plan.layers[g.root].prune_ratio for g in self.analysis.groups)
        median = ratios[len(ratios) // 2] if ratios else 0.0
        global_ratio = min(self.max_prune, round(median / self.prune_step) * self.prune_step)
        out: dict[str, float | str] = {GLOBAL_PRUNE: global_ratio}
        for g in self.analysis.groups:
            steps = round((plan.layers[g.root].prune_ratio - global_ratio) / self.prune_step)
            out[DEVIATION_PREFIX + g.root] = max(-self.max_deviation, min(self.max_deviation, steps))
        for index, layers in enumerate(self.segment_layers()):
            choices = self.segment_choices(layers)
            counts = Counter(plan.layers[layer].precision for layer in layers)
            out[SEGMENT_PREFIX + str(index)] = max(choices, key=lambda p: (counts[p], -choices.index(p)))
        return out

    def plan_of(self, params: dict[str, float | str]) -> CompressionPlan:
        """The plan of a point of this space (the inverse of :meth:`params` on the space's own points)."""
        global_ratio = float(params[GLOBAL_PRUNE])
        ratios = {g.root: self.ratio(global_ratio, int(params[DEVIATION_PREFIX + g.root])) for g in self.analysis.groups}
        precisions: dict[str, str] = {}
        for index, layers in enumerate(self.segment_layers()):
            precisions.update({layer: self._in(layer, str(params[SEGMENT_PREFIX + str(index)])) for layer in layers})
        return self.plan(ratios, precisions)

    def plan_key(self, params: dict[str, float | str]) -> tuple[tuple[str, float, str], ...]:
        """What the point ``params`` builds, hashable: points with one key (a deviation below a global ratio of 0
        clamps to 0) build one plan."""
        return tuple((name, lp.prune_ratio, lp.precision) for name, lp in self.plan_of(params).layers.items())

    def signature(self) -> str:
        """A short hash of every choice, the segments and the deviation range included."""
        flat = super().signature()
        data = {"flat": flat, "segments": self.segment_layers(), "max_deviation": self.max_deviation}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def represents(space: SearchSpace, plan: CompressionPlan) -> bool:
    """Whether the point ``space.params(plan)`` is ``plan`` itself (always so in the flat space)."""
    if not isinstance(space, SegmentedSpace):
        return True
    return space.plan_of(space.params(plan)).layers == plan.layers
