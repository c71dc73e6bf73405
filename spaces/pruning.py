"""Structured pruning: remove output channels of each coupled group for real (Torch-Pruning)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from spaces.analysis import ModelAnalysis, build_dependency_graph, compute_layers
from spaces.plan import CompressionPlan, PlanError

if TYPE_CHECKING:
    import torch
    from torch import nn


def group_ratios(plan: CompressionPlan, analysis: ModelAnalysis) -> dict[str, float]:
    """Prune ratio per group root; every member of a group must carry the same ratio.

    Raises:
        PlanError: coupled layers disagree, or a layer that cannot be pruned has a ratio.
    """
    ratios: dict[str, float] = {}
    for group in analysis.groups:
        values = {plan.layers[m].prune_ratio for m in group.members if m in plan.layers}
        if len(values) > 1:
            raise PlanError(f"coupled layers {', '.join(group.members)} must share one prune ratio, got {sorted(values)}")
        ratios[group.root] = values.pop() if values else 0.0
    grouped = {m for g in analysis.groups for m in g.members}
    for name, layer_plan in plan.layers.items():
        if layer_plan.prune_ratio > 0 and name not in grouped:
            raise PlanError(f"layer '{name}' cannot be pruned (classifier or no output channels to remove)")
    return ratios


def channels_to_keep(channels: int, ratio: float, round_to: int) -> int:
    """Channels left after removing ``ratio`` of them, rounded up to a multiple of ``round_to``, at least 1."""
    keep = math.ceil(channels * (1.0 - ratio) / round_to) * round_to
    return max(1, min(channels, keep))


def prune(model: nn.Module, ratios: dict[str, float], example_input: torch.Tensor, round_to: int) -> None:
    """Remove the least important (L2 magnitude over the group) output channels of each group, in place.

    Args:
        model: Model to prune; its layers shrink.
        ratios: Group root name -> share of output channels to remove.
        example_input: One input batch, used to trace the graph.
        round_to: Keep channel counts multiples of this (hardware-friendly widths).
    """
    import torch_pruning as tp

    if not any(ratios.values()):
        return
    layers = compute_layers(model)
    graph = build_dependency_graph(model, example_input)
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    for root_name, ratio in ratios.items():
        if ratio <= 0:
            continue
        root = layers[root_name]
        pruner = graph.get_pruner_of_module(root)
        channels = pruner.get_out_channels(root)
        n_remove = channels - channels_to_keep(channels, ratio, round_to)
        if n_remove <= 0:
            continue
        group = graph.get_pruning_group(root, pruner.prune_out_channels, idxs=list(range(channels)))
        scores = importance(group)
        weakest = scores.argsort()[:n_remove].tolist()
        graph.get_pruning_group(root, pruner.prune_out_channels, idxs=sorted(weakest)).prune()
