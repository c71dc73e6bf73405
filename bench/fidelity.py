"""Does a cheap fidelity rank plans as the full one does? (a script; its output is quoted in docs/benchmarks.md)

For ``--plans`` plans drawn at random from a model's space (seeded; the uniform recipes left out), realise each
twice from the same uncompressed weights: at the cheap fidelity (BatchNorm re-estimated on ``--bn-batches``
batches, then ``--cheap-steps`` fine-tune steps) and at the full one (``--full-steps`` steps, optionally
distilled), and score both shipped ONNX graphs on the validation split in onnxruntime. Prints Spearman's rank
correlation of the two accuracies, the share of the full top-5 the cheap ranking's top-10 holds, and the time of
each fidelity; writes one CSV row per plan. Resumable: plans already in the CSV are skipped.

    python bench/fidelity.py --model mobilenetv2_100 --input-size 64 --checkpoint W.pt --plans 30
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import host_line
from search.study import mean_prune

FIELDS = ["plan", "mean_prune", "int8_share", "fp16_share", "cheap_val", "full_val", "cheap_s", "full_s"]


def sample_plans(space, count: int, seed: int) -> list:
    """``count`` plans drawn by Optuna's random sampler from ``space`` (seeded)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    plans = []
    for _ in range(count):
        trial = study.ask()
        plans.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return plans


def score(plan, model, splits, input_size: int) -> tuple[float, float]:
    """Validation top-1 of the plan's shipped ONNX graph, and the seconds realising and scoring it took."""
    from evaluators.onnx_runtime import evaluate, session
    from spaces.apply import realise

    started = time.perf_counter()
    graph = realise(plan, model, splits.train, input_size).graph
    accuracy = evaluate(session(graph.SerializeToString(), threads=os.cpu_count() or 1), splits.val)["top1"]
    return accuracy, time.perf_counter() - started


def main() -> None:
    """Realise every plan at both fidelities, then report the rank agreement."""
    import torch
    from scipy.stats import spearmanr

    from search.data import load_splits, parse_data
    from search.models import load_model
    from spaces.analysis import analyse
    from spaces.apply import quantizable_layers
    from spaces.plan import Recipe
    from spaces.segmented import SegmentedSpace
    from spaces.space import SearchSpace

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--checkpoint", required=True, help="the uncompressed weights (from `search train`)")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--plans", type=int, default=30)
    parser.add_argument("--space", choices=("flat", "segmented"), default="segmented")
    parser.add_argument("--bn-batches", type=int, default=20)
    parser.add_argument("--cheap-steps", type=int, default=50)
    parser.add_argument("--full-steps", type=int, default=400)
    parser.add_argument("--finetune-lr", type=float, default=Recipe.finetune_lr)
    parser.add_argument("--distill", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/fidelity"))
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    splits = load_splits(parse_data(args.data, args.input_size, 0))
    model = load_model(args.model, splits.num_classes, args.checkpoint)
    example = torch.zeros(1, 3, args.input_size, args.input_size)
    # finetune_epochs=0: a step count of 0 means no fine-tune (BatchNorm re-estimation only), not the default epochs
    full = Recipe(finetune_steps=args.full_steps, finetune_epochs=0, finetune_lr=args.finetune_lr, distill=args.distill)
    cheap = replace(full, finetune_steps=args.cheap_steps, bn_batches=args.bn_batches)
    flat = SearchSpace.build(
        analyse(model, example), ["fp32", "fp16", "int8"], quantizable_layers(model, splits.train, args.input_size),
        recipe=full,
    )  # fmt: skip
    space = SegmentedSpace.of(flat) if args.space == "segmented" else flat
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"fidelity-{args.model}-{args.input_size}px-{args.space}-{args.cheap_steps}-{args.full_steps}.csv"
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    for index, plan in enumerate(sample_plans(space, args.plans, args.seed)):
        if index < len(rows):
            continue
        cheap_val, cheap_s = score(replace(plan, recipe=cheap), model, splits, args.input_size)
        full_val, full_s = score(plan, model, splits, args.input_size)
        precisions = [lp.precision for lp in plan.layers.values()]
        row: dict[str, Any] = {
            "plan": index,
            "mean_prune": round(mean_prune(plan.to_dict()), 3),
            "int8_share": round(precisions.count("int8") / len(precisions), 3),
            "fp16_share": round(precisions.count("fp16") / len(precisions), 3),
            "cheap_val": round(100 * cheap_val, 2),
            "full_val": round(100 * full_val, 2),
            "cheap_s": round(cheap_s, 1),
            "full_s": round(full_s, 1),
        }
        rows.append(row)
        with path.open("a", newline="") as stream:
            writer = csv.DictWriter(stream, FIELDS)
            if index == 0:
                writer.writeheader()
            writer.writerow(row)
        print(row, flush=True)
    cheap_values = [float(r["cheap_val"]) for r in rows]
    full_values = [float(r["full_val"]) for r in rows]
    rho = spearmanr(cheap_values, full_values).statistic
    by_full = sorted(range(len(rows)), key=lambda i: -full_values[i])[:5]
    by_cheap = set(sorted(range(len(rows)), key=lambda i: -cheap_values[i])[:10])
    cheap_time = sum(float(r["cheap_s"]) for r in rows)
    full_time = sum(float(r["full_s"]) for r in rows)
    print(
        f"{args.model} {args.input_size} px, {len(rows)} plans ({args.space} space): Spearman {rho:.3f}; the cheap top-10 "
        f"holds {sum(i in by_cheap for i in by_full)}/5 of the full top-5; cheap {cheap_time / len(rows):.0f} s, full "
        f"{full_time / len(rows):.0f} s per plan; {host_line()}"
    )


if __name__ == "__main__":
    main()
