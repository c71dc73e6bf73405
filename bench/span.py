"""Does the searched front span the fixed recipes' range? (a script, not a test: quoted in docs/benchmarks.md)

Runs the default study of a model (`search run --model M`, the default trial budget) and every fixed recipe
alone (`search run --strategy ...`) on the same baseline, then compares the fastest point within the
accuracy budget (val top-1 at most --budget points below the uncompressed model) of each: the front's
should be at least as fast as the fastest fixed recipe's.

    python bench/span.py --model resnet18
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import host_line, markdown_table, run_quietly
from search.config import RunConfig


def fastest_in_budget(study_name: str, storage: str, budget: float) -> dict[str, object]:
    """The fastest completed trial of the study within ``budget`` points of its uncompressed val top-1."""
    import optuna

    from search.study import records, uncompressed

    study = optuna.load_study(study_name=study_name, storage=storage)
    reference = uncompressed(study)
    assert reference is not None
    floor = reference.metrics["val_top1"] - budget / 100
    within = [r for r in records(study, ("COMPLETE",)) if r.metrics["val_top1"] >= floor]
    best = min(within, key=lambda r: (r.metrics["latency_ms"], r.number))
    return {
        "study": study_name,
        "trials": len(study.trials),
        "fastest in budget": f"{best.number} ({best.strategy or 'searched'})",
        "val top-1 %": round(100 * best.metrics["val_top1"], 2),
        "test top-1 %": round(100 * best.metrics["test_top1"], 2) if "test_top1" in best.metrics else "not scored",
        "latency ms": round(best.metrics["latency_ms"], 4),
        "speed-up": f"{reference.metrics['latency_ms'] / best.metrics['latency_ms']:.2f}x",
        "uncompressed val %": round(100 * reference.metrics["val_top1"], 2),
    }


def main() -> None:
    """Run both studies (resumable), print and write the comparison."""
    from spaces.strategies import STRATEGIES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--hw", default="pixel7")
    parser.add_argument("--trials", type=int, default=RunConfig.trials)
    parser.add_argument("--budget", type=float, default=1.5, help="accuracy budget, val points below uncompressed")
    parser.add_argument("--out", type=Path, default=Path("bench/out/span"))
    args = parser.parse_args()
    out = args.out / args.model
    storage = f"sqlite:///{out / 'studies.db'}"
    base = RunConfig(hw=args.hw, model=args.model, run_dir=str(out), storage=storage, trials=args.trials)
    searched = replace(base, study_name=f"{args.model}-search")
    recipes = replace(base, study_name=f"{args.model}-recipes", strategies=tuple(STRATEGIES.names()), search=False)
    rows = []
    for config in (searched, recipes):
        assert config.study_name is not None
        run_quietly(config, out / "logs" / f"{config.study_name}.log")
        rows.append(fastest_in_budget(config.study_name, storage, args.budget))
    lines = markdown_table(f"{args.model} on {base.data}, {args.hw}, budget {args.budget} val points; host: {host_line()}", rows)
    (out / "span.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
