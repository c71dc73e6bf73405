"""QAT against PTQ on aggressive plans: accuracy of the shipped ONNX graph and the seconds each recovery takes.

For each model and data set: the uncompressed model (trained here, cached in --run-dir like `search run`), then
plans that prune every group by each ratio with every quantizable layer INT8, each realised twice from the same
weights: ``ptq`` (fine-tune in FP32, then NNCF's post-training INT8) and ``qat`` (the same fine-tune with the INT8
layers fake-quantized, then the same post-training INT8 of the exported graph); beside them the same pruning
left in FP32 (``fp32``: what the INT8 layers cost is its difference to ``ptq``). Each with every recipe seed.
Accuracy is the ONNX graph's in onnxruntime (validation and test); time is the wall time of the whole realisation on one thread.

    python bench/qat.py                                   # small_cnn on digits, hl_cnn on Fashion-MNIST
    python bench/qat.py --cases mobilenetv2_100:fashion-mnist --ratios 0.5 --train-size 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    """Print, per case and plan, the accuracy and time of PTQ and of QAT."""
    import torch

    from bench.common import host_line, markdown_table
    from evaluators.onnx_runtime import evaluate, session
    from search.data import load_splits, parse_data
    from search.models import baseline_recipe, build_model, prepare_weights
    from search.worker import limit_threads
    from spaces.analysis import analyse
    from spaces.apply import quantizable_layers, realise
    from spaces.onnx_export import export_onnx
    from spaces.plan import Recipe
    from spaces.space import SearchSpace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="small_cnn:digits,hl_cnn:fashion-mnist", help="MODEL:DATA, comma separated")
    parser.add_argument("--ratios", default="0.5,0.75", help="prune ratios of the plans (every group, every layer INT8)")
    parser.add_argument("--train-size", type=int, default=2000, help="training images of sets with their own test set")
    parser.add_argument("--baseline-epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0,1", help="recipe seeds (fine-tune order, calibration images)")
    parser.add_argument("--run-dir", default="bench/out/qat", help="baselines are cached here")
    args = parser.parse_args()
    limit_threads(1)
    rows = []
    for case in args.cases.split(","):
        model_name, _, data_name = case.partition(":")
        train_size = None if data_name == "digits" else args.train_size
        data = parse_data(data_name, None, 0, train_size)
        splits = load_splits(data)
        cache = Path(args.run_dir) / "baselines"
        baseline = prepare_weights(
            model_name,
            splits,
            data,
            cache,
            baseline_recipe(data, args.baseline_epochs, build_model(model_name, splits.num_classes), len(splits.train)),
            log=print,
        )
        model, size = baseline.model.eval(), data.input_size
        reference = evaluate(session(export_onnx(model, size).SerializeToString()), splits.test)["top1"]
        recipe = Recipe(finetune_epochs=args.finetune_epochs)
        space = SearchSpace.build(
            analyse(model, torch.zeros(1, 3, size, size)), ["fp32", "int8"], quantizable_layers(model, splits.train, size)
        )
        for ratio in (float(r) for r in args.ratios.split(",")):
            int8 = space.uniform(ratio, "int8")
            for seed in (int(x) for x in args.seeds.split(",")):
                for recovery, plan in (("fp32", space.uniform(ratio)), ("ptq", int8), ("qat", int8)):
                    chosen = replace(recipe, recovery="ptq" if recovery == "fp32" else recovery, seed=seed)
                    start = time.perf_counter()
                    graph = realise(replace(plan, recipe=chosen), model, splits.train, size).graph
                    seconds = time.perf_counter() - start
                    sess = session(graph.SerializeToString())
                    val, test = evaluate(sess, splits.val)["top1"], evaluate(sess, splits.test)["top1"]
                    rows.append(
                        {
                            "model": model_name,
                            "data": data_name,
                            "prune": ratio,
                            "int8_layers": len(plan.layers_in("int8")),
                            "recovery": recovery,
                            "seed": seed,
                            "val_top1": round(100 * val, 2),
                            "test_top1": round(100 * test, 2),
                            "test_vs_uncompressed": round(100 * (test - reference), 2),
                            "seconds": round(seconds, 1),
                        }
                    )
                    print(rows[-1], flush=True)
    title = f"QAT vs PTQ, {args.finetune_epochs} fine-tune epochs, 1 thread; {host_line()}"
    print("\n".join(markdown_table(title, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
