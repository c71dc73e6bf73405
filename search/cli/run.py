"""`search run`, `search compare` and `search sensitivity`: the commands that run studies, and their options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from search.cli.common import comma_list, make_console

if TYPE_CHECKING:
    from search.config import RunConfig


def run_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of the `search run` options in ``args`` (``--strategy a,b``: only those fixed recipes run)."""
    from search.config import RunConfig

    names = {f.name for f in fields(RunConfig)}
    options = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if options.get("train_size") == 0:  # the whole train part (compare's default is a subset)
        del options["train_size"]
    if getattr(args, "strategy", None) is not None:
        options["strategies"] = tuple(comma_list(args.strategy, "--strategy", "fixed recipes"))
        options["search"] = False
    return RunConfig(**options)


def cmd_run(args: argparse.Namespace) -> int:
    """search run: the hardware-aware compression search (or, with --strategy, fixed recipes alone)."""
    from search.driver.run import run_search

    return run_search(run_config(args), make_console())


def cmd_compare(args: argparse.Namespace) -> int:
    """search compare: per model the baseline, the fixed recipes and a search; one table and one plot."""
    from search.driver.compare import CompareConfig, run_compare

    models = tuple(comma_list(args.models, "--models", "model names"))
    given = frozenset(name for name in ("input_size", "baseline_epochs") if getattr(args, name) is not None)
    return run_compare(CompareConfig(models, args.out, run_config(args), given), make_console())


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """search sensitivity: per-layer accuracy change of one change at a time, as a table, CSV and plot."""
    from search.driver.sensitivity import run_sensitivity

    changes = comma_list(args.changes, "--changes", "precisions or prune") if args.changes is not None else None
    return run_sensitivity(run_config(args), changes, args.prune_ratio, args.out, make_console())


Add = Callable[..., None]


def add_run_arguments(p: argparse.ArgumentParser, d: RunConfig, omit: frozenset[str] = frozenset()) -> None:
    """The options of `search run` (defaults from the RunConfig ``d``), except the flags in ``omit``, in four groups."""
    for title, add_group in (
        ("inputs", _inputs),
        ("study", _study),
        ("execution", _execution),
        ("compression", _compression),
    ):
        group = p.add_argument_group(title)

        def add(flag: str, _group: argparse._ArgumentGroup = group, **options: Any) -> None:
            if flag not in omit:
                _group.add_argument(flag, **options)

        add_group(add, d)


def _inputs(add: Add, d: RunConfig) -> None:
    from core.data_kinds import DATA_KINDS
    from search.data import data_usage

    add(
        "--hw",
        default=d.hw,
        help="hardware profile NAME or NAME:UNIT (see `search hw list`), or a profile YAML; search run also takes a "
        "comma list (pixel7,rpi4): it searches on the first and reports a front per device (see search rescore)",
    )
    add("--model", default=d.model, help="small_cnn, hl_cnn or any timm model name")
    add(
        "--checkpoint",
        help="state_dict of the uncompressed model (loaded with weights_only=True); "
        "without it the model is trained here on the train split",
    )
    add("--pretrained", action="store_true", help="ask timm for pretrained weights (needs internet)")
    add("--data", default=d.data, help=f"data set: {data_usage()}")
    add(
        "--train-size",
        type=int,
        default=d.train_size,
        help="train on a seeded, stratified subset of this many images of the train part (validation carved from it; "
        "0: all of it); the test set stays whole",
    )
    add(
        "--input-size",
        type=int,
        help="input resolution (default: " + ", ".join(f"{k.default_input_size} for {k.name}" for k in DATA_KINDS) + ")",
    )


def _study(add: Add, d: RunConfig) -> None:
    from core.metrics import OBJECTIVES, QUALITY
    from core.samplers import COST_SCALES, SAMPLERS
    from search.config import WARM_STARTS

    add("--trials", type=int, default=d.trials, help="finished trials the study should reach (fixed recipes included)")
    add(
        "--strategy",
        help="run only these fixed recipes (comma list; no search): "
        + "; ".join(f"{s.name}: {s.description}" for s in _strategies()).replace("%", "%%"),  # argparse formats help
    )
    add(
        "--warm-start",
        choices=WARM_STARTS,
        default=d.warm_start,
        help="fixed recipes a search starts from: default (uncompressed, all-int8, prune-uniform-25/50, "
        "prune-uniform-50-int8) or all (every strategy the unit runs)",
    )
    add(
        "--objectives",
        default=d.objectives,
        help=f"comma list, {QUALITY} first, then any of: "
        + "; ".join(f"{o.name} ({o.direction}, {o.description})" for o in OBJECTIVES if o.name != QUALITY),
    )
    add(
        "--sampler",
        choices=SAMPLERS.names(),
        default=d.sampler,
        help="; ".join(f"{s.name}: {s.description}" for s in SAMPLERS),
    )
    add("--population", type=int, help="NSGA-II population (default: trials/3 within 8..50)")
    add(
        "--cost-scale",
        choices=COST_SCALES,
        default=d.cost_scale,
        help="how gp and nsga2 read latency, energy, size and memory: log (default; a speed-up counts the same at "
        "every point of the front) or linear (as stored); tpe and random read them as stored; the study stores them "
        "as measured either way",
    )
    add("--seed", type=int, default=d.seed, help="seed of the data split, training, fine-tunes and the sampler")
    add("--sampler-seed", type=int, help="seed of the sampler alone (default: --seed): another search of the same problem")
    add(
        "--test-every-trial",
        action="store_true",
        help="score every trial on the test split (default: only the fixed recipes and trials that could be on the front)",
    )
    add(
        "--litert-host",
        action="store_true",
        help="also convert every candidate to .tflite and time it with LiteRT's XNNPACK on this host, as Android's "
        "CPU runs it (litert_host_ms; needs the [litert] extra, a few seconds per trial)",
    )
    add(
        "--max-accuracy-drop",
        type=float,
        default=d.max_accuracy_drop,
        help="budget: validation accuracy drop vs uncompressed, in points",
    )
    add("--latency-budget-ms", type=float, help="budget: predicted latency on the profile, in ms")
    add("--memory-budget-kb", type=float, help="budget: weights plus peak activation memory on the profile's unit, in KB")
    add("--storage", help="Optuna storage URL (default: sqlite file in the run folder)")
    add("--study-name", help="default: MODEL-DATA-PROFILE-UNIT; an existing study is resumed")
    add("--run-dir", default=d.run_dir, help="folder for the study database, baselines, ONNX graphs and the front")


def _execution(add: Add, d: RunConfig) -> None:
    from search.config import KEEP_GRAPHS

    add("--workers", type=int, help="trials in parallel (default: the CPUs this process may use)")
    add(
        "--device",
        default=d.device,
        help="where baseline training and recovery fine-tunes run: auto (CUDA where torch sees a GPU), cpu or cuda; "
        "with CUDA each trial task asks Ray for one GPU",
    )
    add("--ray-address", help="join this Ray cluster (e.g. auto or HOST:6379) instead of a local Ray")
    add(
        "--heartbeat",
        type=int,
        default=d.heartbeat,
        help="seconds between heartbeats of running trials; a trial silent for 3 heartbeats (its driver died) is run again",
    )
    add(
        "--trial-timeout",
        type=float,
        help="seconds a trial may run before it is cancelled and recorded as failed (default: 600 + 300 per fine-tune epoch)",
    )
    add(
        "--task-memory-mb",
        type=float,
        default=d.task_memory_mb,
        help="memory Ray reserves for each trial task: a machine runs no more trials at once than its memory holds",
    )
    add(
        "--keep-graphs",
        choices=KEEP_GRAPHS,
        default=d.keep_graphs,
        help="all: keep every trial's ONNX graph; front: only the front's and the fixed recipes' (the rest are "
        "deleted at the end of the run; their metrics stay in the study)",
    )


def _compression(add: Add, d: RunConfig) -> None:
    add(
        "--space",
        choices=("flat", "segmented"),
        default=d.space,
        help="flat: a prune ratio per coupled group and a precision per layer; segmented: one global prune ratio with "
        "per-group deviations of up to two grid steps, and one precision per segment of layers (the uniform recipes "
        "are neighbours of searched plans)",
    )
    add("--segments", type=int, default=d.segments, help="precision segments of the segmented space (layers in order)")
    add("--max-prune", type=float, default=d.max_prune, help="largest prune ratio per group")
    add("--prune-step", type=float, default=d.prune_step, help="grid step of prune ratios")
    add("--round-to", type=int, default=d.round_to, help="keep channel counts multiples of this")
    add("--finetune-epochs", type=int, default=d.finetune_epochs, help="recovery fine-tune after pruning")
    add("--finetune-lr", type=float, default=d.finetune_lr)
    add(
        "--finetune-steps",
        type=int,
        default=d.finetune_steps,
        help="recovery fine-tune as optimizer steps (batches of 64 drawn from the whole train split); replaces "
        "--finetune-epochs when above 0",
    )
    add(
        "--cheap-steps",
        type=int,
        default=d.cheap_steps,
        help="multi-fidelity: searched trials first re-estimate BatchNorm and fine-tune this many steps; only those "
        "that could reach the front get the full --finetune-steps (0: every trial at full fidelity)",
    )
    add(
        "--distill",
        action=argparse.BooleanOptionalAction,
        default=d.distill,
        help="distil the fine-tune from the uncompressed model",
    )
    add(
        "--bn-batches",
        type=int,
        default=d.bn_batches,
        help="re-estimate BatchNorm statistics on this many train batches after pruning, before the fine-tune",
    )
    add(
        "--recovery",
        choices=("ptq", "qat"),
        default=d.recovery,
        help="ptq: fine-tune in FP32, then INT8 by post-training quantization; qat: fine-tune with the INT8 layers "
        "fake-quantized (quantization-aware; also runs for unpruned INT8 plans)",
    )
    add("--calibration-size", type=int, default=d.calibration_size, help="images for INT8 calibration")
    add(
        "--baseline-epochs",
        type=int,
        default=d.baseline_epochs,
        help="epochs to train the baseline when no checkpoint is given",
    )


def _strategies() -> list[Any]:
    from spaces.strategies import STRATEGIES

    return list(STRATEGIES)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`search run`, `compare` and `sensitivity`."""
    from search.config import RunConfig
    from search.driver.compare import COMPARE_DEFAULTS, CompareConfig
    from search.driver.sensitivity import DEFAULT_PRUNE_RATIO

    p = sub.add_parser(
        "run",
        help="search per-layer pruning and precision; print and export the Pareto front",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(func=cmd_run)
    add_run_arguments(p, RunConfig())
    p = sub.add_parser(
        "compare",
        help="the seed study: per model the baseline, every fixed recipe and a search, in one table and one plot",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(func=cmd_compare)
    p.add_argument("--models", default=",".join(CompareConfig.models), help="comma list of model names")
    p.add_argument(
        "--out", default=CompareConfig.out, help="folder for the studies (studies.db), baselines and the comparison files"
    )
    per_model = {"--model", "--checkpoint", "--pretrained", "--study-name", "--run-dir"}
    add_run_arguments(
        p, COMPARE_DEFAULTS, frozenset({*per_model, "--strategy", "--warm-start", "--test-every-trial"})
    )  # compare runs every recipe, tests every trial
    p.set_defaults(baseline_epochs=None)  # per model (search.driver.compare.MODEL_BASELINES) unless given
    p = sub.add_parser(
        "sensitivity",
        help="per layer, the validation accuracy change when that layer alone goes to a lower precision or is pruned",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(func=cmd_sensitivity)
    p.add_argument("--changes", help="comma list of precisions below the unit's reference and/or prune (default: all)")
    p.add_argument("--prune-ratio", type=float, default=DEFAULT_PRUNE_RATIO, help="share of channels pruned per group")
    p.add_argument("--out", help="folder for sensitivity.csv and sensitivity.html (default: the study's folder)")
    execution = {"--workers", "--ray-address", "--heartbeat", "--trials", "--strategy", "--warm-start", "--objectives"}
    execution |= {"--sampler", "--cost-scale", "--sampler-seed", "--test-every-trial", "--litert-host", "--trial-timeout"}
    execution |= {"--keep-graphs", "--task-memory-mb"}
    budgets = {"--population", "--max-accuracy-drop", "--latency-budget-ms", "--memory-budget-kb"}
    budgets |= {"--finetune-epochs", "--finetune-steps", "--finetune-lr", "--distill", "--recovery", "--bn-batches"}
    add_run_arguments(p, RunConfig(), frozenset(execution | budgets))
