"""How well a study's cheap fidelity ranked its promoted plans (a script; its output is quoted in docs/benchmarks.md).

A study run with ``--cheap-steps`` records, on every promoted trial, both its cheap validation accuracy
(``cheap_val_top1``) and its full one. No trial is run: this reads those pairs and prints Spearman's rank
correlation and the range of the full accuracies (with ``--exclude``, leaving trials out by number)::

    python bench/fidelity_in_study.py --storage sqlite:///runs/cmp/studies.db --study hl_cnn-fashion-mnist-pixel7-cpu
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.published import spearman


def main() -> None:
    """Print the rank agreement of the cheap and full accuracies of a study's promoted trials."""
    import optuna

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", required=True, help="Optuna storage URL of the study")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--exclude", default="", help="comma list of trial numbers to leave out")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    left_out = {int(n) for n in args.exclude.split(",") if n}
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    pairs = [
        (100 * float(t.user_attrs["cheap_val_top1"]), float(t.values[0]))
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.user_attrs.get("fidelity") == "full" and "cheap_val_top1" in t.user_attrs and t.number not in left_out
    ]
    if len(pairs) < 3:
        raise SystemExit(f"{args.study}: {len(pairs)} promoted trials with both accuracies; at least 3 are needed")
    cheap, full = [p[0] for p in pairs], [p[1] for p in pairs]
    print(
        f"{args.study}: {len(pairs)} promoted plans, Spearman {spearman(cheap, full):.3f}; "
        f"full val {min(full):.2f}-{max(full):.2f}, cheap val {min(cheap):.2f}-{max(cheap):.2f}"
    )


if __name__ == "__main__":
    main()
