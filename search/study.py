"""The study database: storage URLs, creating or resuming a study, objectives, constraints, the front."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.metrics import OBJECTIVES, QUALITY, objective
from search.records import BASELINE, CARRIED

if TYPE_CHECKING:
    import optuna


def parse_objectives(text: str) -> list[str]:
    """``accuracy,latency[,energy][,size]`` -> list of registered objectives; accuracy must come first."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"--objectives is empty: use a comma list of {', '.join(OBJECTIVES.names())}")
    for name in names:
        objective(name)  # an unknown name is one line naming the closest
    if names[0] != QUALITY or len(set(names)) != len(names) or len(names) < 2:
        raise UserError(
            f"--objectives must start with {QUALITY} and name at least one cost, each once (e.g. accuracy,latency,energy)"
        )
    return names


def objective_values(objectives: list[str], metrics: dict[str, float]) -> list[float]:
    """The values told to Optuna for a trial's metrics."""
    return [objective(name).value(metrics) for name in objectives]


def default_storage(run_dir: Path) -> str:
    """SQLite file in the run folder."""
    return f"sqlite:///{(run_dir / 'studies.db').resolve()}"


def redact(url: str) -> str:
    """``url`` with any password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (a URL that does not parse is shown as given)
        return url


def check_storage(url: str) -> None:
    """Fail with one line if ``url`` cannot be an Optuna storage, without creating anything."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    hint = "use sqlite:///PATH.db or postgresql://USER:PASSWORD@HOST/DB"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"storage URL '{url}' is malformed: {hint}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise UserError(f"storage URL '{url}' names no file: a study must outlive the run; {hint}")
        if not Path(database).parent.is_dir():
            raise UserError(f"storage URL '{url}': folder '{Path(database).parent}' does not exist: create it or {hint}")
        return
    try:
        engine = create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 (drivers raise many types)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot open storage '{redact(url)}' ({first[:160]}): check the URL and that the server is running"
        ) from None


def quiet_optuna() -> None:
    """Keep Optuna's per-trial log lines and experimental-API warnings off the terminal."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the trial loop records heartbeats itself (ask/tell), see search.execution
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


MAX_RERUNS = 2  # a candidate that took its driver down three times is left failed


def rerun_interrupted(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue a trial whose driver stopped (heartbeat lost or interrupted) to run again with the same parameters.

    Optuna's RetryHeartbeatStaleTrialCallback, carrying only ``search.records.CARRIED``;
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
    return sum(bool(t.user_attrs.get(BASELINE)) for t in study.get_trials(deepcopy=False, states=states))


def rerun_of(trials: list[optuna.trial.FrozenTrial]) -> dict[int, int]:
    """Interrupted trial number -> the number of the trial that reran it."""
    return {t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")}


def open_storage(url: str, heartbeat_s: int | None = None, create: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage for ``url`` (checked first with :func:`check_storage`).

    With ``create`` False, Optuna's tables are not created (the caller checked they exist).

    With ``heartbeat_s``, running trials carry a heartbeat; a trial whose
    heartbeat is older than three intervals (its driver was killed) is failed
    and queued again by :func:`rerun_interrupted`.
    """
    import optuna

    quiet_optuna()
    check_storage(url)
    heartbeats: dict[str, Any] = {}
    if heartbeat_s is not None:
        heartbeats = dict(
            heartbeat_interval=heartbeat_s,
            grace_period=grace_period(heartbeat_s),
            heartbeat_stale_trial_callback=rerun_interrupted,
        )
    return optuna.storages.RDBStorage(url, skip_table_creation=not create, **heartbeats)


def grace_period(heartbeat_s: int) -> int:
    """Seconds without a heartbeat after which a running trial counts as abandoned."""
    return 3 * heartbeat_s


def find_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study | None:
    """The study called ``name`` in ``storage``, if it exists."""
    import optuna

    if name not in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def check_same_study(study: optuna.Study, identity: dict[str, Any]) -> None:
    """Refuse to resume ``study`` with a different model, data, profile, objectives or space."""
    attrs = study.user_attrs
    for key, value in identity.items():
        if key in attrs and attrs[key] != value:
            raise UserError(
                f"study '{study.study_name}' was created with {key}={attrs[key]!r}, this run has {value!r}: "
                f"use another --study-name or the same settings"
            )


@dataclass
class StudySetup:
    """What a new study records about itself (study user attributes)."""

    identity: dict[str, Any]
    details: dict[str, Any]


def create_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    objectives: list[str],
    sampler: optuna.samplers.BaseSampler,
    setup: StudySetup,
) -> optuna.Study:
    """Create the study with directions, metric names and its identity stored as user attributes."""
    import optuna

    study = optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=sampler,
        directions=[objective(o).direction for o in objectives],
    )
    study.set_metric_names([objective(o).label for o in objectives])
    for key, value in {**setup.identity, **setup.details}.items():
        study.set_user_attr(key, value)
    return study


@dataclass
class Budgets:
    """Constraints on candidates; None means no constraint."""

    reference_top1: float
    max_accuracy_drop: float | None = None
    latency_budget_ms: float | None = None
    memory_budget_kb: float | None = None


def constraint_values(metrics: dict[str, float], budgets: Budgets) -> dict[str, float]:
    """Budgets as constraint values (met when <= 0): accuracy drop in points, predicted latency in ms, memory
    (weights and peak activations) in KB."""
    out: dict[str, float] = {}
    if budgets.max_accuracy_drop is not None:
        out["accuracy_drop"] = 100 * (budgets.reference_top1 - metrics["val_top1"]) - budgets.max_accuracy_drop
    if budgets.latency_budget_ms is not None:
        out["latency_ms"] = metrics["latency_ms"] - budgets.latency_budget_ms
    if budgets.memory_budget_kb is not None:
        out["memory_kb"] = metrics["memory_bytes"] / 1024 - budgets.memory_budget_kb
    return out


def set_constraints(trial: optuna.Trial, metrics: dict[str, float], budgets: Budgets) -> None:
    """Budgets as Optuna constraints (feasible when <= 0), see :func:`constraint_values`."""
    for name, value in constraint_values(metrics, budgets).items():
        trial.set_constraint(name, value)


def dominates(a: list[float], b: list[float], directions: list[optuna.study.StudyDirection]) -> bool:
    """Whether objective values ``a`` are no worse than ``b`` in every objective and better in one."""
    from optuna.study import StudyDirection

    signs = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in directions]
    gains = [s * (x - y) for s, x, y in zip(signs, a, b, strict=True)]
    return all(g >= 0 for g in gains) and any(g > 0 for g in gains)


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``objective_N`` where none were set)."""
    return study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]


def non_dominated(points: list[list[float]], directions: list[optuna.study.StudyDirection]) -> list[int]:
    """Indices of the ``points`` (objective values) no other point dominates."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p, directions) for q in points)]


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Feasible Pareto-optimal trials, in order of decreasing accuracy."""
    return sorted(study.best_trials, key=lambda t: (-t.values[0], t.number))
