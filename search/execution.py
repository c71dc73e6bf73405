"""Run trials as Ray tasks: the driver asks Optuna, Ray evaluates, the driver tells Optuna."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.study import objective_values, set_constraints
from search.trial import TrialJob, TrialOutcome, evaluate_candidate

if TYPE_CHECKING:
    import optuna

    from spaces.space import SearchSpace


def start_ray(workers: int, address: str | None) -> bool:
    """Join the cluster at ``address`` or start a local Ray with ``workers`` CPUs; True if we started it."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}}
    if address:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, runtime_env=env)
        return False
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False, runtime_env=env)
    return True


def _remote_evaluate(job: TrialJob, state: dict) -> TrialOutcome:
    return evaluate_candidate(job, state)


@dataclass
class Budgets:
    """Constraints on candidates; None means no constraint."""

    reference_top1: float
    max_accuracy_drop: float | None = None
    latency_budget_ms: float | None = None


@dataclass
class TrialLoop:
    """Keeps ``workers`` trials in flight until the study has ``target`` finished trials."""

    study: optuna.Study
    space: SearchSpace
    make_job: Callable[[dict[str, Any]], TrialJob]
    state: dict
    objectives: list[str]
    budgets: Budgets
    artifacts: Path
    workers: int

    def run(self, target: int, on_update: Callable[[], None]) -> None:
        """Run trials until ``target`` are finished (complete or failed); ``on_update`` after each one."""
        import ray

        remote = ray.remote(num_cpus=1, max_retries=0)(_remote_evaluate)
        state_ref = ray.put(self.state)
        pending: dict[Any, optuna.Trial] = {}
        try:
            while True:
                while len(pending) < self.workers and self.finished() + len(pending) < target:
                    trial = self.study.ask()
                    plan = self.space.suggest(trial)
                    trial.set_user_attr("plan", plan.to_dict())
                    pending[remote.remote(self.make_job(plan.to_dict()), state_ref)] = trial
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    self._finish(pending.pop(ref), ref)
                    on_update()
        except BaseException:
            self._abandon(pending, "interrupted: the driver stopped before this trial finished")
            raise

    def finished(self) -> int:
        """Trials that completed or failed."""
        from optuna.trial import TrialState

        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))

    def _finish(self, trial: optuna.Trial, ref: Any) -> None:
        import ray
        from optuna.trial import TrialState

        try:
            outcome: TrialOutcome = ray.get(ref)
        except ray.exceptions.RayError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            outcome = TrialOutcome(error=f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300])
        if outcome.error:
            trial.set_user_attr("fail_reason", outcome.error)
            self.study.tell(trial, state=TrialState.FAIL)
            return
        path = self.artifacts / f"{trial.number:05d}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(outcome.onnx_bytes)
        trial.set_user_attr("onnx", str(path))
        trial.set_user_attr("precisions", outcome.precisions)
        for key, value in outcome.metrics.items():
            trial.set_user_attr(key, value)
        b = self.budgets
        set_constraints(trial, outcome.metrics, b.reference_top1, b.max_accuracy_drop, b.latency_budget_ms)
        self.study.tell(trial, objective_values(self.objectives, outcome.metrics))

    def _abandon(self, pending: dict[Any, optuna.Trial], reason: str) -> None:
        import ray
        from optuna.trial import TrialState

        for ref, trial in pending.items():
            ray.cancel(ref, force=True)
            trial.set_user_attr("fail_reason", reason)
            self.study.tell(trial, state=TrialState.FAIL)
