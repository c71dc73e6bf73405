"""The study database as tables: every study of a storage, every trial of a study, its Pareto front.

Built on ``study.trials_dataframe()`` (pandas); opening a storage here never
creates or changes anything in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import UserError
from search.report import layer_precisions, mean_prune, metric_names, state_counts, uncompressed_trial
from search.study import check_storage, find_study, open_storage, pareto_front, redact, rerun_of

if TYPE_CHECKING:
    import optuna
    import pandas as pd

STATES = ("COMPLETE", "FAIL", "RUNNING", "WAITING", "PRUNED")
PRECISIONS = ("fp32", "fp16", "int8")


def open_existing_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at ``url``, opened without creating anything: it must already hold an Optuna study database."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    check_storage(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise UserError(f"no study database at '{url}': run `search run` first or pass --storage URL of an existing one")
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not {"studies", "trials", "version_info"} <= tables:
        raise UserError(f"'{redact(url)}' holds no Optuna study database: pass the --storage URL that `search run` used")
    return open_storage(url, create=False)


def load_existing_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """The study ``name``; a one-line error listing the storage's studies if it is not there."""
    import optuna

    study = find_study(storage, name)
    if study is None:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise UserError(f"no study '{name}' in this storage; its studies: {', '.join(names) or 'none'} (see `search studies`)")
    return study


def studies_table(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per study: name, model, profile, objectives, trials by state, front size, created."""
    import optuna
    import pandas as pd

    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        attrs = summary.user_attrs
        present = state_counts(trials)
        counts = {state.lower(): present.get(state, 0) for state in STATES}
        rows.append(
            {
                "study": summary.study_name,
                "model": attrs.get("model", ""),
                "data": attrs.get("data", ""),
                "hw": attrs.get("hw", ""),
                "objectives": ",".join(study.metric_names or attrs.get("objectives", [])),
                **counts,
                "front": len(pareto_front(study)) if counts["complete"] else 0,
                "created": summary.datetime_start,
            }
        )
    return pd.DataFrame(
        rows, columns=["study", "model", "data", "hw", "objectives", *[s.lower() for s in STATES], "front", "created"]
    )


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, objectives, size, MACs, host latency, precision shares, mean prune, duration,
    failure reason."""
    import pandas as pd

    frame = study.trials_dataframe(attrs=("number", "state", "values", "duration", "user_attrs"))
    names = metric_names(study)
    rows = []
    trials = study.get_trials(deepcopy=False)
    reruns = rerun_of(trials)
    for trial, record in zip(trials, frame.to_dict("records"), strict=True):
        a = trial.user_attrs
        precisions = list(layer_precisions(a).values())
        row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name, "baseline": a.get("baseline", "")}
        for i, name in enumerate(names):
            row[name] = trial.values[i] if trial.values else None
        row.update(
            {
                "test_top1_pct": 100 * a["test_top1"] if "test_top1" in a else None,
                "size_kb": a["size_bytes"] / 1024 if "size_bytes" in a else None,
                "macs_m": a["macs"] / 1e6 if "macs" in a else None,
                "energy_mj": a.get("energy_mj"),
                "host_ms": a.get("host_latency_ms"),
                **{f"{p}_share": (precisions.count(p) / len(precisions)) if precisions else None for p in PRECISIONS},
                "mean_prune": mean_prune(a.get("plan", {})),
                "duration_s": record["duration"].total_seconds() if pd.notna(record.get("duration")) else None,
                "fail_reason": fail_reason(trial, reruns.get(trial.number)),
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def fail_reason(trial: optuna.trial.FrozenTrial, rerun: int | None) -> str:
    """Why a trial failed; a trial failed by the heartbeat check has no reason of its own, its driver stopped."""
    from optuna.trial import TrialState

    reason = trial.user_attrs.get("fail_reason", "")
    if trial.state == TrialState.FAIL and not reason:
        reason = "interrupted: its driver stopped (heartbeat lost)"
    return reason + (f"; rerun as trial {rerun}" if rerun is not None else "")


def pareto_table(study: optuna.Study) -> pd.DataFrame:
    """The feasible Pareto front with speed-up and size reduction against the uncompressed baseline."""
    table = trials_table(study)
    front = [t.number for t in pareto_front(study)]
    table = table[table["trial"].isin(front)].copy()
    reference = uncompressed_trial(study)
    if reference is not None and "latency_ms" in reference.user_attrs:
        table["speedup"] = reference.user_attrs["latency_ms"] / table["trial"].map(_attr(study, "latency_ms"))
        table["size_reduction"] = 1 - table["trial"].map(_attr(study, "size_bytes")) / reference.user_attrs["size_bytes"]
    return table.set_index("trial").loc[front].reset_index()


def _attr(study: optuna.Study, key: str) -> dict[int, Any]:
    return {t.number: t.user_attrs.get(key) for t in study.get_trials(deepcopy=False)}


def select(table: pd.DataFrame, state: str | None, sort: str | None, descending: bool) -> pd.DataFrame:
    """Rows of one state (if given), sorted by a column (if given)."""
    if state:
        if state.upper() not in STATES:
            raise UserError(f"unknown state '{state}': use one of {', '.join(s.lower() for s in STATES)}")
        table = table[table["state"] == state.upper()]
    if sort:
        if sort not in table.columns:
            raise UserError(f"cannot sort by '{sort}': columns are {', '.join(table.columns)}")
        table = table.sort_values(sort, ascending=not descending, na_position="last")
    return table
