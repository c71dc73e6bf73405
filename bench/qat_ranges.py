"""Why QAT's input ranges widen to every training batch: one plan, its fine-tune under each range rule.

MobileNetV2 on Fashion-MNIST (2,000 training images, the baseline bench/qat.py caches), every group pruned by
50%, every quantizable layer INT8, 3 fine-tune epochs, recipe seed 0. The pruned model is fine-tuned once per
variant: in FP32; with the weights alone fake-quantized (``spaces.qat``'s per-channel grid); with the inputs alone
fake-quantized under each range rule (kept at the eval-mode calibration range; a moving average from it, as
QAT first did; a moving average started from the first training batch; a running min/max, as ``spaces.qat`` does
now); with both as ``spaces.qat.fake_quantized`` does. Printed: test top-1 in torch with the quantizers still on
and after they are removed (FP32).

    python bench/qat_ranges.py          # about 2 min with the baseline cached; 2 threads
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MOMENTUM = 0.01  # torch.ao's averaging constant, what the first QAT used


def range_rule(name: str) -> Callable[[dict, float, float], None]:
    """How a training batch's (min, max) updates an input's ``state`` range under the rule ``name``."""

    def fixed(state: dict, low: float, high: float) -> None:
        return None

    def average(state: dict, low: float, high: float) -> None:
        state["low"] += MOMENTUM * (low - state["low"])
        state["high"] += MOMENTUM * (high - state["high"])

    def average_from_training(state: dict, low: float, high: float) -> None:
        if not state.pop("calibrated", False):
            average(state, low, high)
        else:
            state.update(low=low, high=high)

    def running(state: dict, low: float, high: float) -> None:
        state.update(low=min(state["low"], low), high=max(state["high"], high))

    rules = {"fixed": fixed, "average": average, "average-from-training": average_from_training, "running": running}
    return rules[name]


@contextlib.contextmanager
def quantized(model, layers: list[str], images, weights: bool, rule: str | None) -> Iterator[None]:
    """Fake-quantize ``layers``' weights (if ``weights``) and inputs (under ``rule``, if given)."""
    import torch
    from torch.nn.utils import parametrize

    from spaces import qat

    modules = {name: model.get_submodule(name) for name in layers}
    ranges = qat.input_ranges(model, modules, images)
    handles = []
    for name, module in modules.items():
        if rule is not None:
            state = {"low": ranges[name][0], "high": ranges[name][1], "calibrated": True}
            update = range_rule(rule)

            def hook(module, args, state=state, update=update):
                x = args[0]
                if module.training:
                    update(state, float(x.detach().min()), float(x.detach().max()))
                scale, zero = qat._affine(state["low"], state["high"])
                return (torch.fake_quantize_per_tensor_affine(x, scale, zero, qat.QMIN, qat.QMAX), *args[1:])

            handles.append(module.register_forward_pre_hook(hook))
        if weights:
            parametrize.register_parametrization(module, "weight", qat._per_channel_int8())
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        if weights:
            for module in modules.values():
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)


def main() -> int:
    """Fine-tune the pruned plan under each variant and print its test accuracy."""
    import torch

    from bench.common import host_line
    from search.data import load_splits, parse_data
    from search.models import baseline_recipe, build_model, prepare_weights
    from search.worker import limit_threads
    from spaces.analysis import analyse
    from spaces.apply import plan_calibration_images, prune_and_recover, quantizable_layers
    from spaces.finetune import train
    from spaces.plan import Recipe
    from spaces.qat import fake_quantized
    from spaces.space import SearchSpace

    limit_threads(2)
    data = parse_data("fashion-mnist", None, 0, 2000)
    splits = load_splits(data)
    cache = ROOT / "bench" / "out" / "qat" / "baselines"
    model = prepare_weights(
        "mobilenetv2_100",
        splits,
        data,
        cache,
        baseline_recipe(data, 15, build_model("mobilenetv2_100", splits.num_classes), len(splits.train)),
        log=print,
    ).model.eval()
    size = data.input_size
    space = SearchSpace.build(
        analyse(model, torch.zeros(1, 3, size, size)), ["fp32", "int8"], quantizable_layers(model, splits.train, size)
    )
    plan = replace(space.uniform(0.5, "int8"), recipe=Recipe(finetune_epochs=0, seed=0))
    pruned = prune_and_recover(plan, model, splits.train, size)
    layers, images = plan.layers_in("int8"), plan_calibration_images(plan, splits.train)
    test = splits.test
    inputs = torch.stack([test[i][0] for i in range(len(test))])
    labels = torch.tensor([int(test[i][1]) for i in range(len(test))])

    def top1(candidate) -> float:
        candidate.eval()
        with torch.no_grad():
            logits = torch.cat([candidate(inputs[i : i + 256]) for i in range(0, len(inputs), 256)])
        return 100 * float((logits.argmax(1) == labels).float().mean())

    print(f"MobileNetV2 / Fashion-MNIST, 50% pruned, {len(layers)} layers INT8, 3 epochs, seed 0; {host_line()}")
    variants: list[tuple[str, bool, str | None]] = [("fp32", False, None), ("weights only", True, None)]
    variants += [(f"inputs only, {rule}", False, rule) for rule in ("fixed", "average", "average-from-training", "running")]
    variants += [("weights and inputs: spaces.qat as shipped", True, "shipped")]
    for name, weights, rule in variants:
        candidate, start = copy.deepcopy(pruned), time.perf_counter()
        block = (
            fake_quantized(candidate, layers, images)
            if rule == "shipped"
            else quantized(candidate, layers, images, weights, rule)
        )
        with block:
            train(candidate, splits.train, 3, Recipe().finetune_lr, 0)
            inside = top1(candidate)
        print(f"{name:45s} quantized {inside:6.2f}  FP32 after {top1(candidate):6.2f}  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
