"""Two searches of one problem from the same warm start, side by side per searched trial.

For each study (``--study LABEL=STORAGE_URL:STUDY``): after its fixed recipes and the first k searched trials, the
hypervolume of the validation front (the same reference point as bench/samplers.py: the uncompressed model's
latency, its val top-1 minus 5 points), and the fastest searched trial within the accuracy budget on validation
(its predicted latency and its test top-1 change from the uncompressed model)::

    python bench/sampler_ab.py --every 4 \
        --study gp=sqlite:////work/runs/cmp-mb/studies.db:mobilenetv2_100-fashion-mnist-pixel7-cpu \
        --study gp-local=sqlite:////work/runs/cmp-mb-local/studies.db:mobilenetv2_100-fashion-mnist-pixel7-cpu
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ACCURACY_FLOOR, Point, hypervolume, markdown_table, reference_point


def searched_rows(storage: str, name: str) -> tuple[list, list, Point]:
    """The study's fixed-recipe records, its searched records in trial order (finished ones), and its reference."""
    import optuna

    from search.study.records import records

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage)
    done = [r for r in records(study) if r.state == "COMPLETE"]
    return [r for r in done if r.strategy], [r for r in done if not r.strategy], reference_point(study)


def fastest_in_budget(rows: list, reference_val: float, budget: float) -> str:
    """The fastest row within ``budget`` points of ``reference_val`` (val top-1, %) on validation: its latency, trial
    number and test top-1."""
    inside = [r for r in rows if reference_val - 100 * r.metrics["val_top1"] <= budget]
    if not inside:
        return "none"
    best = min(inside, key=lambda r: r.metrics["latency_ms"])
    test = best.metrics.get("test_top1")
    return f"{best.metrics['latency_ms']:.3f} ms (trial {best.number})" + (f", test {100 * test:.2f}" if test else "")


def main() -> None:
    """Print the side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", action="append", required=True, help="LABEL=STORAGE_URL:STUDY_NAME")
    parser.add_argument("--every", type=int, default=5, help="searched trials between rows")
    parser.add_argument("--budget", type=float, default=1.0, help="accuracy budget, val points")
    args = parser.parse_args()
    table = []
    for spec in args.study:
        label, _, rest = spec.partition("=")
        storage, _, name = rest.rpartition(":")
        recipes, searched, reference = searched_rows(storage, name)
        uncompressed = reference.accuracy + ACCURACY_FLOOR
        for k in [*range(0, len(searched), args.every), len(searched)]:
            seen = recipes + searched[:k]
            points = [Point(100 * r.metrics["val_top1"], r.metrics["latency_ms"]) for r in seen]
            table.append(
                {
                    "sampler": label,
                    "searched trials": k,
                    "hypervolume (val)": round(hypervolume(points, reference), 3),
                    "fastest searched within budget": fastest_in_budget(searched[:k], uncompressed, args.budget),
                    "fastest any within budget": fastest_in_budget(seen, uncompressed, args.budget),
                }
            )
    print("\n".join(markdown_table("", table)))


if __name__ == "__main__":
    main()
