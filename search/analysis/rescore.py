"""`search rescore`: re-price a finished study's candidates on another device profile, without re-training.

A plan's accuracy does not depend on the device; its latency and energy do. Each completed trial's stored
ONNX graph (the artifact that ships) is estimated again on the target profile's unit and the results go
into a new study of their own (same parameters, accuracy, size and host latency; the target's latency and
energy), so Optuna computes that device's front. A trial whose graph uses a precision the target unit
lacks, or whose graph is not on this machine, is kept as a failed trial with the reason, not dropped.
The search scored the test split only for trials that could be on its own front: members of the new
front without a test score are scored here, on the study's data.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.metrics import objective
from search.study import StudyInfo
from search.study.records import FAIL_REASON, ONNX, RESCORED_FROM, TrialRecord

if TYPE_CHECKING:
    import optuna

    from hw_profiles.schema import Profile, Unit

# A latency budget is in the source device's milliseconds: it does not carry over to another device.
DEVICE_CONSTRAINTS = ("latency_ms",)


@dataclass
class Rescored:
    """The outcome: the new study, how many trials were re-priced, which could not be and why, the seconds taken."""

    study: optuna.Study
    rescored: int = 0
    cannot_run: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    untested: str = ""  # why front members were left without a test score (their data is not here), if they were


def rescored_name(source: str, hw: str) -> str:
    """Default name of the study ``source`` rescored onto ``hw`` (``NAME:UNIT``)."""
    return f"{source}@{hw.replace(':', '-')}"


def unrunnable(record: TrialRecord, unit: Unit, label: str) -> str | None:
    """Why ``record``'s graph cannot run on ``unit`` (a precision it lacks; the graph missing), or None."""
    if not Path(record.onnx).is_file():
        return f"graph '{record.onnx}' is not on this machine: rescore where the trial ran"
    used = sorted(set(record.layer_precisions.values()))
    lacking = [p for p in used if p not in unit.precisions]
    if lacking:
        count = sum(1 for p in record.layer_precisions.values() if p in lacking)
        runs = ", ".join(unit.precisions)
        return f"cannot run on {label}: {count} layers in {', '.join(lacking)}, which it lacks (it runs {runs})"
    return None


def repriced(record: TrialRecord, profile: Profile, unit_name: str) -> dict[str, Any]:
    """``record``'s metrics with latency and energy predicted on ``profile``'s unit from its stored graph."""
    import onnx

    from evaluators.estimate import estimate_model

    estimate = estimate_model(onnx.load(record.onnx), profile, unit_name)
    return {"latency_ms": estimate.latency_ms, "energy_mj": estimate.energy_mj}


@dataclass
class Repriced:
    """One source trial on the target unit: its attributes, objective values (None: failed) and constraints."""

    trial: optuna.trial.FrozenTrial
    attrs: dict[str, Any]
    values: list[float] | None
    constraints: dict[str, float]

    def frozen(self) -> optuna.trial.FrozenTrial:
        """The trial of the new study."""
        import optuna
        from optuna.trial import TrialState

        return optuna.trial.create_trial(
            state=TrialState.COMPLETE if self.values is not None else TrialState.FAIL,
            values=self.values,
            params=self.trial.params,
            distributions=self.trial.distributions,
            user_attrs=self.attrs,
            constraints=self.constraints or None,
        )


def repriced_trials(
    source: optuna.Study, profile: Profile, unit_name: str, objectives: list[str]
) -> tuple[list[Repriced], dict[int, str]]:
    """The source's finished trials re-priced on ``profile``'s unit (its failed ones stay failed), and the reason
    of each completed one that cannot run there."""
    from optuna.trial import TrialState

    from search.study import objective_values

    unit = profile.units[unit_name]
    label = f"{profile.name}:{unit_name}"
    out, cannot = [], {}
    for trial in sorted(source.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.state not in (TrialState.COMPLETE, TrialState.FAIL):
            continue
        record = TrialRecord.of(trial)
        attrs = {**trial.user_attrs, RESCORED_FROM: f"{source.study_name}#{trial.number}"}
        constraints = {k: v for k, v in trial.constraints.items() if k not in DEVICE_CONSTRAINTS}
        reason = None if trial.state == TrialState.FAIL else unrunnable(record, unit, label)
        values = None
        if trial.state == TrialState.COMPLETE and reason is None:
            attrs.update(repriced(record, profile, unit_name))
            values = objective_values(objectives, attrs)
        elif reason is not None:
            attrs[FAIL_REASON] = reason
            cannot[trial.number] = reason
        out.append(Repriced(trial, attrs, values, constraints))
    return out, cannot


def score_untested_front(rows: list[Repriced], directions: list[Any], data_spec: dict[str, Any] | None) -> str:
    """Score the test split of the new front's members that lack it (their attributes gain ``test_*``); returns
    why some were left unscored, or ``""``."""
    from search.study import non_dominated

    feasible = [r for r in rows if r.values is not None and all(v <= 0 for v in r.constraints.values())]
    front = [feasible[i] for i in non_dominated([r.values or [] for r in feasible], directions)]
    untested = [r for r in front if "test_top1" not in r.attrs]
    if not untested:
        return ""
    if not data_spec:
        return "the source study does not record its data"
    from evaluators.onnx_runtime import session
    from search.data import DataSpec, load_splits
    from search.worker import split_metrics

    try:
        test = load_splits(DataSpec(**data_spec)).test
    except (UserError, OSError) as exc:
        return f"its data cannot be loaded here ({exc})"
    failed = []
    for row in untested:
        try:
            row.attrs.update(split_metrics(session(Path(row.attrs[ONNX]).read_bytes()), "test", test))
        except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own types; the rescore goes on)
            failed.append(f"trial {row.trial.number}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    return "; ".join(failed)


BUILDING = ".rescoring-"  # the name of a rescore being built: TARGET.rescoring-HOST-PID


def building_name(name: str) -> str:
    """The temporary name this process builds a rescore of ``name`` under."""
    return f"{name}{BUILDING}{socket.gethostname()}-{os.getpid()}"


def drop_abandoned(storage: Any, name: str) -> None:
    """Delete the half-built rescores of ``name`` left by processes of this machine that are gone (killed before
    the swap); another machine's are its own to clear."""
    import optuna

    mine = f"{name}{BUILDING}{socket.gethostname()}-"
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        pid = summary.study_name.removeprefix(mine)
        if summary.study_name.startswith(mine) and pid.isdigit() and not _alive(int(pid)):
            optuna.delete_study(study_name=summary.study_name, storage=storage)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_replaceable(existing: optuna.Study, source: optuna.Study, replace: bool) -> None:
    """Refuse to write over ``existing`` unless asked to (``replace``) and it is a rescore of ``source``."""
    name = existing.study_name
    if name == source.study_name:
        raise UserError(f"study '{name}' is the study being rescored: pass another --study-name")
    if not replace:
        raise UserError(f"study '{name}' exists: pass --replace to write it again, or another --study-name")
    made_from = StudyInfo.of(existing).rescored_from
    if made_from != source.study_name:
        what = f"a rescore of '{made_from}'" if made_from else "not made by `search rescore`"
        raise UserError(
            f"study '{name}' is {what}: --replace only replaces a rescore of '{source.study_name}'; pass another --study-name"
        )


def rescore(source: optuna.Study, storage: Any, hw: str, name: str | None = None, replace: bool = False) -> Rescored:
    """Write ``source`` re-priced on ``hw`` as a new study (``name``, default ``SOURCE@PROFILE-UNIT``).

    With ``replace``, an existing study of that name is replaced only if ``search rescore`` made it from
    ``source``; the new study is built under a temporary name and swapped in (the old or the new, never neither).

    Raises:
        UserError: the target study exists (and ``replace`` is False, or it is not a rescore of ``source``), or
            ``hw`` is not a profile.
    """
    import optuna

    from hw_profiles import load_profile
    from search.study import create_study, find_study, swap_study

    started = time.perf_counter()
    profile, _, unit_name = load_profile(hw)
    label = f"{profile.name}:{unit_name}"
    name = name or rescored_name(source.study_name, label)
    info = StudyInfo.of(source)
    objectives = list(info.objectives or ("accuracy", "latency"))
    existing = find_study(storage, name)
    if existing is not None:
        check_replaceable(existing, source, replace)
    rows, cannot = repriced_trials(source, profile, unit_name, objectives)  # before the study exists: nothing half-written
    directions = [optuna.study.StudyDirection[objective(o).direction.upper()] for o in objectives]
    untested = score_untested_front(rows, directions, info.data_spec)
    trials = [row.frozen() for row in rows]
    info = info.with_(hw=label, objectives=tuple(objectives), profile_version=profile.version, rescored_from=source.study_name)
    drop_abandoned(storage, name)
    # built under another name, then swapped in: a kill while it is built leaves the old study whole
    study = create_study(storage, building_name(name), optuna.samplers.RandomSampler(), info)
    try:
        study.add_trials(trials)
        study = swap_study(storage, study, name)
    except BaseException:
        with contextlib.suppress(Exception):
            optuna.delete_study(study_name=building_name(name), storage=storage)
        raise
    repriced_count = sum(t.state.name == "COMPLETE" for t in trials)
    return Rescored(study, repriced_count, cannot, time.perf_counter() - started, untested)
