"""Faults survived: SIGKILL at random points of `rescore --replace`, `export` and `calibrate` (the old result or the new
one, never neither), and a hung trial (cancelled at its time limit, recorded FAIL with the reason, the study goes
on). A Ray worker that dies is tests/search/test_resume.py's; PostgreSQL stopped mid-study is
tests/search/test_many_machines.py's."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.search.test_resume import stop_session

pytestmark = pytest.mark.slow
SOURCE = "src"
KILLS = 6


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, check=False, cwd=cwd)


def _killed_at_random(args: list[str], cwd: Path, seconds: float, seed: int) -> None:
    """Run `search ARGS` and SIGKILL it (with everything it started) after a random share of ``seconds``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.cli", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(random.Random(seed).uniform(0.3, 1.0) * seconds)
    stop_session(proc, signal.SIGKILL)


def _timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = _cli(*args, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A run folder with a small real study: three fixed recipes of the default model."""
    root = tmp_path_factory.mktemp("faults")
    made = _cli(
        "run", "--strategy", "uncompressed,all-int8,prune-uniform-50", "--baseline-epochs", "1", "--study-name", SOURCE,
        "--run-dir", str(root / "runs"), "--workers", "1", cwd=root,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    return root


def test_rescore_replace_killed_anywhere_leaves_the_old_or_the_new(study):
    runs = study / "runs"
    url = f"sqlite:///{runs / 'studies.db'}"
    args = ["rescore", SOURCE, "--hw", "rpi4", "--run-dir", str(runs), "--replace"]
    seconds = _timed(args, study)
    name = f"{SOURCE}@rpi4-cpu"
    for seed in range(KILLS):
        _killed_at_random(args, study, seconds, seed)
        trials = optuna.load_study(study_name=name, storage=url).get_trials()  # raises if neither is there
        assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
        assert optuna.load_study(study_name=SOURCE, storage=url).get_trials()  # the source is never touched
    _timed(args, study)  # a whole run afterwards clears what killed ones left half-built
    names = {s.study_name for s in optuna.get_all_study_summaries(url, include_best_trial=False)}
    assert names == {SOURCE, name}


def test_export_killed_anywhere_leaves_whole_trial_folders(study):
    out = study / "export"
    args = ["export", SOURCE, "--trial", "0", "--trial", "1", "--run-dir", str(study / "runs"), "--out", str(out)]
    seconds = _timed(args, study)
    for seed in range(KILLS):
        _killed_at_random(args, study, seconds, seed)
        for number in (0, 1):
            folder = out / f"trial_{number:05d}"
            assert {p.name for p in folder.iterdir()} >= {"plan.yaml", "model.onnx", "MODEL_CARD.md"}


def test_calibrate_killed_anywhere_leaves_a_whole_profile(study):
    from hw_profiles import load_profile_file

    rows = study / "rows.csv"
    rows.write_text(
        "model,precision,unit,threads,input_size,latency_ms\nresnet18,fp32,cpu,1,224,30\nmobilenetv2_100,fp32,cpu,1,224,20\n"
    )
    out = study / "pixel7.yaml"
    args = ["calibrate", "--hw", "pixel7", "--measured", str(rows), "--out", str(out)]
    seconds = _timed(args, study)
    for seed in range(KILLS):
        _killed_at_random(args, study, seconds, seed)
        assert load_profile_file(out).name == "pixel7"


def _evaluate(job, state):
    """A trial's work as a test makes it: trial 1 hangs, every other one returns at once."""
    from search.worker import TrialOutcome

    if job["number"] == 1:
        time.sleep(3600)
    metrics = {"val_top1": 0.5 + job["number"] / 100, "test_top1": 0.5, "latency_ms": 1.0 + job["number"], "seconds": 0.1}
    return TrialOutcome(metrics=metrics, onnx_bytes=b"graph")


def test_a_hung_trial_is_cancelled_at_its_time_limit_and_the_study_goes_on(tmp_path):
    import ray.cloudpickle

    from search.driver.cluster import ray_session
    from search.driver.loop import TrialLoop
    from search.study import Budgets, StudyInfo, create_study, open_storage, records
    from spaces.plan import CompressionPlan

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import the tests
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}", heartbeat_s=1)
    info = StudyInfo(model="m", hw="pixel7:cpu", objectives=("accuracy", "latency"))
    study = create_study(storage, "hang", optuna.samplers.RandomSampler(seed=0), info)

    class Space:
        def suggest(self, trial):
            return CompressionPlan(layers={})

    asked = iter(range(100))
    loop = TrialLoop(
        study,
        Space(),  # type: ignore[arg-type]
        lambda plan, test: {"number": next(asked)},  # type: ignore[arg-type,return-value]
        {},
        ["accuracy", "latency"],
        Budgets(0.5),
        tmp_path / "trials",
        workers=2,
        heartbeat_s=1,
        timeout_s=5,
        evaluate=_evaluate,  # type: ignore[arg-type]
    )
    started = time.perf_counter()
    with ray_session(2, None):
        loop.run(4, lambda: None)
    assert time.perf_counter() - started < 120
    by_state = {r.number: (r.state, r.fail_reason) for r in records(study)}
    assert by_state[1][0] == "FAIL" and "timed out" in by_state[1][1] and "--trial-timeout" in by_state[1][1]
    assert sum(state == "COMPLETE" for state, _ in by_state.values()) == 3
    assert os.path.isfile(tmp_path / "trials" / "00000.onnx")
