"""Analyse a model once: its conv/linear layers and Torch-Pruning's groups of coupled layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class PruneGroup:
    """Layers whose output channels must be pruned together; named after its first layer."""

    root: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class ModelAnalysis:
    """What the search space is built from."""

    layers: tuple[str, ...]
    groups: tuple[PruneGroup, ...]
    classifier: str

    def group_of(self, layer: str) -> PruneGroup | None:
        """The prune group that contains ``layer``, if any."""
        for group in self.groups:
            if layer in group.members:
                return group
        return None


def compute_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and linear modules by qualified name, in definition order."""
    from torch import nn

    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def find_classifier(model: nn.Module) -> str:
    """Name of the last linear (or 1x1 conv) layer: the classifier, whose outputs are never pruned."""
    names = list(compute_layers(model))
    if not names:
        raise ValueError("the model has no conv or linear layer to compress")
    return names[-1]


def _only_scalar_free_parameters(model: nn.Module) -> bool:
    """True when every parameter outside standard layers is a scalar (like HL-CNN's alpha and beta)."""
    from torch import nn

    standard = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.PReLU, nn.Embedding)
    free = [p for m in model.modules() if not isinstance(m, standard) for p in m.parameters(recurse=False)]
    return all(p.numel() == 1 for p in free)


def build_dependency_graph(model: nn.Module, example_input: torch.Tensor):
    """Torch-Pruning's DependencyGraph of ``model`` traced on ``example_input``.

    Torch-Pruning warns about parameters outside standard layers; scalars have
    no channel to prune, so the warning is kept only for real tensors.
    """
    import warnings

    import torch_pruning as tp

    with warnings.catch_warnings():
        if _only_scalar_free_parameters(model):
            warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_input)


def analyse(model: nn.Module, example_input: torch.Tensor) -> ModelAnalysis:
    """Find the compressible layers and the coupled prune groups of ``model``.

    Args:
        model: The uncompressed model (not modified).
        example_input: One input batch, used to trace the graph.
    """
    from torch import nn

    layers = compute_layers(model)
    names = {m: n for n, m in layers.items()}
    classifier = find_classifier(model)
    graph = build_dependency_graph(model, example_input)
    groups = []
    for group in graph.get_all_groups(ignored_layers=[layers[classifier]], root_module_types=(nn.Conv2d, nn.Linear)):
        members = [
            names[dep.target.module]
            for dep, _ in group
            if graph.is_out_channel_pruning_fn(dep.handler) and dep.target.module in names
        ]
        if not members:
            continue
        ordered = tuple(sorted(set(members), key=list(layers).index))
        groups.append(PruneGroup(root=ordered[0], members=ordered))
    groups.sort(key=lambda g: list(layers).index(g.root))
    return ModelAnalysis(layers=tuple(layers), groups=tuple(groups), classifier=classifier)
