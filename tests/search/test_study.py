from __future__ import annotations

import optuna
import pytest

from core.errors import UserError
from search.study import Budgets, check_storage, objective_values, parse_objectives, set_constraints


def test_objectives():
    assert parse_objectives("accuracy,latency,energy") == ["accuracy", "latency", "energy"]
    for bad in ("latency,accuracy", "accuracy", "accuracy,speed", "accuracy,latency,latency"):
        with pytest.raises(UserError):
            parse_objectives(bad)
    metrics = {"val_top1": 0.98, "latency_ms": 1.5, "energy_mj": 2.0, "size_bytes": 10}
    assert objective_values(["accuracy", "latency", "size"], metrics) == [98.0, 1.5, 10]


@pytest.mark.parametrize(
    "url, message",
    [
        ("not a url", "is malformed"),
        ("sqlite:////nonexistent-folder/x.db", "does not exist"),
        ("sqlite://", "names no file"),
        ("postgresql://user:secret@127.0.0.1:1/db", "cannot open storage"),
        ("nosuchdb://host/db", "cannot open storage"),
    ],
)
def test_bad_storage_urls(url, message):
    with pytest.raises(UserError, match=message) as info:
        check_storage(url)
    assert "secret" not in str(info.value)


def test_constraints_feasibility():
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    metrics = {"val_top1": 0.97, "latency_ms": 2.0, "memory_bytes": 300 * 1024}
    set_constraints(trial, metrics, Budgets(0.99, max_accuracy_drop=1.5, latency_budget_ms=1.0, memory_budget_kb=200))
    study.tell(trial, [97.0, 2.0])
    constraints = study.trials[0].system_attrs
    values = {k: v for k, v in constraints.items() if k.startswith("constraints:")}
    assert values["constraints:accuracy_drop"] == pytest.approx(0.5)
    assert values["constraints:latency_ms"] == pytest.approx(1.0)
    assert values["constraints:memory_kb"] == pytest.approx(100.0)
    assert study.best_trials == []  # infeasible trials are not on the front


def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_queued_again(tmp_path):
    import time

    from optuna.trial import TrialState

    from search.study import fail_silent_trials, open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_s=1)
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    silent = study.ask()  # its driver died before the first heartbeat
    silent.suggest_float("x", 0, 1)
    beating = study.ask()
    storage.record_heartbeat(beating._trial_id)
    time.sleep(0.1)
    fail_silent_trials(study, grace_s=0.05)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].params == trials[0].params and trials[2].system_attrs["failed_trial"] == silent.number
    fail_silent_trials(study, grace_s=0.05)  # once only
    assert len(study.get_trials()) == 3
