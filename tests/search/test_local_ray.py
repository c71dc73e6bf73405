"""The local Ray of a `search run`: every port it listens on is on loopback, and it refuses clients without its
token (Ray's own token authentication)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest


def _listening(pids: set[int]) -> list[str]:
    """``address:port`` of every TCP socket the processes ``pids`` listen on (from ``ss -ltnpH``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.append(line.split()[3])
    return found


def _session_pids(leader: int) -> set[int]:
    """``leader`` and every process descended from it (the driver, Ray's servers and workers)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for pid, ppid in (map(int, line.split()) for line in out.splitlines()):
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [leader]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


@pytest.mark.slow
def test_every_port_of_a_search_run_is_on_loopback(tmp_path):
    import shutil

    if shutil.which("ss") is None and not os.environ.get("CI"):
        pytest.skip("ss (iproute2) is not installed")
    run = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", "--hw", "pixel7", "--trials", "200", "--run-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},  # a user's setting: the local Ray still uses a token
    )
    seen: set[str] = set()
    token_path = ""
    gcs: list[str] = []
    try:
        deadline = time.time() + 240
        while run.poll() is None and time.time() < deadline:
            pids = _session_pids(run.pid)
            seen |= set(_listening(pids))
            for pid in pids:
                try:
                    environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")  # noqa: SIM115
                    argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")  # noqa: SIM115
                except OSError:
                    continue
                token_path = next((e.decode()[20:] for e in environ if e.startswith(b"RAY_AUTH_TOKEN_PATH=")), token_path)
                if argv[0].endswith(b"/gcs_server"):
                    gcs = gcs or _listening({pid})
            if len(seen) >= 4 and token_path and gcs:
                break
            time.sleep(0.3)
        assert len(seen) >= 4, f"saw no Ray servers listening: {seen}"
        hosts = {address.rpartition(":")[0] for address in seen}
        assert hosts <= {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}, f"listening beyond loopback: {sorted(seen)}"
        assert token_path and os.stat(token_path).st_mode & 0o077 == 0, "the token file is this user's alone"
        assert gcs, "found no GCS server among the run's processes"
        host_port = f"127.0.0.1:{gcs[0].rpartition(':')[2]}"
        probe = f"import ray; ray.init(address='{host_port}', logging_level='ERROR'); print('joined')"
        # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray then dials 127.0.0.1 itself instead of this host's routable
        # address (where nothing listens), so what refuses the stranger is the token check
        bare = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        bare |= {"RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

        def joins(env: dict[str, str]) -> bool:
            client = subprocess.run(
                [sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120, env=env
            )
            return "joined" in client.stdout

        assert not joins(bare), "a client without the token joined the local Ray"
        assert joins(bare | {"RAY_AUTH_TOKEN_PATH": token_path}), "the same client with the token is turned away"
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(timeout=60)
