"""Faults a real run meets: a Ray worker dies, the driver is SIGKILLed, the run is started again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from tests.search.test_end_to_end import FAST

pytestmark = pytest.mark.slow
STUDY = "crash"


def start_run(run_dir: Path, log: Path, *extra: str) -> subprocess.Popen:
    """`search run` in its own session (so the test can stop whatever it started)."""
    args = ["run", "--run-dir", str(run_dir), "--study-name", STUDY, "--trials", "9", "--heartbeat", "1", *FAST, *extra]
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "search.cli", *args], stdout=out, stderr=out, start_new_session=True)


def stop_session(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal every process left in ``proc``'s session (e.g. a driver and the local Ray it started) and reap ``proc``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=60)


def wait_for(
    condition: Callable[[], Any], what: str, timeout: float = 600, proc: subprocess.Popen | None = None, log: Path | None = None
) -> Any:
    """Poll ``condition`` until it is truthy; fail early if ``proc`` exits first (showing the end of ``log``)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run exited ({proc.returncode}) before {what}: {log.read_text()[-2000:] if log else ''}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    url = f"sqlite:///{run_dir / 'studies.db'}"
    try:
        return optuna.load_study(study_name=STUDY, storage=url).get_trials()
    except KeyError:  # the study is not created yet
        return []


def busy_ray_worker(session: int) -> int | None:
    """A Ray worker of ``session`` that is evaluating a trial right now."""
    out = subprocess.run(
        ["pgrep", "-s", str(session), "-f", "^ray::remote_evaluate"], capture_output=True, text=True, check=False
    )
    pids = [int(p) for p in out.stdout.split()]
    return pids[0] if pids else None


def count(state: TrialState, run_dir: Path) -> int:
    return sum(t.state == state for t in trials(run_dir))


def test_worker_death_fails_one_trial_and_sigkill_resume_loses_nothing(tmp_path):
    log = tmp_path / "log.txt"
    first = start_run(tmp_path, log)
    try:
        wait_for(lambda: count(TrialState.COMPLETE, tmp_path) >= 1, "a first completed trial", proc=first, log=log)
        worker = wait_for(lambda: busy_ray_worker(first.pid), "a Ray worker running a trial", proc=first, log=log)
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: count(TrialState.FAIL, tmp_path) >= 1, "the killed worker's trial to fail")
        wait_for(
            lambda: count(TrialState.COMPLETE, tmp_path) >= 3 and count(TrialState.RUNNING, tmp_path) >= 1,
            "trials completed and others in flight",
            proc=first,
            log=log,
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        before = {t.number: t for t in trials(tmp_path)}
    finally:
        stop_session(first)
    completed = {n: t for n, t in before.items() if t.state == TrialState.COMPLETE}
    interrupted = {n: t for n, t in before.items() if t.state == TrialState.RUNNING}
    crashed = [t for t in before.values() if t.state == TrialState.FAIL]
    assert interrupted and len(completed) >= 3
    assert len(crashed) == 1 and "Worker" in crashed[0].user_attrs["fail_reason"], crashed[0].user_attrs

    second = start_run(tmp_path, log)
    try:
        assert second.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        stop_session(second)

    after = {t.number: t for t in trials(tmp_path)}
    for number, trial in completed.items():  # every completed trial intact
        kept = after[number]
        assert (kept.state, kept.values, kept.user_attrs) == (trial.state, trial.values, trial.user_attrs)
    assert after[crashed[0].number].state == TrialState.FAIL  # a trial that failed is a result, not rerun
    reruns = {t.system_attrs["retry_history"][-1]: t for t in after.values() if t.system_attrs.get("retry_history")}
    assert set(reruns) == set(interrupted)  # every interrupted trial rerun, once
    for number, trial in interrupted.items():
        assert after[number].state == TrialState.FAIL
        rerun = reruns[number]
        assert rerun.state == TrialState.COMPLETE and "fail_reason" not in rerun.user_attrs
        # the same candidate; a driver killed while Optuna was still sampling it left part of the parameters
        assert trial.params.items() <= rerun.params.items()
        if "plan" in trial.user_attrs:
            assert rerun.user_attrs["plan"] == trial.user_attrs["plan"]
    counted = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.number not in reruns]
    assert len(counted) == 9 and not [t for t in after.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    baselines = [t.user_attrs["baseline"] for t in counted if "baseline" in t.user_attrs]
    assert sorted(baselines) == sorted(set(baselines)) and len(baselines) == 5

    shown = subprocess.run(
        [sys.executable, "-m", "search.cli", "show", STUDY, "--run-dir", str(tmp_path), "--state", "fail", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "(heartbeat lost); rerun as trial" in shown.stdout and "WorkerCrashedError" in shown.stdout


def test_ctrl_c_fails_the_trials_in_flight_and_queues_them_again(tmp_path):
    log = tmp_path / "log.txt"
    args = ["run", "--run-dir", str(tmp_path), "--study-name", STUDY, "--trials", "12", *FAST]
    with log.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "search.cli", *args],
            stdout=out,
            stderr=out,
            start_new_session=True,
            # as on a terminal, even when the tests run as a background job (which ignores SIGINT)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 (no threads run in between)
        )
    try:
        wait_for(lambda: count(TrialState.COMPLETE, tmp_path) >= 1, "a first completed trial", proc=run, log=log)
        wait_for(lambda: count(TrialState.RUNNING, tmp_path) >= 1, "a trial in flight", proc=run, log=log)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 130, log.read_text()[-2000:]
    finally:
        stop_session(run)
    after = trials(tmp_path)
    assert not [t for t in after if t.state == TrialState.RUNNING]
    interrupted = [t for t in after if t.state == TrialState.FAIL]
    reruns = {
        t.system_attrs["retry_history"][-1]: t
        for t in after
        if t.state == TrialState.WAITING and "retry_history" in t.system_attrs
    }
    assert interrupted and set(reruns) == {t.number for t in interrupted}
    for trial in interrupted:
        assert trial.user_attrs["fail_reason"].startswith("interrupted")
        assert reruns[trial.number].params == trial.params
