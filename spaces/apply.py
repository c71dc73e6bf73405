"""Realise a CompressionPlan: prune, recover, export, quantize and convert, into one checked ONNX graph."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.precisions import precision_names
from spaces.analysis import ModelAnalysis, analyse
from spaces.plan import CompressionPlan, PlanError

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from core.timing import Stages
    from spaces.finetune import ImageDataset


def calibration_images(dataset: ImageDataset, count: int, seed: int) -> np.ndarray:
    """``count`` images drawn (seeded) from ``dataset``, as one float32 array."""
    import torch

    order = np.random.default_rng(seed).permutation(len(dataset))[: min(count, len(dataset))]
    return torch.stack([dataset[int(i)][0] for i in order]).numpy().astype(np.float32)


def check_plan_fits(plan: CompressionPlan, analysis: ModelAnalysis) -> None:
    """Raise PlanError when the plan names layers the model does not have."""
    unknown = sorted(set(plan.layers) - set(analysis.layers))
    if unknown:
        more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise PlanError(f"the plan names layers the model does not have: {', '.join(unknown[:3])}{more}")


def prune_and_recover(
    plan: CompressionPlan,
    model: nn.Module,
    train_set: ImageDataset,
    input_size: int,
    analysis: ModelAnalysis | None = None,
    stages: Stages | None = None,
    device: str = "cpu",
) -> nn.Module:
    """The plan's FP32 candidate: a copy of ``model`` (left untouched) with each coupled group's channels removed
    (Torch-Pruning) and, when anything was pruned, a recovery fine-tune on ``train_set`` (distilled from ``model``
    if the recipe says so). With the ``qat`` recovery the fine-tune sees the INT8 layers fake-quantized
    (``spaces.qat``), and runs for an INT8 plan even when nothing was pruned. ``stages`` (if given) receives the
    seconds of analyse, prune and finetune. The fine-tune runs on ``device``."""
    import contextlib

    import torch

    from core.timing import Stages
    from spaces.finetune import reestimate_batchnorm, train
    from spaces.pruning import group_ratios, prune
    from spaces.qat import fake_quantized

    recipe = plan.recipe
    stages = stages if stages is not None else Stages()
    example = torch.zeros(1, 3, input_size, input_size)
    with stages.stage("analyse"):
        analysis = analysis or analyse(model, example)
    check_plan_fits(plan, analysis)
    ratios = group_ratios(plan, analysis)
    with stages.stage("prune"):
        candidate = copy.deepcopy(model).eval()
        torch.manual_seed(recipe.seed)
        prune(candidate, ratios, example, recipe.round_to)
    if any(ratios.values()) and recipe.bn_batches:
        with stages.stage("finetune"):
            reestimate_batchnorm(candidate, train_set, recipe.bn_batches, recipe.seed)
    int8 = plan.layers_in("int8") if recipe.recovery == "qat" else []
    if (any(ratios.values()) or int8) and (recipe.finetune_epochs > 0 or recipe.finetune_steps > 0):
        teacher = model if recipe.distill else None
        with stages.stage("finetune"):
            quantized = fake_quantized(candidate, int8, plan_calibration_images(plan, train_set)) if int8 else None
            with quantized or contextlib.nullcontext():
                train(
                    candidate, train_set, recipe.finetune_epochs, recipe.finetune_lr, recipe.seed, teacher=teacher,
                    steps=recipe.finetune_steps or None, device=device,
                )  # fmt: skip
    return candidate.eval()


def plan_calibration_images(plan: CompressionPlan, train_set: ImageDataset) -> np.ndarray:
    """The images a plan's INT8 layers are calibrated on (its recipe's count and seed), for every artifact format."""
    return calibration_images(train_set, plan.recipe.calibration_size, plan.recipe.seed)


@dataclass(frozen=True)
class Realised:
    """A plan's candidate: the recovered FP32 torch model and the ONNX graph that ships."""

    candidate: nn.Module
    graph: onnx.ModelProto


def realise(
    plan: CompressionPlan,
    model: nn.Module,
    train_set: ImageDataset,
    input_size: int,
    analysis: ModelAnalysis | None = None,
    stages: Stages | None = None,
    device: str = "cpu",
) -> Realised:
    """Build the candidate of ``plan`` from the uncompressed ``model`` (left untouched).

    Steps: :func:`prune_and_recover`; ONNX export with BatchNorm folded; INT8 layers by
    NNCF post-training quantization; FP16 layers by casts (``spaces.realise``); ``onnx.checker``.
    The plan is stored in the graph's metadata (key ``compression_plan``). ``stages`` (if given) receives the
    seconds of each step: analyse, prune, finetune, export, precisions. The fine-tune runs on ``device``.
    """
    import onnx

    from core.timing import Stages
    from spaces.onnx_export import export_onnx
    from spaces.realise import Calibration, realise_precisions

    stages = stages if stages is not None else Stages()
    candidate = prune_and_recover(plan, model, train_set, input_size, analysis, stages, device)
    with stages.stage("export"):
        graph = export_onnx(candidate, input_size)
    layers = {name: plan.layers_in(name) for name in precision_names()}
    calibration = Calibration(lambda: plan_calibration_images(plan, train_set), quantizer=plan.recipe.quantizer)
    with stages.stage("precisions"):
        graph = realise_precisions(graph, layers, calibration)
        onnx.checker.check_model(graph)
    entry = graph.metadata_props.add()
    entry.key, entry.value = "compression_plan", json.dumps(plan.to_dict(), sort_keys=True)
    return Realised(candidate, graph)


def quantizable_layers(model: nn.Module, train_set: ImageDataset, input_size: int, calibration: int = 16) -> set[str]:
    """Layers NNCF actually quantizes when asked to quantize all of them (it skips some patterns, e.g. SE convs)."""
    from spaces.onnx_export import compute_node_names, export_onnx
    from spaces.quantize import quantize_int8, quantized_nodes

    graph = export_onnx(copy.deepcopy(model).eval(), input_size)
    names = compute_node_names(graph)
    quantized = quantize_int8(graph, calibration_images(train_set, calibration, 0), names)
    return quantized_nodes(quantized) & set(names)


__all__ = [
    "PlanError",
    "calibration_images",
    "check_plan_fits",
    "plan_calibration_images",
    "prune_and_recover",
    "quantizable_layers",
    "realise",
]
