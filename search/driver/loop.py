"""Run trials as Ray tasks: the driver asks Optuna, Ray evaluates, the driver tells Optuna."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from search.study import (
    Budgets,
    constraint_values,
    dominates,
    fail_silent_trials,
    finished_trials,
    grace_period,
    mean_prune,
    objective_values,
    rerun_interrupted,
    set_constraints,
)
from search.study.records import (
    INTERRUPTED,
    STRATEGY,
    TEST_ERROR,
    fixed_layers,
    recipe_changes,
    store_failure,
    store_fidelity,
    store_plan,
    store_result,
    store_worker,
)
from search.worker import TrialJob, TrialOutcome, remote_evaluate, remote_test
from spaces.plan import CompressionPlan

if TYPE_CHECKING:
    import optuna

    from search.driver.fidelity import Fidelity
    from spaces.space import SearchSpace


@dataclass
class InFlight:
    """A trial the driver waits for: its job, its evaluated outcome while its test split is being scored, and when
    its current task started (``time.monotonic``). A multi-fidelity trial carries its full job while the cheap one
    runs, and its cheap metrics while the full one runs."""

    trial: optuna.Trial
    job: TrialJob
    outcome: TrialOutcome | None = None
    started: float = field(default_factory=time.monotonic)
    full_job: TrialJob | None = None
    cheap_metrics: dict[str, float] | None = None


class Heartbeats:
    """Records a heartbeat for every trial in flight every ``interval`` seconds, from a background thread.

    A thread, so that a slow step of the driver loop (a large result, a slow
    database) never makes its own trials look abandoned.
    """

    def __init__(self, storage: Any, interval: float) -> None:
        self._storage, self._interval = storage, interval
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_all, name="trial-heartbeats", daemon=True)
        self._thread.start()

    def add(self, trial_id: int) -> None:
        """Beat for ``trial_id`` now and from now on."""
        self._storage.record_heartbeat(trial_id)
        with self._lock:
            self._ids.add(trial_id)

    def remove(self, trial_id: int) -> None:
        """Stop beating for ``trial_id``."""
        with self._lock:
            self._ids.discard(trial_id)

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def _beat_all(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                ids = list(self._ids)
            for trial_id in ids:
                with contextlib.suppress(Exception):  # a database hiccup: the next beat tries again
                    self._storage.record_heartbeat(trial_id)


@dataclass
class TrialLoop:
    """Keeps ``workers`` trials in flight until the study has ``target`` finished trials.

    The test split is held out from the search: a trial is scored on it only if it could be on the final
    front (feasible and dominated by no finished trial when its validation result arrives: a point dominated
    then stays dominated), if it is a fixed recipe, or for every trial with ``test_every_trial``. That
    scoring is a second task on a worker; the trial is told to Optuna once both are done.

    Several drivers (machines) may run loops on one study: each asks Optuna for
    its own trials and counts the others' running ones towards the target. Every
    trial in flight carries a heartbeat; trials of a driver that was killed are
    failed once their heartbeat is stale and queued again with the same parameters
    (:func:`search.study.rerun_interrupted`); interrupted and rerun trials do not
    count towards the target.
    """

    study: optuna.Study
    space: SearchSpace
    make_job: Callable[[dict[str, Any], bool], TrialJob]
    state: dict
    objectives: list[str]
    budgets: Budgets
    artifacts: Path
    workers: int
    heartbeat_s: int
    test_every_trial: bool = False
    timeout_s: float | None = None  # a task running longer is cancelled and its trial failed with that reason
    evaluate: Callable[[TrialJob, dict], TrialOutcome] = remote_evaluate  # the work of one trial, run as a Ray task
    task_memory_mb: float | None = None  # memory Ray reserves per task: no more tasks run at once than fit
    gpus_per_task: float = 0.0  # GPUs Ray gives each task (--device cuda: one); no more tasks run at once than fit
    fidelity: Fidelity | None = None  # searched trials run cheap first, promoted to the full fine-tune when promising

    def run(self, target: int, on_update: Callable[[], None]) -> None:
        """Run trials until ``target`` are finished (complete or failed); ``on_update`` after each one."""
        import ray
        from optuna.storages import fail_stale_trials

        options: dict[str, Any] = {"num_cpus": 1, "max_retries": 0, "num_gpus": self.gpus_per_task}
        if self.task_memory_mb:  # never more than the cluster has: a task asking for more would wait forever
            options["memory"] = int(min(self.task_memory_mb * 2**20, ray.cluster_resources().get("memory", float("inf"))))
        # no more tasks in flight than the cluster runs at once: a task's time limit counts from its submission
        slots = self._slots(options.get("memory"))
        self._remote_evaluate = ray.remote(**options)(self.evaluate)
        self._remote_test = ray.remote(**options)(remote_test)
        self._state_ref = ray.put(self.state)
        pending: dict[Any, InFlight] = {}
        beats = Heartbeats(self.study._storage, self.heartbeat_s)  # type: ignore[attr-defined]
        try:
            while True:
                fail_stale_trials(self.study)
                fail_silent_trials(self.study, grace_period(self.heartbeat_s))
                while len(pending) < slots and self.finished() + self._running_elsewhere(pending) + len(pending) < target:
                    ref, flight = self._start(beats)
                    pending[ref] = flight
                if not pending:
                    if self.finished() >= target:
                        return
                    time.sleep(self.heartbeat_s)  # other drivers' trials: running, or stale until their grace period ends
                    continue
                done, _ = ray.wait(list(pending), num_returns=1, timeout=self._wait_s(pending))
                for ref in done:
                    self._collect(pending, ref, beats, on_update)
                for ref in self._overdue(pending):
                    self._time_out(pending, ref, beats, on_update)
        except BaseException:
            for ref, flight in pending.items():
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
                with contextlib.suppress(Exception):  # the database may be what failed: the next run's stale check reruns it
                    self._fail_and_rerun(flight.trial, INTERRUPTED)
            raise
        finally:
            beats.stop()

    def _start(self, beats: Heartbeats) -> tuple[Any, InFlight]:
        """Ask Optuna for a trial, record its plan and start its Ray task (the task and the trial in flight)."""
        trial = self.study.ask()
        try:
            beats.add(trial._trial_id)
            plan = self.space.suggest(trial)  # also for a fixed plan: the sampler sees the point nearest to it
            fixed = fixed_layers(trial)
            if fixed is not None:
                plan = CompressionPlan.from_dict({"layers": fixed, "recipe": asdict(plan.recipe)})
            plan = replace(plan, recipe=replace(plan.recipe, **recipe_changes(trial)))
            store_plan(trial, plan.to_dict(), f"{socket.gethostname()} pid {os.getpid()}")
            job = self.make_job(plan.to_dict(), self.test_every_trial or bool(trial.user_attrs.get(STRATEGY)))
            if self.fidelity and not trial.user_attrs.get(STRATEGY) and self.fidelity.applies(job.plan):
                cheap = self.fidelity.cheap_job(job)
                return self._remote_evaluate.remote(cheap, self._state_ref), InFlight(trial, cheap, full_job=job)
            return self._remote_evaluate.remote(job, self._state_ref), InFlight(trial, job)
        except BaseException:
            self._fail_and_rerun(trial, INTERRUPTED)
            raise

    def _collect(self, pending: dict[Any, InFlight], ref: Any, beats: Heartbeats, on_update: Callable[[], None]) -> None:
        """Take a finished task out of ``pending``: record its trial, or put its test-split task in its place."""
        flight = pending.pop(ref)
        try:
            follow = self._finish(flight, ref)
        except BaseException:
            beats.remove(flight.trial._trial_id)
            self._fail_and_rerun(flight.trial, INTERRUPTED)
            raise
        if follow is not None:  # its test split is being scored: still in flight
            pending[follow[0]] = follow[1]
            return
        beats.remove(flight.trial._trial_id)
        on_update()

    def _slots(self, task_memory: float | None) -> int:
        """Tasks to keep in flight: ``workers``, or fewer if the cluster has fewer CPUs, GPUs or memory for them."""
        import ray

        resources = ray.cluster_resources()
        slots = min(self.workers, int(resources.get("CPU", self.workers)))
        if self.gpus_per_task:
            gpus = int(resources.get("GPU", 0) // self.gpus_per_task)
            if not gpus:
                raise UserError("--device cuda: the Ray cluster has no GPU: use --device cpu, or join a cluster with GPUs")
            slots = min(slots, gpus)
        if task_memory:
            slots = min(slots, int(resources.get("memory", task_memory) // task_memory))
        return max(1, slots)

    def _wait_s(self, pending: dict[Any, InFlight]) -> float:
        """How long to wait for a task: a heartbeat, or less when a task's time limit comes first."""
        if self.timeout_s is None:
            return self.heartbeat_s
        first = min(flight.started for flight in pending.values()) + self.timeout_s
        return max(0.0, min(self.heartbeat_s, first - time.monotonic()))

    def _overdue(self, pending: dict[Any, InFlight]) -> list[Any]:
        """The tasks that have run longer than the time limit."""
        if self.timeout_s is None:
            return []
        now = time.monotonic()
        return [ref for ref, flight in pending.items() if now - flight.started > self.timeout_s]

    def _time_out(self, pending: dict[Any, InFlight], ref: Any, beats: Heartbeats, on_update: Callable[[], None]) -> None:
        """Cancel an overdue task (its worker process is killed) and fail its trial with the reason."""
        import ray
        from optuna.exceptions import UpdateFinishedTrialError

        flight = pending.pop(ref)
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)
        beats.remove(flight.trial._trial_id)
        error = f"timed out: {{}} ran longer than {self.timeout_s:.0f} s (--trial-timeout)"
        if flight.outcome is not None:  # the candidate stands; only its test split is not scored
            outcome = flight.outcome.with_test(TrialOutcome(error=error.format("scoring its test split")))
        else:
            outcome = TrialOutcome(error=error.format("its candidate"))
        if self._running(flight.trial):
            with contextlib.suppress(UpdateFinishedTrialError):
                self._record(flight.trial, outcome)
        on_update()

    def finished(self) -> int:
        """Trials that completed or failed, not counting interrupted ones that were queued to run again."""
        return finished_trials(self.study)

    def _running_elsewhere(self, pending: dict[Any, InFlight]) -> int:
        from optuna.trial import TrialState

        mine = {flight.trial.number for flight in pending.values()}
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return sum(t.number not in mine for t in running)

    def _finish(self, flight: InFlight, ref: Any) -> tuple[Any, InFlight] | None:
        """Record a trial's outcome, or start scoring its test split first (returned: the task and the trial in
        flight); nothing if a stale check failed the trial meanwhile (then it was queued again)."""
        from optuna.exceptions import UpdateFinishedTrialError

        if not self._running(flight.trial):
            return None
        outcome = self._result(ref)
        if flight.outcome is not None:
            outcome = flight.outcome.with_test(outcome)
        elif flight.full_job is not None:  # its cheap fidelity: promoted, or recorded as it is
            promoted = self._promote(flight, outcome)
            if promoted is not None:
                return promoted
        else:
            if flight.cheap_metrics is not None and self.fidelity and not outcome.error:
                self.fidelity.learn(mean_prune(flight.job.plan), flight.cheap_metrics, outcome.metrics)
                store_fidelity(flight.trial, flight.job.plan, flight.cheap_metrics["val_top1"])
            if self._may_join_front(outcome):
                test = self._remote_test.remote(flight.job, outcome.onnx_bytes)
                return test, replace(flight, outcome=outcome, started=time.monotonic())
        with contextlib.suppress(UpdateFinishedTrialError):
            self._record(flight.trial, outcome)
        return None

    def _promote(self, flight: InFlight, cheap: TrialOutcome) -> tuple[Any, InFlight] | None:
        """After a trial's cheap fidelity: start its full one if it could reach the front (returned: the task and
        the trial in flight), else record it as left at the cheap fidelity."""
        assert self.fidelity is not None and flight.full_job is not None
        if cheap.error:
            return None
        if self.fidelity.promote(cheap.metrics, mean_prune(flight.job.plan), self.study, self.objectives, self.budgets):
            task = self._remote_evaluate.remote(flight.full_job, self._state_ref)
            return task, InFlight(flight.trial, flight.full_job, started=time.monotonic(), cheap_metrics=cheap.metrics)
        store_fidelity(flight.trial, flight.job.plan, None)
        return None

    @staticmethod
    def _result(ref: Any) -> TrialOutcome:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            return TrialOutcome(error=f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300])

    def _may_join_front(self, outcome: TrialOutcome) -> bool:
        """Whether an evaluated candidate without test metrics could be on the final front: it met every budget and
        no finished trial dominates it."""
        if outcome.error or "test_top1" in outcome.metrics:
            return False
        if any(v > 0 for v in constraint_values(outcome.metrics, self.budgets).values()):
            return False
        values = objective_values(self.objectives, outcome.metrics)
        directions = self.study.directions
        return not any(dominates(t.values, values, directions) for t in self.study.best_trials)

    def _record(self, trial: optuna.Trial, outcome: TrialOutcome) -> None:
        from optuna.trial import TrialState

        if outcome.worker:
            store_worker(trial, outcome.worker)
        if outcome.error:
            store_failure(trial, outcome.error)
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            return
        path = (self.artifacts / f"{trial.number:05d}.onnx").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(outcome.onnx_bytes)
        store_result(trial, outcome.metrics, outcome.precisions, str(path))
        if outcome.test_error:
            trial.set_user_attr(TEST_ERROR, outcome.test_error)
        set_constraints(trial, outcome.metrics, self.budgets)
        self.study.tell(trial, objective_values(self.objectives, outcome.metrics), skip_if_finished=True)

    def _running(self, trial: optuna.Trial) -> bool:
        from optuna.trial import TrialState

        return self.study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING  # type: ignore[attr-defined]

    def _fail_and_rerun(self, trial: optuna.Trial, reason: str) -> None:
        """Fail a trial this driver stopped with ``reason`` and queue it to run again (unless it is finished already)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            if not self._running(trial):
                return
            store_failure(trial, reason)
            rerun_interrupted(self.study, self.study.tell(trial, state=TrialState.FAIL))
        except (UpdateFinishedTrialError, ValueError):  # ValueError: tell() of a trial finished meanwhile
            pass  # another driver's stale check failed it in between, and queued it again
