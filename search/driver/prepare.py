"""The uncompressed model of a run, its data, its search space and its accuracy as an FP32 ONNX graph."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from search.driver.inputs import Inputs

if TYPE_CHECKING:
    from rich.console import Console
    from torch import nn

    from search.data import Splits
    from search.models import UncompressedWeights
    from spaces.space import SearchSpace


@dataclass(frozen=True)
class Prepared:
    """The uncompressed model's weights, its data, its search space and its accuracy as an FP32 ONNX graph."""

    weights: UncompressedWeights
    splits: Splits
    space: SearchSpace
    reference: dict[str, float]


def prepare(inputs: Inputs, console: Console) -> Prepared:
    """Load or train the uncompressed model, analyse it into a space, measure its FP32 ONNX accuracy."""
    import torch

    from search.data import load_splits
    from search.models import baseline_recipe, check_input_size, load_model, prepare_weights

    config, data = inputs.config, inputs.data
    splits = load_splits(data)
    # a checkpoint that does not fit, or an input too small for the network, fails before anything is written
    model = load_model(config.model, splits.num_classes, config.checkpoint)
    check_input_size(model, config.model, data.input_size)
    inputs.run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    weights = prepare_weights(
        config.model,
        splits,
        data,
        inputs.run_dir / "baselines",
        baseline_recipe(data, config.baseline_epochs, model, len(splits.train)),
        config.checkpoint,
        config.pretrained,
        device=inputs.device,
        log=console.print,
    )
    space = build_space(inputs, weights.model, splits)
    reference = reference_accuracy(weights.model, splits, data.input_size)
    chance = 1 / splits.num_classes
    if reference["val_top1"] <= 1.5 * chance:
        console.print(
            f"warning: the uncompressed model is at chance level (val {100 * reference['val_top1']:.2f}%, chance "
            f"{100 * chance:.0f}%): every comparison below is noise; train it longer or pass a --checkpoint"
        )
    console.print(
        f"space: {len(space.analysis.groups)} prune groups, {len(space.analysis.layers)} layers "
        f"({', '.join(inputs.unit.precisions)}); uncompressed FP32 ONNX: val {100 * reference['val_top1']:.2f}%, "
        f"test {100 * reference['test_top1']:.2f}%"
    )
    return Prepared(weights, splits, space, reference)


def build_space(inputs: Inputs, model: nn.Module, splits: Splits) -> SearchSpace:
    """The search space of ``model`` on the run's unit: prune groups, the layers that can change precision, the
    recipe of the run's options."""
    import torch

    from core.precisions import precision
    from spaces.analysis import analyse
    from spaces.apply import quantizable_layers
    from spaces.plan import Recipe
    from spaces.segmented import SegmentedSpace
    from spaces.space import SearchSpace

    config, size = inputs.config, inputs.data.input_size
    probe = any(precision(p).per_layer_support for p in inputs.unit.precisions)
    quantizable = quantizable_layers(model, splits.train, size) if probe else set()
    recipe = Recipe(
        finetune_epochs=config.finetune_epochs,
        finetune_lr=config.finetune_lr,
        finetune_steps=config.finetune_steps,
        bn_batches=config.bn_batches,
        distill=config.distill,
        recovery=config.recovery,
        calibration_size=config.calibration_size,
        round_to=config.round_to,
        seed=config.seed,
    )
    space = SearchSpace.build(
        analyse(model, torch.zeros(1, 3, size, size)),
        list(inputs.unit.precisions),
        quantizable,
        config.max_prune,
        config.prune_step,
        recipe,
    )
    return SegmentedSpace.of(space, config.segments) if config.space == "segmented" else space


def reference_accuracy(model: nn.Module, splits: Splits, input_size: int) -> dict[str, float]:
    """Validation and test top-1 of ``model`` as an FP32 ONNX graph in onnxruntime."""
    from evaluators.onnx_runtime import evaluate, session
    from spaces.onnx_export import export_onnx

    sess = session(export_onnx(model, input_size).SerializeToString(), threads=os.cpu_count() or 1)
    return {"val_top1": evaluate(sess, splits.val)["top1"], "test_top1": evaluate(sess, splits.test)["top1"]}
