"""The loop back from a device: shortlist the front, measure it (here: this host in onnxruntime, standing in for a
phone, which cannot be attached here), read the measurements back, refit the profile, re-rank the front."""

from __future__ import annotations

import csv
import subprocess
import sys

import optuna
import pytest

from hw_profiles.schema import Band
from search.calibration.shortlist import pick
from search.study.records import TrialRecord
from tests.search.test_cli import run_cli
from tests.search.test_end_to_end import FAST


def _member(number: int, latency: float) -> TrialRecord:
    return TrialRecord(number, "COMPLETE", metrics={"latency_ms": latency})


def test_the_shortlist_is_the_fastest_then_the_least_certain_order():
    band = Band(low=0.8, high=1.4, level=0.8, rows=10, source="test")
    members = [_member(0, 1.0), _member(1, 1.05), _member(2, 1.1), _member(3, 3.0), _member(4, 9.0)]
    assert [m.number for m in pick(members, band, 2)] == [0, 1]  # 1 overlaps 0 and 2
    assert [m.number for m in pick(members, band, 4)] == [0, 1, 2, 3]
    assert [m.number for m in pick(members, None, 1)] == [0]


@pytest.mark.slow
def test_shortlist_measure_calibrate_closes_the_loop_on_this_host(tmp_path, monkeypatch):
    from hw_profiles import load_profile_file
    from hw_profiles.host import CACHE_ENV, TEMPLATE, load_host_profile, profile_path, this_machine
    from hw_profiles.writer import write_profile

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # a host profile of its own, changed by this test only
    profile_path().parent.mkdir(parents=True)
    write_profile(load_profile_file(TEMPLATE).model_copy(update={"machine": this_machine()}), profile_path())
    before = load_host_profile().version
    run_dir = tmp_path / "run"
    searched = run_cli("run", "--hw", "host", "--run-dir", str(run_dir), "--study-name", "loop", "--trials", "6", *FAST)
    assert searched.returncode == 0, searched.stdout + searched.stderr

    out = tmp_path / "shortlist"
    listed = run_cli("shortlist", "loop", "--run-dir", str(run_dir), "--count", "3", "--out", str(out))
    assert listed.returncode == 0, listed.stderr
    graphs = sorted(out.glob("trial_*.onnx"))
    assert 1 <= len(graphs) <= 3 and (out / "shortlist.csv").is_file()
    assert not (out / "measure_android.sh").exists()  # a host study is measured here, not on a phone
    subprocess.run([sys.executable, str(out / "measure_here.py")], check=True, capture_output=True, timeout=300)
    with (out / "measured.csv").open() as stream:
        measured = list(csv.DictReader(stream))
    assert [row["model"] for row in measured] == [g.name for g in graphs] and all(float(r["latency_ms"]) > 0 for r in measured)

    calibrated = run_cli(
        "calibrate", "--hw", "host", "--measured", str(out / "measured.csv"), "--study", "loop", "--run-dir", str(run_dir)
    )
    if len(graphs) == 1:  # one row cannot determine even one parameter: refused, the loop asks for more
        assert calibrated.returncode == 2 and "prove nothing" in calibrated.stderr
        return
    assert calibrated.returncode == 0, calibrated.stdout + calibrated.stderr
    after = load_host_profile()
    assert after.version == before + 1 and after.machine == this_machine()
    name = f"loop@host-v{after.version}"
    assert f"re-ranked with the new profile: study '{name}'" in calibrated.stdout
    storage = f"sqlite:///{run_dir / 'studies.db'}"
    source = optuna.load_study(study_name="loop", storage=storage)
    reranked = optuna.load_study(study_name=name, storage=storage)
    assert len(reranked.trials) == len(source.trials) and reranked.best_trials
    moved = [t.values[1] for t in reranked.best_trials] != [source.trials[t.number].values[1] for t in reranked.best_trials]
    assert moved  # the new profile re-priced the front
