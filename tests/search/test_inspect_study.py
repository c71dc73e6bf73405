"""`search studies / show / pareto` on a real SQLite study written the way `search run` writes one."""

from __future__ import annotations

import hashlib
import json

import optuna
import pytest

from tests.search.test_cli import run_cli

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _plan(ratio: float, precisions: list[str]) -> dict:
    return {"layers": {f"conv{i}": {"prune_ratio": ratio, "precision": p} for i, p in enumerate(precisions)}}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def storage(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="s1", storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "latency_ms"])
    for key, value in {"model": "small_cnn", "data": "digits", "hw": "pixel7:cpu"}.items():
        study.set_user_attr(key, value)
    rows = [  # (baseline, accuracy %, latency ms, size bytes, plan)
        ("uncompressed", 99.0, 1.0, 4000, _plan(0.0, ["fp32", "fp32"])),
        ("all-int8", 98.5, 0.5, 1000, _plan(0.0, ["int8", "int8"])),
        ("", 97.0, 0.8, 2000, _plan(0.5, ["fp16", "int8"])),  # dominated by all-int8
        ("", 96.0, 0.25, 500, _plan(0.5, ["int8", "int8"])),
    ]
    for baseline, accuracy, latency, size, plan in rows:
        trial = study.ask()
        attrs = {"plan": plan, "size_bytes": size, "macs": 1e6, "test_top1": accuracy / 100, "latency_ms": latency}
        attrs |= {"energy_mj": latency, "host_latency_ms": 2 * latency, "baseline": baseline}
        for name, item in attrs.items():
            trial.set_user_attr(name, item)
        study.tell(trial, [accuracy, latency])
    failed = study.ask()
    failed.set_user_attr("fail_reason", "RuntimeError: NaN loss")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    return url


def test_studies_lists_counts_and_front(storage):
    result = run_cli("studies", "--storage", storage, "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["study"], row["model"], row["hw"], row["objectives"]) == ("s1", "small_cnn", "pixel7:cpu", "accuracy,latency_ms")
    assert (row["complete"], row["fail"], row["front"]) == (4, 1, 3)


def test_show_sorts_filters_and_keeps_failure_reasons(storage):
    result = run_cli("show", "s1", "--storage", storage, "--json", "--sort", "latency_ms")
    rows = json.loads(result.stdout)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert [r["latency_ms"] for r in complete] == [0.25, 0.5, 0.8, 1.0]
    assert rows[-1]["state"] == "FAIL" and rows[-1]["fail_reason"] == "RuntimeError: NaN loss"
    mixed = next(r for r in rows if r["latency_ms"] == 0.8)
    assert (mixed["fp16_share"], mixed["int8_share"], mixed["mean_prune"]) == (0.5, 0.5, 0.5)
    failed = run_cli("show", "s1", "--storage", storage, "--csv", "--state", "fail")
    assert failed.stdout.count("\n") == 2 and "NaN loss" in failed.stdout


def test_pareto_has_speedup_and_size_reduction(storage):
    rows = json.loads(run_cli("pareto", "s1", "--storage", storage, "--json").stdout)
    assert [r["trial"] for r in rows] == [0, 1, 3]
    assert [round(r["speedup"], 2) for r in rows] == [1.0, 2.0, 4.0]
    assert [round(r["size_reduction"], 3) for r in rows] == [0.0, 0.75, 0.875]


@pytest.mark.parametrize(
    "args, message",
    [
        (("show", "nope"), "no study 'nope' in this storage; its studies: s1"),
        (("pareto", "s1", "--json"), None),
        (("show", "s1", "--sort", "bogus"), "cannot sort by 'bogus'"),
        (("show", "s1", "--state", "odd"), "unknown state 'odd'"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(storage, tmp_path, args, message):
    database = tmp_path / "studies.db"
    before = _digest(database)
    result = run_cli(*args[:2], "--storage", storage, *args[2:])
    if message is None:
        assert result.returncode == 0
    else:
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert _digest(database) == before


def test_missing_or_malformed_storage(tmp_path):
    missing = run_cli("studies", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 2 and "no study database" in missing.stderr
    assert not (tmp_path / "none.db").exists()
    malformed = run_cli("studies", "--storage", "not a url")
    assert malformed.returncode == 2 and "malformed" in malformed.stderr
