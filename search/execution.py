"""Run trials as Ray tasks: the driver asks Optuna, Ray evaluates, the driver tells Optuna."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.study import objective_values, rerun_interrupted, rerun_of, set_constraints
from search.trial import TrialJob, TrialOutcome, evaluate_candidate

if TYPE_CHECKING:
    import optuna

    from spaces.space import SearchSpace

INTERRUPTED = "interrupted: the driver stopped before this trial finished"


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
    ray.init(
        address="local",
        num_cpus=workers,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        runtime_env=env,
    )
    return True


def worker_label() -> str:
    """Where a task runs: host, Ray node and process."""
    import socket

    import ray

    return f"{socket.gethostname()} node {ray.get_runtime_context().get_node_id()[:12]} pid {os.getpid()}"


def _remote_evaluate(job: TrialJob, state: dict) -> TrialOutcome:
    outcome = evaluate_candidate(job, state)
    outcome.worker = worker_label()
    return outcome


@dataclass
class Budgets:
    """Constraints on candidates; None means no constraint."""

    reference_top1: float
    max_accuracy_drop: float | None = None
    latency_budget_ms: float | None = None


@dataclass
class TrialLoop:
    """Keeps ``workers`` trials in flight until the study has ``target`` finished trials.

    Several drivers (machines) may run loops on one study: each asks Optuna for
    its own trials and counts the others' running ones towards the target. Every
    trial in flight carries a heartbeat; trials of a driver that was killed are
    failed once their heartbeat is stale and queued again with the same parameters
    (:func:`search.study.rerun_interrupted`); interrupted and rerun trials do not
    count towards the target.
    """

    study: optuna.Study
    space: SearchSpace
    make_job: Callable[[dict[str, Any]], TrialJob]
    state: dict
    objectives: list[str]
    budgets: Budgets
    artifacts: Path
    workers: int
    heartbeat_s: int

    def run(self, target: int, on_update: Callable[[], None]) -> None:
        """Run trials until ``target`` are finished (complete or failed); ``on_update`` after each one."""
        import ray
        from optuna.storages import fail_stale_trials

        remote = ray.remote(num_cpus=1, max_retries=0)(_remote_evaluate)
        state_ref = ray.put(self.state)
        pending: dict[Any, optuna.Trial] = {}
        driver = f"{socket.gethostname()} pid {os.getpid()}"
        try:
            while True:
                fail_stale_trials(self.study)
                while len(pending) < self.workers and self.finished() + self._running_elsewhere(pending) + len(pending) < target:
                    trial = self.study.ask()
                    try:
                        self._beat(trial)
                        plan = self.space.suggest(trial)
                        trial.set_user_attr("plan", plan.to_dict())
                        trial.set_user_attr("driver", driver)
                        pending[remote.remote(self.make_job(plan.to_dict()), state_ref)] = trial
                    except BaseException:
                        self._fail_and_rerun(trial, INTERRUPTED)
                        raise
                if not pending:
                    if self.finished() >= target:
                        return
                    time.sleep(self.heartbeat_s)  # other drivers' trials: running, or stale until their grace period ends
                    continue
                done, _ = ray.wait(list(pending), num_returns=1, timeout=self.heartbeat_s)
                for trial in pending.values():
                    self._beat(trial)
                for ref in done:
                    self._finish(pending[ref], ref)
                    del pending[ref]
                    on_update()
        except BaseException:
            for ref, trial in pending.items():
                ray.cancel(ref, force=True)
                self._fail_and_rerun(trial, INTERRUPTED)
            raise

    def finished(self) -> int:
        """Trials that completed or failed, not counting interrupted ones that were queued to run again."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        rerun = rerun_of(trials)
        return sum(t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.number not in rerun for t in trials)

    def _running_elsewhere(self, pending: dict[Any, optuna.Trial]) -> int:
        from optuna.trial import TrialState

        mine = {trial.number for trial in pending.values()}
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return sum(t.number not in mine for t in running)

    def _beat(self, trial: optuna.Trial) -> None:
        self.study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]

    def _finish(self, trial: optuna.Trial, ref: Any) -> None:
        import ray
        from optuna.trial import TrialState

        try:
            outcome: TrialOutcome = ray.get(ref)
        except ray.exceptions.RayError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            outcome = TrialOutcome(error=f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300])
        if outcome.worker:
            trial.set_user_attr("worker", outcome.worker)
        if outcome.error:
            trial.set_user_attr("fail_reason", outcome.error)
            self.study.tell(trial, state=TrialState.FAIL)
            return
        path = (self.artifacts / f"{trial.number:05d}.onnx").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(outcome.onnx_bytes)
        trial.set_user_attr("onnx", str(path))
        trial.set_user_attr("precisions", outcome.precisions)
        for key, value in outcome.metrics.items():
            trial.set_user_attr(key, value)
        b = self.budgets
        set_constraints(trial, outcome.metrics, b.reference_top1, b.max_accuracy_drop, b.latency_budget_ms)
        self.study.tell(trial, objective_values(self.objectives, outcome.metrics))

    def _fail_and_rerun(self, trial: optuna.Trial, reason: str) -> None:
        """Fail a trial this driver stopped with ``reason`` and queue it to run again (unless it was told already)."""
        from optuna.trial import TrialState

        if self.study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:  # type: ignore[attr-defined]
            return
        trial.set_user_attr("fail_reason", reason)
        rerun_interrupted(self.study, self.study.tell(trial, state=TrialState.FAIL))
