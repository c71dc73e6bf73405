"""Random compressed candidates of a model (random per-group prune ratios and per-layer precisions).

Latency does not depend on the weights, so candidates are built from random
weights without training: used to calibrate the host profile
(``evaluators.host_calibration``) and to check its predictions (benchmarks).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

from core.precisions import precision_names
from evaluators.host_calibration import Candidate

if TYPE_CHECKING:
    from torch import nn

# Architectures of the host calibration, besides the op zoo; the host benchmark checks others.
CALIBRATION_MODELS = ("mnasnet_100", "mobilenetv1_100", "resnet34")


def random_candidates(
    model: nn.Module,
    label: str,
    count: int,
    seed: int,
    input_size: int = 224,
    precisions: tuple[str, ...] | None = None,
) -> Iterator[Candidate]:
    """``count`` candidates of ``model`` (named ``label``): uniform-precision ones and per-layer mixes, half pruned.

    ``precisions``: those a candidate may use (default: every registered one).
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
    analysis = analyse(model, torch.zeros(1, 3, input_size, input_size))
    space = SearchSpace.build(
        analysis, list(precisions), set(analysis.layers), recipe=Recipe(finetune_epochs=0, calibration_size=32)
    )
    data = TensorDataset(torch.randn(32, 3, input_size, input_size), torch.zeros(32, dtype=torch.long))
    ratios = [space.prune_step * i for i in range(int(space.max_prune / space.prune_step) + 1)]
    for i in range(count):
        mode = rng.choice([*precisions, "mixed", "mixed"])
        pruned = rng.random() < 0.5
        group_ratios = {g.root: rng.choice(ratios) if pruned else 0.0 for g in analysis.groups}
        layer_precisions = {  # uniform modes fall back to a layer's first choice where the precision is not offered
            layer: rng.choice(choices) if mode == "mixed" else (mode if mode in choices else choices[0])
            for layer, choices in space.precisions.items()
        }
        graph = realise(space.plan(group_ratios, layer_precisions), model, data, input_size, analysis=analysis).graph
        yield Candidate(f"{label}/{mode}{'/pruned' if pruned else ''}/{i}", graph.SerializeToString(), input_size)


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


def calibration_candidates(
    per_model: int, seed: int, input_size: int, precisions: tuple[str, ...]
) -> tuple[list[Candidate], list[str]]:
    """Random candidates of the op zoo and :data:`CALIBRATION_MODELS` for the host calibration, and the architectures."""
    from search.models import build_model

    candidates = list(random_candidates(op_zoo(), "op_zoo", per_model, seed, input_size, precisions))
    for name in CALIBRATION_MODELS:
        candidates.extend(random_candidates(build_model(name, 1000), name, per_model, seed, input_size, precisions))
    return candidates, ["op_zoo", *CALIBRATION_MODELS]
