"""Which baseline recipe learns fastest within a short budget? (a script; its output is quoted in docs/baselines.md)

Trains one model from the same seed with each variant of the baseline recipe (``--variant KEY=VALUE,...``, any
``spaces.finetune.TrainRecipe`` field) on a seeded subset of the train split, and prints the mean training loss of
the last epoch and the validation top-1 (in torch) of each.

    python bench/train_recipe.py --model mobilenetv2_100 --input-size 64 --train-size 15000 --epochs 2 \\
        --variant lr=0.002,crop=True,flip=True --variant lr=0.002 --variant lr=0.01
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import host_line


def parse_variant(text: str) -> dict[str, object]:
    """``lr=0.01,crop=True`` -> ``{"lr": 0.01, "crop": True}``."""
    pairs = (item.split("=", 1) for item in text.split(",") if item)
    return {key.strip(): ast.literal_eval(value.strip()) for key, value in pairs}


def main() -> None:
    """Train once per variant and print what each reached."""
    import torch

    from search.data import load_splits, parse_data
    from search.models import baseline_recipe, build_model
    from spaces.finetune import fit, top1

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--train-size", type=int, default=15000, help="images of the train part (validation carved)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--variant", action="append", type=parse_variant, required=True)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    data = parse_data(args.data, args.input_size, 0, args.train_size)
    splits = load_splits(data)
    print(f"{args.model} at {args.input_size} px, {len(splits.train)} train images, {args.epochs} epochs; {host_line()}")
    for variant in args.variant:
        torch.manual_seed(0)
        model = build_model(args.model, splits.num_classes)
        recipe = baseline_recipe(data, args.epochs, model, len(splits.train), **{"ema_decay": 0.0, **variant})
        started = time.perf_counter()
        progress = fit(model, splits.train, recipe, 0)
        print(
            f"{variant}: last-epoch loss {progress.losses[-1]:.3f}, val top-1 {100 * top1(model, splits.val):.2f}% "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
