"""Benchmark throughput and memory of the trial loop (a script, not a test: quoted in docs/benchmarks.md).

The same study (problem, sampler, seed: the same plans) run with 1 and with 2 Ray workers, each in a fresh
driver process: trials per minute over the trial loop (first trial start to last trial end), median and
total seconds per stage (load, analyse, prune, finetune, export, precisions, accuracy, estimate,
host_latency), the driver's peak RSS and each worker's. Run it on a quiet machine; the ratio of the two rows
is the figure, the absolute ones belong to this host.

    python bench/throughput.py                       # default problem, 24 trials, 1 and 2 workers
    python bench/throughput.py --trials 40 --workers 1,2
    python bench/throughput.py --problem resnet18-fashion --trials 20 --workers 1 --test-every-trial   # before
    python bench/throughput.py --problem resnet18-fashion --trials 20 --workers 1                      # after

``--test-every-trial`` scores every trial on the test split (the tool's behaviour before the split was held
out for front candidates): the same plans, so the two runs show what holding it out saves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PROBLEMS, host_line, markdown_table, peak_rss_mb, run_quietly
from core.timing import stage_seconds


def run_one(args: argparse.Namespace, workers: int) -> None:
    """Run the study with ``workers`` in this process; print the driver's peak RSS as JSON (the child's side)."""
    out = args.out / args.problem
    name = f"{args.problem}-w{workers}-t{args.trials}" + ("-test-all" if args.test_every_trial else "")
    config = replace(
        PROBLEMS[args.problem],
        run_dir=str(out),
        storage=f"sqlite:///{out / 'studies.db'}",
        study_name=name,
        workers=workers,
        trials=args.trials,
        test_every_trial=args.test_every_trial,
    )
    run_quietly(config, out / "logs" / f"{name}.log")
    print(json.dumps({"study": name, "driver_peak_rss_mb": peak_rss_mb()}))


def measure(args: argparse.Namespace, study_name: str, driver_mb: float, workers: int) -> dict[str, object]:
    """Trials per minute, seconds per stage and memory of one finished study."""
    import optuna
    from optuna.trial import TrialState

    storage = f"sqlite:///{args.out / args.problem / 'studies.db'}"
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(states=(TrialState.COMPLETE,))
    start = min(t.datetime_start for t in trials if t.datetime_start)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    span = (end - start).total_seconds()
    stages: dict[str, list[float]] = {}
    for trial in trials:
        for stage, seconds in stage_seconds(trial.user_attrs).items():
            stages.setdefault(stage, []).append(seconds)
    row: dict[str, object] = {
        "workers": workers,
        "trials": len(trials),
        "scored_on_test": sum("test_top1" in t.user_attrs for t in trials),
        "loop_s": round(span, 1),
        "trials_per_min": round(60 * len(trials) / span, 2),
        "trial_s_median": round(statistics.median(t.user_attrs["seconds"] for t in trials), 2),
        "driver_peak_mb": round(driver_mb),
        "worker_peak_mb": round(max(t.user_attrs["worker_peak_rss_mb"] for t in trials)),
    }
    for stage, values in sorted(stages.items(), key=lambda kv: -sum(kv[1])):
        row[f"{stage}_total_s"] = round(sum(values), 1)
    return row


def main() -> None:
    """Run each worker count in its own driver process, then print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="default")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("bench/out/throughput"))
    parser.add_argument("--test-every-trial", action="store_true", help="score every trial on the test split")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one worker count here
    args = parser.parse_args()
    if args.one is not None:
        run_one(args, args.one)
        return
    rows = []
    for workers in args.workers:
        command = [sys.executable, __file__, "--problem", args.problem, "--trials", str(args.trials), "--out", str(args.out)]
        command += ["--test-every-trial"] if args.test_every_trial else []
        done = subprocess.run([*command, "--one", str(workers)], capture_output=True, text=True, check=True)
        child = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(measure(args, child["study"], child["driver_peak_rss_mb"], workers))
    test = "every trial" if args.test_every_trial else "front candidates and recipes"
    title = f"problem {args.problem}, {args.trials} trials, test split scored for {test}; host: {host_line()}"
    lines = markdown_table(title, rows)
    if len(rows) == 2:
        ratio = float(rows[1]["trials_per_min"]) / float(rows[0]["trials_per_min"])  # type: ignore[arg-type]
        lines += ["", f"trials per minute, {rows[1]['workers']} vs {rows[0]['workers']} workers: {ratio:.2f}x"]
    suffix = "-test-all" if args.test_every_trial else ""
    (args.out / f"throughput-{args.problem}{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
