"""The study database as tables: every study of a storage, every trial of a study, its Pareto front.

Built on ``study.trials_dataframe()`` (pandas); opening a storage here never
creates or changes anything in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.metrics import METRICS
from core.precisions import precision_names
from core.timing import stage_seconds
from search.study import StudyInfo, metric_names, pareto_front, rerun_of
from search.study.records import TrialRecord, records, state_counts, uncompressed

if TYPE_CHECKING:
    import optuna
    import pandas as pd

STATES = ("COMPLETE", "FAIL", "RUNNING", "WAITING", "PRUNED")


def studies_table(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per study: name, model, profile, objectives, trials by state, front size, created."""
    import optuna
    import pandas as pd

    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        info = StudyInfo.from_attrs(summary.user_attrs)
        present = state_counts(records(study))
        counts = {state.lower(): present.get(state, 0) for state in STATES}
        rows.append(
            {
                "study": summary.study_name,
                "model": info.model,
                "data": info.data,
                "hw": info.hw,
                "objectives": ",".join(study.metric_names or info.objectives),
                **counts,
                "front": len(pareto_front(study)) if counts["complete"] else 0,
                "created": summary.datetime_start,
            }
        )
    return pd.DataFrame(
        rows, columns=["study", "model", "data", "hw", "objectives", *[s.lower() for s in STATES], "front", "created"]
    )


def trials_table(study: optuna.Study, stages: bool = False) -> pd.DataFrame:
    """One row per trial: number, state, objectives, size, MACs, host latency, precision shares, mean prune, fidelity
    (multi-fidelity studies), duration, failure reason; with ``stages``, the seconds of each stage of its work
    (``load_s``, ``finetune_s``...)."""
    import pandas as pd

    names = metric_names(study)
    trials = records(study)
    reruns = rerun_of(study.get_trials(deepcopy=False))
    if not trials:  # a study with no trial yet: the columns, no rows
        return pd.DataFrame(columns=list(_row(TrialRecord(0, "WAITING"), names, None, stages)))
    return pd.DataFrame([_row(r, names, reruns.get(r.number), stages) for r in trials])


def _row(r: TrialRecord, names: list[str], rerun: int | None, stages: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {"trial": r.number, "state": r.state, "baseline": r.strategy}
    for i, name in enumerate(names):
        row[name] = r.values[i] if r.values else None
    reason = r.fail_reason + (f"; rerun as trial {rerun}" if rerun is not None else "")
    row.update({m.column: r.metric(m.name, m.scale) for m in METRICS if m.column and m.column not in row})
    row.update(
        {
            **{f"{p}_share": r.precision_share(p) for p in precision_names()},
            "mean_prune": r.mean_prune,
            "fidelity": r.fidelity,
            "duration_s": r.duration_s,
            "fail_reason": reason,
        }
    )
    if stages:
        row.update({f"{stage}_s": seconds for stage, seconds in stage_seconds(r.metrics).items()})
    return row


def pareto_table(study: optuna.Study, robust: bool = False) -> pd.DataFrame:
    """The feasible Pareto front with speed-up and size reduction against the uncompressed baseline; with ``robust``,
    each member's latency band (the profile's) and the members whose bands overlap it."""
    table = trials_table(study)
    front = [t.number for t in pareto_front(study)]
    table = table[table["trial"].isin(front)].copy()
    reference = uncompressed(study)
    if reference is not None and reference.metric("latency_ms"):
        by_number = {r.number: r for r in records(study)}
        latency = {n: by_number[n].metric("latency_ms") for n in front}
        size = {n: by_number[n].metric("size_bytes") for n in front}
        table["speedup"] = reference.metrics["latency_ms"] / table["trial"].map(latency)
        table["size_reduction"] = 1 - table["trial"].map(size) / reference.metrics["size_bytes"]
    table = table.set_index("trial").loc[front].reset_index()
    if robust:
        table = with_bands(table, study)
    return table


def with_bands(table: pd.DataFrame, study: optuna.Study) -> pd.DataFrame:
    """``table`` (front rows) with the latency band of each member and the members whose bands overlap it."""
    from search.analysis.bands import overlapping, unit_band
    from search.study.front import front_records

    hw = StudyInfo.of(study).hw
    band = unit_band(hw)
    if band is None:
        raise UserError(f"no latency band for {hw}: its profile has no out-of-sample check")
    members = front_records(study)
    latency = {m.number: m.metrics["latency_ms"] for m in members}
    table["band_low_ms"] = table["trial"].map(lambda n: band.around(latency[n])[0])
    table["band_high_ms"] = table["trial"].map(lambda n: band.around(latency[n])[1])
    overlaps = overlapping(members, band)
    table["overlaps"] = table["trial"].map(lambda n: " ".join(str(m) for m in overlaps[n]))
    return table


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
