"""Where the trial tasks run: a local Ray that only this user can reach, or a cluster joined by address.

A local Ray binds every port to loopback and requires Ray's token authentication, with a fresh token in a file
only this user can read (Ray's own switches: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes the node's address
127.0.0.1, which every Ray server then binds to; ``RAY_AUTH_MODE=token`` with ``RAY_AUTH_TOKEN_PATH``). Its
session files live in a private temporary folder, removed at shutdown. A cluster given by ``--ray-address`` is
the user's: joined as it is configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from core.errors import UserError

# The environment a local Ray is started with (restored afterwards); RAY_AUTH_TOKEN would win over the file.
LOCAL_ENV = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")
WORKER_ENV = {"env_vars": {"OMP_NUM_THREADS": "1"}}
_TOKEN: dict[str, str] = {}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow), not the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_ray_address(address: str) -> None:
    """Refuse a ``--ray-address`` that names no reachable cluster, before anything is trained or written."""
    import socket

    if address == "auto":
        from ray._private.services import get_ray_address_from_environment

        if get_ray_address_from_environment("auto", None) is None:
            raise UserError(
                "--ray-address auto: no Ray cluster runs on this machine: start one (`ray start --head`) or pass HOST:PORT"
            )
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address '{address}' is not HOST:PORT (e.g. 10.0.0.5:6379) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(
            f"--ray-address '{address}': nothing answers there ({exc.strerror or exc}): start the head "
            "node (`ray start --head`) or check the address"
        ) from None


@contextlib.contextmanager
def ray_session(workers: int, address: str | None) -> Iterator[None]:
    """Ray for the block: joined at ``address``, or a private local Ray with ``workers`` CPUs, shut down after it."""
    import ray

    if ray.is_initialized():  # the caller's own Ray (tests, notebooks): used as it is
        yield
    elif address:
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, runtime_env=WORKER_ENV)
        yield
    else:
        with local_ray(workers):
            yield


@contextlib.contextmanager
def local_ray(workers: int) -> Iterator[None]:
    """A local Ray on loopback with token authentication and a private session folder; shut down and removed after."""
    import secrets
    import shutil
    import tempfile
    from pathlib import Path

    import ray
    from ray._private import ray_constants
    from ray._raylet import Config  # type: ignore[attr-defined]

    folder = Path(tempfile.mkdtemp(prefix="search-ray-"))  # mode 0700: this user's alone
    saved = {key: os.environ.get(key) for key in LOCAL_ENV}
    cluster = ray_constants.ENABLE_RAY_CLUSTER
    try:
        token = folder / "auth_token"
        token.touch(mode=0o600)
        # one token per process: Ray's C++ side reads it once and keeps it for every later local Ray of this process
        token.write_text(_TOKEN.setdefault("token", secrets.token_hex(32)))
        os.environ.pop("RAY_AUTH_TOKEN", None)
        os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        Config.initialize("")  # Ray reads its config once per process: again, with this environment (as Ray does)
        ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time: the node address is 127.0.0.1
        ray.init(
            address="local",
            num_cpus=workers,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            runtime_env=WORKER_ENV,
            _temp_dir=str(folder),
        )
        yield
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = cluster
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        Config.initialize("")
        shutil.rmtree(folder, ignore_errors=True)
