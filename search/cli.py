"""The `search` command line. Each subcommand is one small function; logic lives in the packages.

Heavy libraries (torch, NNCF, Ray, onnxruntime) are imported by the
subcommands that need them, so `search --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields

from search.errors import UserError

EXIT_USER_ERROR = 2


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def cmd_run(args: argparse.Namespace) -> int:
    """search run: the hardware-aware compression search."""
    from search.run import RunConfig, run_search

    names = {f.name for f in fields(RunConfig)}
    config = RunConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    return run_search(config, _console())


def cmd_hw_list(args: argparse.Namespace) -> int:
    """search hw list: the bundled profiles, their units and precisions."""
    from rich.table import Table

    from hw_profiles import list_profiles, load_profile

    table = Table(title="hardware profiles (use --hw NAME or NAME:UNIT)")
    for column in ("profile", "version", "unit", "precisions", "runtime", "description"):
        table.add_column(column)
    for name in list_profiles():
        profile, _, _ = load_profile(name)
        for unit_name, unit in profile.units.items():
            default = " (default)" if unit_name == profile.default_unit else ""
            table.add_row(
                name, str(profile.version), unit_name + default, ", ".join(unit.precisions), unit.runtime, unit.description
            )
    _console().print(table)
    return 0


def cmd_hw_show(args: argparse.Namespace) -> int:
    """search hw show NAME: every number of a profile with its source."""
    from hw_profiles import load_profile

    profile, _, _ = load_profile(args.name)
    console = _console()
    console.print(f"[bold]{profile.name}[/bold] v{profile.version}: {profile.description}")
    for unit_name, unit in profile.units.items():
        console.print(
            f"\n[bold]unit {unit_name}[/bold]{' (default)' if unit_name == profile.default_unit else ''}: "
            f"{unit.description}; runtime {unit.runtime}; precisions {', '.join(unit.precisions)}"
        )
        for key, value in unit.model_dump().items():
            if key not in ("description", "runtime", "precisions"):
                console.print(f"  {key}: {value}")
    console.print("\n[bold]sources[/bold]")
    for key, text in profile.sources.items():
        console.print(f"  {key}: {text}")
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    from search.run import RunConfig

    d = RunConfig()
    p = sub.add_parser(
        "run",
        help="search per-layer pruning and precision; print and export the Pareto front",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(func=cmd_run)
    g = p.add_argument_group("inputs")
    g.add_argument("--hw", default=d.hw, help="hardware profile NAME or NAME:UNIT (see `search hw list`), or a profile YAML")
    g.add_argument("--model", default=d.model, help="small_cnn, hl_cnn or any timm model name")
    g.add_argument(
        "--checkpoint",
        help="state_dict of the uncompressed model (loaded with weights_only=True); "
        "without it the model is trained here on the train split",
    )
    g.add_argument("--pretrained", action="store_true", help="ask timm for pretrained weights (needs internet)")
    g.add_argument("--data", default=d.data, help="digits, cifar10:DIR, cifar100:DIR or imagefolder:DIR (train/ and val/)")
    g.add_argument("--input-size", type=int, help="input resolution (default: 32 for digits/CIFAR, 224 for imagefolder)")
    g = p.add_argument_group("study")
    g.add_argument("--trials", type=int, default=d.trials, help="finished trials the study should reach (baselines included)")
    g.add_argument("--objectives", default=d.objectives, help="accuracy first, then any of latency, energy, size")
    g.add_argument("--sampler", choices=("nsga2", "tpe", "random"), default=d.sampler)
    g.add_argument("--population", type=int, help="NSGA-II population (default: trials/3 within 8..50)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--max-accuracy-drop", type=float, help="budget: validation accuracy drop vs uncompressed, in points")
    g.add_argument("--latency-budget-ms", type=float, help="budget: predicted latency on the profile, in ms")
    g.add_argument("--storage", help="Optuna storage URL (default: sqlite file in --run-dir)")
    g.add_argument("--study-name", help="default: MODEL-DATA-PROFILE-UNIT; an existing study is resumed")
    g.add_argument("--run-dir", default=d.run_dir, help="folder for the study database, baselines, ONNX graphs and the front")
    g = p.add_argument_group("execution")
    g.add_argument("--workers", type=int, help="trials in parallel (default: number of cores)")
    g.add_argument("--ray-address", help="join this Ray cluster (e.g. auto or HOST:6379) instead of a local Ray")
    g = p.add_argument_group("compression")
    g.add_argument("--max-prune", type=float, default=d.max_prune, help="largest prune ratio per group")
    g.add_argument("--prune-step", type=float, default=d.prune_step, help="grid step of prune ratios")
    g.add_argument("--round-to", type=int, default=d.round_to, help="keep channel counts multiples of this")
    g.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs, help="recovery fine-tune after pruning")
    g.add_argument("--finetune-lr", type=float, default=d.finetune_lr)
    g.add_argument("--distill", action="store_true", help="distil the fine-tune from the uncompressed model")
    g.add_argument("--calibration-size", type=int, default=d.calibration_size, help="images for INT8 calibration")
    g.add_argument(
        "--baseline-epochs", type=int, default=d.baseline_epochs, help="epochs to train the baseline when no checkpoint is given"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="search",
        description="Hardware-aware compression search for CNNs: "
        "per-layer pruning and FP32/FP16/INT8 precision, Pareto front on a device profile.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    hw = sub.add_parser("hw", help="hardware profiles").add_subparsers(dest="hw_command", required=True)
    hw.add_parser("list", help="profiles, units and precisions").set_defaults(func=cmd_hw_list)
    show = hw.add_parser("show", help="every number of a profile with its source")
    show.add_argument("name")
    show.set_defaults(func=cmd_hw_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: a user error prints one line and exits with code 2 (a traceback only with --debug)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
