"""One search, several devices (a script, not a test: quoted in docs/benchmarks.md).

Runs (or resumes) the default study on the first device, rescores it onto the others (`search rescore`),
times each rescore, and prints the fronts side by side: every plan on at least one front, with its
precisions, mean prune ratio, val top-1 and predicted latency per device, marked where it is on that
device's front (or where that device cannot run it).

    python bench/devices.py --hw pixel7,rpi4,jetson-nano
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PROBLEMS, host_line, markdown_table, run_quietly


def main() -> None:
    """Run the study, rescore it per device, print and write the side-by-side fronts."""
    import optuna

    from search.analysis.rescore import rescore
    from search.study import TrialRecord, open_storage

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="default")
    parser.add_argument("--hw", default="pixel7,rpi4,jetson-nano")
    parser.add_argument("--out", type=Path, default=Path("bench/out/devices"))
    args = parser.parse_args()
    first, *others = args.hw.split(",")
    out = args.out / args.problem
    storage_url = f"sqlite:///{out / 'studies.db'}"
    name = f"{args.problem}-{first}"
    config = replace(PROBLEMS[args.problem], hw=first, run_dir=str(out), storage=storage_url, study_name=name)
    run_quietly(config, out / "logs" / f"{config.study_name}.log")
    storage = open_storage(storage_url)
    source = optuna.load_study(study_name=str(config.study_name), storage=storage)
    studies = {source.user_attrs["hw"]: source}
    timings = []
    for hw in others:
        done = rescore(source, storage, hw, replace=True)
        label = done.study.user_attrs["hw"]
        studies[label] = done.study
        timings.append(
            {"device": label, "seconds": round(done.seconds, 2), "re-priced": done.rescored, "cannot run": len(done.cannot_run)}
        )
    fronts = {hw: {t.number for t in study.best_trials} for hw, study in studies.items()}
    trials = {hw: {t.number: t for t in study.trials} for hw, study in studies.items()}
    rows = []
    for number in sorted(set().union(*fronts.values())):
        record = TrialRecord.of(trials[source.user_attrs["hw"]][number])
        row: dict[str, object] = {
            "trial": f"{number} ({record.strategy})" if record.strategy else str(number),
            "precisions": record.precision_mix,
            "mean prune": f"{record.mean_prune:.2f}",
            "val top-1 %": f"{100 * record.metrics['val_top1']:.2f}",
        }
        for hw, study_trials in trials.items():
            trial = study_trials[number]
            mark = " *" if number in fronts[hw] else ""
            row[f"{hw} ms"] = f"{trial.user_attrs['latency_ms']:.4f}{mark}" if trial.values else "cannot run"
        row["on fronts"] = sum(number in front for front in fronts.values())
        rows.append(row)
    lines = [
        *markdown_table(f"rescore of '{source.study_name}' ({len(source.trials)} trials); host: {host_line()}", timings),
        "",
        *markdown_table("every plan on at least one front (* = on that device's front)", rows),
    ]
    (out / "devices.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
