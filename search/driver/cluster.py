"""A local Ray, or a cluster joined by address: where the trial tasks run."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator


def start_ray(workers: int, address: str | None) -> bool:
    """Join the cluster at ``address`` or start a local Ray with ``workers`` CPUs; True if we started it."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}}
    if address:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, runtime_env=env)
        return False
    ray.init(
        address="local",
        num_cpus=workers,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        runtime_env=env,
    )
    return True


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow), not the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def ray_session(workers: int, address: str | None) -> Iterator[None]:
    """Ray for the block: joined at ``address``, or a local Ray with ``workers`` CPUs that is shut down after it."""
    started = start_ray(workers, address)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()
