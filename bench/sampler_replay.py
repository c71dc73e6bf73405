"""Where a sampler goes next, given the first k trials of a finished study: costs read on a linear or a log scale.

No trial is run. For each prefix of the study's completed trials and each sampler seed, a fresh in-memory study
receives those trials (parameters, values, constraints) and the sampler is asked for one more point; the point is
summarised by its mean prune ratio (a segmented space's global ratio) and its precisions. It shows what the
sampler would try next from the same evidence, the only difference being the scale of the costs::

    python bench/sampler_replay.py --storage sqlite:///runs/cmp/studies.db --study resnet18-fashion-mnist-pixel7-cpu
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter

from core.samplers import COST_SCALES, SAMPLERS, default_population, make_sampler
from search.study.records import STRATEGY
from spaces.segmented import GLOBAL_PRUNE, SEGMENT_PREFIX
from spaces.space import PRECISION_PREFIX, PRUNE_PREFIX


def summary(params: dict[str, object]) -> str:
    """A point in a few characters: prune ratio (global, or mean over groups) and the precisions by count."""
    if GLOBAL_PRUNE in params:
        prune = float(params[GLOBAL_PRUNE])  # type: ignore[arg-type]
    else:
        ratios = [float(v) for k, v in params.items() if k.startswith(PRUNE_PREFIX)]  # type: ignore[arg-type]
        prune = sum(ratios) / len(ratios) if ratios else 0.0
    precisions = Counter(str(v) for k, v in params.items() if k.startswith((PRECISION_PREFIX, SEGMENT_PREFIX)))
    return f"p{prune:.2f}/" + "+".join(f"{n}{name}" for name, n in precisions.most_common())


def main() -> None:
    """Print, per prefix length and cost scale, the next point of each sampler seed."""
    import optuna
    from optuna.trial import TrialState, create_trial

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", required=True, help="Optuna storage URL of the finished study")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--sampler", default="gp", choices=SAMPLERS.names())
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--step", type=int, default=2, help="prefix lengths from the first searched trial by this step")
    parser.add_argument("--population", type=int, help="startup trials / NSGA-II population (default: as the study's run)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    source = optuna.load_study(study_name=args.study, storage=args.storage)
    done = [t for t in source.trials if t.state == TrialState.COMPLETE]
    first = next((i for i, t in enumerate(done) if not t.user_attrs.get(STRATEGY)), len(done))
    widest = max(done, key=lambda t: len(t.distributions)).distributions
    population = args.population or default_population(len(source.trials))
    print(f"{args.study}: {len(done)} completed trials, the first {first} fixed recipes; next point per seed")
    for k in range(max(first, 1), len(done), args.step):
        for scale in COST_SCALES:
            points = []
            for seed in range(args.seeds):
                study = optuna.create_study(
                    directions=source.directions, sampler=make_sampler(args.sampler, seed, population, scale)
                )
                for t in done[:k]:
                    study.add_trial(
                        create_trial(params=t.params, distributions=t.distributions, values=t.values, system_attrs=t.system_attrs)
                    )
                points.append(summary(study.ask(fixed_distributions=widest).params))
            print(f"after {k:3d} {scale:6s} " + "  ".join(points))


if __name__ == "__main__":
    main()
