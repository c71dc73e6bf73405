"""Random compressed candidates of a model (random per-group prune ratios and per-layer precisions).

Latency does not depend on the weights, so candidates are built from random
weights without training: used to calibrate the host profile
(``evaluators.host_calibration``) and to check its predictions (benchmarks).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.precisions import precision_names
from evaluators.host_calibration import Candidate

if TYPE_CHECKING:
    from torch import nn

    from spaces.apply import Realised
    from spaces.finetune import ImageDataset
    from spaces.plan import CompressionPlan

# Architectures of the host calibration, besides the op zoo; the host benchmark checks others.
CALIBRATION_MODELS = ("mnasnet_100", "mobilenetv1_100", "resnet34")


@dataclass(frozen=True)
class RandomPlan:
    """One random compressed candidate: its label, plan and realisation, and the images it was calibrated on."""

    label: str
    plan: CompressionPlan
    realised: Realised
    data: ImageDataset
    input_size: int


def random_plans(
    model: nn.Module,
    label: str,
    count: int,
    seed: int,
    input_size: int = 224,
    precisions: tuple[str, ...] | None = None,
    mode: str | None = None,
) -> Iterator[RandomPlan]:
    """``count`` random plans of ``model`` (named ``label``), realised: uniform-precision ones and per-layer mixes,
    half pruned; with ``mode`` (a precision) every plan is that precision throughout and unpruned.

    ``precisions``: those a candidate may use (default: every registered one). The weights are random, with every
    BatchNorm scale drawn away from 0: timm zero-initialises the last BatchNorm of each residual block, and a
    converter (litert-torch) folds such a dead branch away, so its latency would not be measured.
    """
    import torch
    from torch.utils.data import TensorDataset

    from spaces.analysis import analyse
    from spaces.apply import realise
    from spaces.plan import Recipe
    from spaces.space import SearchSpace

    precisions = precisions or tuple(precision_names())
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
    analysis = analyse(model, torch.zeros(1, 3, input_size, input_size))
    space = SearchSpace.build(
        analysis, list(precisions), set(analysis.layers), recipe=Recipe(finetune_epochs=0, calibration_size=32)
    )
    data = TensorDataset(torch.randn(32, 3, input_size, input_size), torch.zeros(32, dtype=torch.long))
    ratios = [space.prune_step * i for i in range(int(space.max_prune / space.prune_step) + 1)]
    for i in range(count):
        drawn = mode or rng.choice([*precisions, "mixed", "mixed"])
        pruned = mode is None and rng.random() < 0.5
        group_ratios = {g.root: rng.choice(ratios) if pruned else 0.0 for g in analysis.groups}
        layer_precisions = {  # uniform modes fall back to a layer's first choice where the precision is not offered
            layer: rng.choice(choices) if drawn == "mixed" else (drawn if drawn in choices else choices[0])
            for layer, choices in space.precisions.items()
        }
        plan = space.plan(group_ratios, layer_precisions)
        realised = realise(plan, model, data, input_size, analysis=analysis)
        yield RandomPlan(f"{label}/{drawn}{'/pruned' if pruned else ''}/{i}", plan, realised, data, input_size)


def as_candidate(drawn: RandomPlan) -> Candidate:
    """A random plan's ONNX graph, as the onnxruntime host calibration measures it."""
    return Candidate(drawn.label, drawn.realised.graph.SerializeToString(), drawn.input_size)


def op_zoo(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    """Micro-benchmark network: a stack of odd-shaped layers (7x7 stem, unaligned channels, 5x5 depthwise, max pooling)."""
    from torch import nn

    def block(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(in_chans, 20, 7, 2),  # a 7x7 stem beside the 3x3 ones of the models: separates per-MAC from per-output cost
        *block(20, 20, 3, groups=20),
        *block(20, 60, 1),
        *block(60, 60, 5, 2, groups=60),
        *block(60, 100, 1),
        nn.MaxPool2d(3, 2, 1),
        *block(100, 100, 3),
        *block(100, 250, 1),
        *block(250, 250, 3, 2, groups=250),
        *block(250, 72, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(72, num_classes),
    )


# Kernel micro-benchmarks of a whole-graph calibration: (kind, channels, input size). Each is a stack of four
# layers of one kind, so its time is that kernel's; large and small inputs separate the per-MAC rate from the
# per-byte one (a 4x4 input leaves the weights to read from memory).
MICRO_KERNELS = (
    ("depthwise", 128, 56),
    ("depthwise", 512, 14),
    ("pointwise", 128, 56),
    ("pointwise", 512, 14),
    ("pointwise", 1024, 4),
    ("conv3x3", 64, 56),
    ("conv3x3", 256, 14),
    ("conv3x3", 512, 4),
)


def micro_kernel(kind: str, channels: int, num_classes: int = 10) -> nn.Module:
    """A stem, four layers of ``kind`` (depthwise 3x3, pointwise, or full 3x3 conv) with ``channels`` channels,
    and a small classifier: the time of a :data:`MICRO_KERNELS` benchmark is that kind's."""
    from torch import nn

    def layer() -> nn.Conv2d:
        if kind == "depthwise":
            return nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
        return nn.Conv2d(channels, channels, 1) if kind == "pointwise" else nn.Conv2d(channels, channels, 3, 1, 1)

    body = [module for _ in range(4) for module in (layer(), nn.ReLU())]
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(nn.Conv2d(3, channels, 1), nn.ReLU(), *body, *head)


def micro_plans(seed: int, precisions: tuple[str, ...]) -> Iterator[RandomPlan]:
    """Each :data:`MICRO_KERNELS` benchmark in each of ``precisions`` throughout, unpruned."""
    for kind, channels, size in MICRO_KERNELS:
        for precision in precisions:
            label = f"{kind}-{channels}"
            yield from random_plans(micro_kernel(kind, channels), label, 1, seed, size, precisions, mode=precision)


def calibration_plans(
    per_model: int, seed: int, input_size: int, precisions: tuple[str, ...]
) -> tuple[Iterator[RandomPlan], list[str]]:
    """Random plans of the op zoo and :data:`CALIBRATION_MODELS` (drawn lazily), and the architectures."""
    from itertools import chain

    from search.models import build_model

    models = [("op_zoo", op_zoo()), *((name, build_model(name, 1000)) for name in CALIBRATION_MODELS)]
    plans = chain.from_iterable(random_plans(model, label, per_model, seed, input_size, precisions) for label, model in models)
    return plans, [label for label, _ in models]


def calibration_candidates(
    per_model: int, seed: int, input_size: int, precisions: tuple[str, ...]
) -> tuple[list[Candidate], list[str]]:
    """The ONNX graphs of :func:`calibration_plans`, as the onnxruntime host calibration measures them."""
    plans, architectures = calibration_plans(per_model, seed, input_size, precisions)
    return [as_candidate(drawn) for drawn in plans], architectures
