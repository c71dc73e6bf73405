"""Random compressed candidates of a model (random per-group prune ratios and per-layer precisions).

Latency does not depend on the weights, so candidates are built from random
weights without training: used to calibrate the host profile and to check
its predictions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Candidate:
    """One compressed graph and how it was drawn."""

    label: str
    onnx_bytes: bytes
    input_size: int


def random_candidates(
    model: nn.Module,
    label: str,
    count: int,
    seed: int,
    input_size: int = 224,
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8"),
) -> Iterator[Candidate]:
    """``count`` candidates of ``model`` (named ``label``): uniform-precision ones and per-layer mixes, half pruned."""
    import torch
    from torch.utils.data import TensorDataset

    from spaces.analysis import analyse
    from spaces.apply import apply
    from spaces.plan import Recipe
    from spaces.space import SearchSpace

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
        graph = apply(space.plan(group_ratios, layer_precisions), model, data, input_size, analysis=analysis)
        yield Candidate(f"{label}/{mode}{'/pruned' if pruned else ''}/{i}", graph.SerializeToString(), input_size)
