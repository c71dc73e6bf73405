"""Peak memory of a whole `search` command: the driver, the local Ray and every worker, summed (a script, not a test:
quoted in docs/operations.md).

Samples the resident memory (RSS) of the command's process tree every ``--every`` seconds and prints the peak of
the sum, the peak of the largest single process and the wall time. Two source trees can be compared side by side
(``--tree``: run the command with that checkout's packages first on ``sys.path``):

    python bench/peak_memory.py -- search run --input-size 224 --workers 2 --trials 4 --run-dir /tmp/m224
    python bench/peak_memory.py --tree /tmp/old-checkout -- search run --input-size 224 --workers 2 --trials 4 --run-dir /tmp/o224
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import host_line


def tree_rss_mb(root: int) -> dict[str, float]:
    """Resident memory (MB) of ``root`` and each of its descendants, keyed ``NAME pid N``."""
    import psutil

    try:
        parent = psutil.Process(root)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    sizes = {}
    for process in processes:
        try:
            name = "driver" if process.pid == root else " ".join(process.cmdline()[:1]).rpartition("/")[2][:40]
            sizes[f"{name} pid {process.pid}"] = process.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
    return sizes


def main() -> int:
    """Run the command, sample its memory, print the peaks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--tree", help="a checkout whose packages the command imports (default: this one)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- search ARGS")
    args = parser.parse_args()
    command = [c for c in args.command if c != "--"]
    if command[:1] == ["search"]:  # the CLI of the chosen tree, by module
        tree = str(Path(args.tree).resolve()) if args.tree else str(Path(__file__).resolve().parent.parent)
        command = [sys.executable, "-c", f"import sys; sys.path.insert(0, {tree!r}); from search.cli import main; "
                   "sys.exit(main())", *command[1:]]  # fmt: skip
        cwd = tree
    else:
        cwd = None
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL)
    total_peak = 0.0
    peaks: dict[str, float] = {}
    while proc.poll() is None:
        sizes = tree_rss_mb(proc.pid)
        total_peak = max(total_peak, sum(sizes.values()))
        for name, size in sizes.items():
            peaks[name] = max(peaks.get(name, 0.0), size)
        time.sleep(args.every)
    print(host_line())
    largest = sorted(peaks.items(), key=lambda item: -item[1])[:4]
    print(
        f"exit {proc.returncode}; wall {time.perf_counter() - started:.0f} s; peak RSS of the process tree "
        f"{total_peak:.0f} MB (sum); largest processes: " + ", ".join(f"{name} {size:.0f} MB" for name, size in largest)
    )
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
