"""Trials whose driver stopped: found by heartbeat, failed, and queued to run again; what counts as finished."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.study.records import CARRIED, STRATEGY

if TYPE_CHECKING:
    import optuna


MAX_RERUNS = 2  # a candidate that took its driver down three times is left failed


def rerun_interrupted(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue a trial whose driver stopped (heartbeat lost or interrupted) to run again with the same parameters.

    Optuna's RetryHeartbeatStaleTrialCallback, carrying only ``search.study.records.CARRIED``;
    the rerun records the original's number (system attribute ``failed_trial``).
    """
    import copy

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    clean = copy.deepcopy(trial)
    clean.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in CARRIED}
    RetryHeartbeatStaleTrialCallback(max_retry=MAX_RERUNS)(study, clean)


def fail_silent_trials(study: optuna.Study, grace_s: float) -> None:
    """Fail and queue again the RUNNING trials that never got a heartbeat and started more than ``grace_s`` ago.

    Their driver died between creating the trial and its first heartbeat;
    Optuna's stale check (``fail_stale_trials``) only looks at trials with one.
    """
    from datetime import datetime, timedelta

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    storage = study._storage
    database: Any = getattr(storage, "_backend", storage)  # the RDBStorage under Optuna's in-process cache
    old = datetime.now() - timedelta(seconds=grace_s)
    running = {
        t._trial_id
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.datetime_start and t.datetime_start < old
    }
    if not running:
        return
    session = database.scoped_session()
    try:
        beating = {
            row.trial_id
            for row in session.query(models.TrialHeartbeatModel.trial_id).filter(
                models.TrialHeartbeatModel.trial_id.in_(list(running))
            )
        }
    finally:
        session.close()
    for trial_id in running - beating:
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                rerun_interrupted(study, storage.get_trial(trial_id))
        except UpdateFinishedTrialError:
            pass  # another driver got there first


def finished_trials(study: optuna.Study) -> int:
    """Trials that completed or failed, not counting interrupted ones that were queued to run again."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    rerun = rerun_of(trials)
    return sum(t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.number not in rerun for t in trials)


def queued_recipes(study: optuna.Study) -> int:
    """Fixed-recipe trials still waiting or running."""
    from optuna.trial import TrialState

    states = (TrialState.WAITING, TrialState.RUNNING)
    return sum(bool(t.user_attrs.get(STRATEGY)) for t in study.get_trials(deepcopy=False, states=states))


def rerun_of(trials: list[optuna.trial.FrozenTrial]) -> dict[int, int]:
    """Interrupted trial number -> the number of the trial that reran it."""
    return {t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")}


def grace_period(heartbeat_s: int) -> int:
    """Seconds without a heartbeat after which a running trial counts as abandoned."""
    return 3 * heartbeat_s
