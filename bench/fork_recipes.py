"""A second search from the same warm start: copy a compare's fixed-recipe trials into a new run folder.

The fixed recipes of a study at full fidelity cost as much as its first ten searched trials. To compare two
samplers on one model, fork the study after its recipes: the new folder holds a study of the same name with the
recipe trials alone (parameters, values, constraints, attributes, their ONNX files), the study's sensitivity table
and the baseline (hard links), so that ``search compare --out NEW --sampler OTHER`` resumes it and searches::

    python bench/fork_recipes.py --run /work/runs/cmp-mb --study mobilenetv2_100-fashion-mnist-pixel7-cpu \
        --out /work/runs/cmp-mb-local --sampler gp-local
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from search.study.records import STRATEGY


def link_tree(source: Path, target: Path, keep: set[str] | None = None) -> None:
    """Hard-link every file under ``source`` into ``target`` (only the names in ``keep`` at the top, if given)."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if keep is not None and relative.parts[0] not in keep:
            continue
        if path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target / relative)


def main() -> None:
    """Write the forked run folder."""
    import optuna
    from optuna.trial import TrialState, create_trial

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the compare's --out folder")
    parser.add_argument("--study", required=True)
    parser.add_argument("--out", type=Path, required=True, help="the new run folder (must not exist)")
    parser.add_argument("--sampler", required=True, help="recorded as the study's sampler")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists: name a new folder")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = optuna.load_study(study_name=args.study, storage=f"sqlite:///{args.run / 'studies.db'}")
    recipes = [t for t in source.trials if t.state == TrialState.COMPLETE and t.user_attrs.get(STRATEGY)]
    args.out.mkdir(parents=True)
    link_tree(args.run / "baselines", args.out / "baselines")
    keep = {"sensitivity.json"}
    link_tree(args.run / args.study, args.out / args.study, keep)
    trials = args.out / args.study / "trials"
    trials.mkdir(parents=True)
    study = optuna.create_study(
        study_name=args.study, storage=f"sqlite:///{args.out / 'studies.db'}", directions=source.directions
    )
    for key, value in {**source.user_attrs, "sampler": args.sampler}.items():
        if not key.startswith("compare_"):
            study.set_user_attr(key, value)
    for number, t in enumerate(recipes):
        onnx = args.run / args.study / "trials" / f"{t.number:05d}.onnx"
        attrs = dict(t.user_attrs)
        if onnx.exists():
            shutil.copy2(onnx, trials / f"{number:05d}.onnx")
            attrs["onnx"] = str(trials / f"{number:05d}.onnx")
        study.add_trial(
            create_trial(
                params=t.params, distributions=t.distributions, values=t.values, user_attrs=attrs, system_attrs=t.system_attrs
            )
        )
    print(f"{args.out}: study {args.study} with {len(recipes)} fixed-recipe trials of {len(source.trials)}")


if __name__ == "__main__":
    main()
