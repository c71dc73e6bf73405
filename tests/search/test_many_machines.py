"""Many machines: two drivers on one PostgreSQL study at once, and trials run on a Ray cluster joined by address.

The PostgreSQL server is Debian's package (installed by .ci/run), started here on
loopback and stopped by process id; so is the Ray head (`ray start --head`).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.search.test_end_to_end import FAST
from tests.search.test_resume import stop_session, wait_for

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(path: str | None, what: str) -> str:
    """``path``, or skip (fail under CI, whose .ci/run installs it) when the system package is missing."""
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: .ci/run installs it")
    pytest.skip(f"{what} is not installed (Debian package; .ci/run installs it)")


class Postgres:
    """A throw-away PostgreSQL server on loopback in its own folder, started and stopped by process id."""

    def __init__(self) -> None:
        self.bindir = require(next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None), "PostgreSQL server")
        self.user = "postgres" if os.geteuid() == 0 else None  # the server refuses to run as root
        self.data = Path(tempfile.mkdtemp(prefix="pgtest-"))
        if self.user:
            shutil.chown(self.data, self.user)
        subprocess.run(
            [f"{self.bindir}/initdb", "-D", str(self.data / "db"), "-U", "optuna", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            user=self.user,
        )
        self.port = free_port()
        self.server: subprocess.Popen | None = None
        self.url = f"postgresql://optuna@127.0.0.1:{self.port}/studies"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.server = subprocess.Popen(
            [
                f"{self.bindir}/postgres",
                "-D",
                str(self.data / "db"),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.data),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.data / "server.log").open("a"),
            user=self.user,
        )
        ready = [f"{self.bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)]
        wait_for(
            lambda: subprocess.run(ready, capture_output=True, check=False).returncode == 0,
            "PostgreSQL to accept connections",
            timeout=60,
        )

    def stop(self) -> None:
        """Fast shutdown (SIGINT: open connections are cut), by process id."""
        if self.server is None:
            return
        self.server.send_signal(signal.SIGINT)
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server with an empty database ``studies``; removed afterwards."""
    server = Postgres()
    try:
        server.start()
        subprocess.run(
            [f"{server.bindir}/createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", "optuna", "studies"], check=True
        )
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url(postgres):
    """The URL of the module's PostgreSQL database."""
    return postgres.url


def search_run(*args: str, log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "search.cli", "run", *FAST, *args], stdout=out, stderr=out, start_new_session=True
        )


def test_two_drivers_on_one_postgresql_study(postgres_url, tmp_path):
    study_args = ["--storage", postgres_url, "--study-name", "pg", "--trials", "10", "--workers", "1", "--heartbeat", "2"]
    log = tmp_path / "log.txt"
    first = search_run(*study_args, "--run-dir", str(tmp_path / "a"), log=log)
    second = None
    try:
        wait_for(lambda: "study 'pg' in" in log.read_text(), "the first driver to create the study", proc=first, log=log)
        (study,) = optuna.get_all_study_summaries(postgres_url)
        # the second machine joins with the same weights (a copy of the first one's checkpoint)
        checkpoint = tmp_path / "baseline.pt"
        shutil.copyfile(study.user_attrs["checkpoint"], checkpoint)
        second = search_run(*study_args, "--run-dir", str(tmp_path / "b"), "--checkpoint", str(checkpoint), log=log)
        assert first.wait(timeout=900) == 0, log.read_text()[-3000:]
        assert second.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        stop_session(first)
        if second is not None:
            stop_session(second)

    trials = optuna.load_study(study_name="pg", storage=postgres_url).get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials), [
        (t.number, t.state, t.user_attrs.get("fail_reason")) for t in trials
    ]
    # none lost; two drivers asking at the same moment may each start the last one
    assert 10 <= len(trials) <= 11
    drivers = {t.user_attrs["driver"] for t in trials}
    assert len(drivers) == 2  # both drivers ran trials at once
    baselines = [t.user_attrs["baseline"] for t in trials if "baseline" in t.user_attrs]
    recipes = ["uncompressed", "all-int8", "prune-uniform-25", "prune-uniform-50", "prune-uniform-50-int8"]
    assert sorted(baselines) == sorted(recipes)
    # each trial was evaluated by exactly one driver: the ONNX graphs each run folder holds are disjoint and cover all
    graphs = [{int(p.stem) for p in (tmp_path / run / "pg" / "trials").glob("*.onnx")} for run in ("a", "b")]
    assert not graphs[0] & graphs[1] and graphs[0] | graphs[1] == {t.number for t in trials}


@pytest.fixture()
def ray_head():
    """`ray start --head` on loopback (2 CPUs), stopped by process id; yields its address and node id."""
    ray_cli = require(shutil.which("ray", path=str(Path(sys.executable).parent)), "the ray command")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-")  # its own temp root: no address file left where a plain ray.init() looks
    head = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
            "--temp-dir",
            temp,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    address = f"127.0.0.1:{port}"
    try:
        probe = "import ray; ray.init(address='%s', logging_level='ERROR'); print(ray.get_runtime_context().get_node_id())"
        node = wait_for(
            lambda: subprocess.run([sys.executable, "-c", probe % address], capture_output=True, text=True, check=False).stdout,
            "the Ray head",
            timeout=120,
        )
        yield address, node.strip()
    finally:
        stop_session(head, signal.SIGTERM)
        stop_session(head)
        shutil.rmtree(temp, ignore_errors=True)


def test_trials_run_on_a_ray_cluster_joined_by_address(ray_head, tmp_path):
    address, node = ray_head
    log = tmp_path / "log.txt"
    run = search_run("--run-dir", str(tmp_path), "--study-name", "cluster", "--trials", "5", "--ray-address", address, log=log)
    try:
        assert run.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        stop_session(run)
    trials = optuna.load_study(study_name="cluster", storage=f"sqlite:///{tmp_path / 'studies.db'}").get_trials()
    assert len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(f"node {node[:12]}" in t.user_attrs["worker"] for t in trials)  # ran on the cluster's node
    # the cluster outlives the driver: it was joined, not started
    probe = f"import ray; ray.init(address='{address}', logging_level='ERROR'); print(len(ray.nodes()))"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout.strip()
        == "1"
    )


def test_postgresql_stopped_mid_study_then_resumed_loses_and_repeats_nothing(postgres, tmp_path):
    """The server stops while trials run: the driver ends with one line; after a restart the same command resumes,
    and every trial that had completed is still complete, none evaluated twice."""
    args = ["--storage", postgres.url, "--study-name", "outage", "--trials", "10", "--workers", "1", "--heartbeat", "2"]
    log = tmp_path / "log.txt"
    first = search_run(*args, "--run-dir", str(tmp_path), log=log)
    try:

        def completed() -> list[int]:
            try:
                study = optuna.load_study(study_name="outage", storage=postgres.url)
            except KeyError:
                return []
            return [t.number for t in study.get_trials(states=(TrialState.COMPLETE,))]

        before = wait_for(lambda: (done := completed()) and len(done) >= 3 and done, "3 trials to complete", proc=first, log=log)
        postgres.stop()
        code = first.wait(timeout=300)
    finally:
        stop_session(first)
        postgres.start()
    assert code != 0 and "Traceback" not in log.read_text(), log.read_text()[-3000:]
    assert "the study database stopped answering" in log.read_text()
    again = search_run(*args, "--run-dir", str(tmp_path), log=log)
    try:
        assert again.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        stop_session(again)
    trials = optuna.load_study(study_name="outage", storage=postgres.url).get_trials()
    state = {t.number: t.state for t in trials}
    assert all(state[n] == TrialState.COMPLETE for n in before)  # nothing completed was lost
    reruns = [t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs]
    assert all(state[n] == TrialState.FAIL for n in reruns)  # only interrupted trials ran again
    assert len(reruns) == len(set(reruns))
    finished = [t for t in trials if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and t.number not in reruns)]
    assert len(finished) == 10, [(t.number, t.state, t.user_attrs.get("fail_reason")) for t in trials]


def test_no_password_in_any_output(postgres, tmp_path):
    """A storage URL with a password (the test server trusts loopback, so any password opens it): neither `run`,
    `studies`, `show`, `pareto` nor an error prints it."""
    url = postgres.url.replace("optuna@", "optuna:s3cr3t-pw@")
    outputs = []
    run = subprocess.run(
        [sys.executable, "-m", "search.cli", "run", *FAST, "--storage", url, "--study-name", "pw", "--trials", "2",
         "--strategy", "uncompressed,all-int8", "--run-dir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    outputs.append(run.stdout + run.stderr)
    assert "optuna:***@" in run.stdout  # the study line and the `optuna best-trials` line, password hidden
    for args in (["studies"], ["show", "pw"], ["pareto", "pw"], ["show", "nosuch"]):
        shown = subprocess.run(
            [sys.executable, "-m", "search.cli", *args, "--storage", url], capture_output=True, text=True, check=False
        )
        outputs.append(shown.stdout + shown.stderr)
    assert "no study 'nosuch'" in outputs[-1]
    assert not [text for text in outputs if "s3cr3t-pw" in text]
