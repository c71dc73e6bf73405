"""Multi-fidelity trials: a cheap recovery first, the full one only for plans that could reach the front.

A searched trial is first realised at the cheap fidelity: BatchNorm statistics re-estimated after pruning, then a
short fine-tune (``--cheap-steps`` optimizer steps instead of ``--finetune-steps``). It is promoted to the full
fine-tune when its validation accuracy, raised by the largest gain (full minus cheap) a promotion has shown on a
plan pruned at least as much, would meet the accuracy budget and be dominated by no trial on the front. The full
fine-tune gains more the more a plan is pruned (docs/benchmarks.md), so a gain measured on light plans says
nothing about heavier ones: a plan pruned more than every promoted one (by more than ``PRUNE_TOLERANCE`` of the
mean ratio) is promoted, and its gain measured. Until ``warmup`` trials were promoted every trial is, so the gain
is measured before it is trusted.

The final front is at full fidelity: a trial left at the cheap one is recorded with its cheap accuracy, which
is at most its raised accuracy, so whatever dominated it still does; its trial carries ``fidelity: cheap``.
Fixed recipes always run at full fidelity.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from search.study import Budgets, constraint_values, dominates, objective_values

if TYPE_CHECKING:
    import optuna

    from search.worker import TrialJob

CHEAP_BN_BATCHES = 20  # BatchNorm re-estimation of the cheap fidelity, when the recipe asks for none
PROMOTION_WARMUP = 3  # trials promoted unconditionally before the measured gain decides
PRUNE_TOLERANCE = 0.05  # a gain measured at mean prune ratio p also stands for plans pruned up to p + this


@dataclass
class Fidelity:
    """Decides which cheap trials get the full fine-tune, learning the cheap-to-full gain as it goes."""

    cheap_steps: int
    warmup: int = PROMOTION_WARMUP
    gains: list[tuple[float, float]] = field(default_factory=list)  # (mean prune, full minus cheap val_top1) promoted

    def applies(self, plan: dict[str, Any]) -> bool:
        """Whether a plan's full recovery costs more than the cheap one (steps above ``cheap_steps``)."""
        return int(plan.get("recipe", {}).get("finetune_steps", 0)) > self.cheap_steps

    def cheap_job(self, job: TrialJob) -> TrialJob:
        """``job`` at the cheap fidelity: fewer fine-tune steps, BatchNorm re-estimated, no test split."""
        recipe = dict(job.plan["recipe"])
        recipe["finetune_steps"] = self.cheap_steps
        recipe["bn_batches"] = max(int(recipe.get("bn_batches", 0)), CHEAP_BN_BATCHES)
        return replace(job, plan={**job.plan, "recipe": recipe}, test=False)

    def margin(self, prune: float) -> float:
        """How much a promotion may raise the cheap accuracy of a plan of mean prune ratio ``prune``: the largest gain
        measured on a plan pruned at least as much (a fraction, never below 0, so that a trial left cheap is dominated
        whenever its raised point is); infinite during the warm-up and beyond the most pruned plan measured plus
        ``PRUNE_TOLERANCE``."""
        if len(self.gains) < self.warmup:
            return float("inf")
        comparable = [gain for measured, gain in self.gains if measured + PRUNE_TOLERANCE >= prune]
        return max(0.0, *comparable) if comparable else float("inf")

    def promote(
        self, metrics: dict[str, float], prune: float, study: optuna.Study, objectives: list[str], budgets: Budgets
    ) -> bool:
        """Whether a cheap trial's metrics (its plan's mean prune ratio ``prune``), with the margin added to its
        accuracy, could be on the front."""
        margin = self.margin(prune)
        if margin == float("inf"):
            return True
        raised = {**metrics, "val_top1": metrics["val_top1"] + margin}
        if any(v > 0 for v in constraint_values(raised, budgets).values()):
            return False
        values = objective_values(objectives, raised)
        return not any(dominates(t.values, values, study.directions) for t in study.best_trials)

    def learn(self, prune: float, cheap: dict[str, float], full: dict[str, float]) -> None:
        """Record what the full fine-tune gained over the cheap one for a promoted trial of mean prune ratio ``prune``."""
        self.gains.append((prune, full["val_top1"] - cheap["val_top1"]))
