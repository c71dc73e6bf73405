"""Multi-fidelity trials: a cheap recovery first, the full one only for plans that could reach the front.

A searched trial is first realised at the cheap fidelity: BatchNorm statistics re-estimated after pruning, then a
short fine-tune (``--cheap-steps`` optimizer steps instead of ``--finetune-steps``). It is promoted to the full
fine-tune when its validation accuracy, raised by the largest gain a promotion has shown so far (full minus
cheap), would meet the accuracy budget and be dominated by no trial on the front. Until ``warmup`` trials were
promoted every trial is, so the gain is measured before it is trusted.

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


@dataclass
class Fidelity:
    """Decides which cheap trials get the full fine-tune, learning the cheap-to-full gain as it goes."""

    cheap_steps: int
    warmup: int = PROMOTION_WARMUP
    gains: list[float] = field(default_factory=list)  # full minus cheap val_top1 (fractions) of promoted trials

    def applies(self, plan: dict[str, Any]) -> bool:
        """Whether a plan's full recovery costs more than the cheap one (steps above ``cheap_steps``)."""
        return int(plan.get("recipe", {}).get("finetune_steps", 0)) > self.cheap_steps

    def cheap_job(self, job: TrialJob) -> TrialJob:
        """``job`` at the cheap fidelity: fewer fine-tune steps, BatchNorm re-estimated, no test split."""
        recipe = dict(job.plan["recipe"])
        recipe["finetune_steps"] = self.cheap_steps
        recipe["bn_batches"] = max(int(recipe.get("bn_batches", 0)), CHEAP_BN_BATCHES)
        return replace(job, plan={**job.plan, "recipe": recipe}, test=False)

    def margin(self) -> float:
        """How much a promotion may raise a cheap accuracy (a fraction, never below 0, so that a trial left cheap is
        dominated whenever its raised point is); infinite during the warm-up."""
        return max(0.0, *self.gains) if len(self.gains) >= self.warmup else float("inf")

    def promote(self, metrics: dict[str, float], study: optuna.Study, objectives: list[str], budgets: Budgets) -> bool:
        """Whether a cheap trial's metrics, with the margin added to its accuracy, could be on the front."""
        margin = self.margin()
        if margin == float("inf"):
            return True
        raised = {**metrics, "val_top1": metrics["val_top1"] + margin}
        if any(v > 0 for v in constraint_values(raised, budgets).values()):
            return False
        values = objective_values(objectives, raised)
        return not any(dominates(t.values, values, study.directions) for t in study.best_trials)

    def learn(self, cheap: dict[str, float], full: dict[str, float]) -> None:
        """Record what the full fine-tune gained over the cheap one for a promoted trial."""
        self.gains.append(full["val_top1"] - cheap["val_top1"])
