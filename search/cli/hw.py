"""`search hw list|show`, `search estimate` and `search calibrate`: hardware profiles, predictions, calibration."""

from __future__ import annotations

import argparse

from core.errors import UserError, check_at_least
from search.cli.common import add_study_args, make_console, storage_of, study_of


def cmd_hw_list(args: argparse.Namespace) -> int:
    """search hw list: the bundled profiles, their units and precisions."""
    from rich.table import Table

    from hw_profiles import list_profiles, load_profile
    from hw_profiles.host import HOST, check_calibrated

    table = Table(title="hardware profiles (use --hw NAME or NAME:UNIT)")
    for column in ("profile", "version", "unit", "precisions", "runtime", "description"):
        table.add_column(column)
    for name in list_profiles():
        try:
            profile, _, _ = load_profile(name)
        except UserError:  # host: not built on this machine yet (or built on another)
            table.add_row(name, "", "", "", "", "not built on this machine: search calibrate --hw host")
            continue
        for unit_name, unit in profile.units.items():
            default = " (default)" if unit_name == profile.default_unit else ""
            description = unit.description
            if name == HOST:
                try:
                    check_calibrated(profile, unit_name)
                except UserError:
                    description = f"not calibrated on this machine: search calibrate --hw {HOST}:{unit_name}"
            table.add_row(name, str(profile.version), unit_name + default, ", ".join(unit.precisions), unit.runtime, description)
    make_console().print(table)
    return 0


def cmd_hw_show(args: argparse.Namespace) -> int:
    """search hw show NAME: every number of a profile with its source."""
    from hw_profiles import load_profile

    profile, _, _ = load_profile(args.name)
    console = make_console()
    console.print(f"[bold]{profile.name}[/bold] v{profile.version}: {profile.description}")
    for unit_name, unit in profile.units.items():
        console.print(
            f"\n[bold]unit {unit_name}[/bold]{' (default)' if unit_name == profile.default_unit else ''}: "
            f"{unit.description}; runtime {unit.runtime}; precisions {', '.join(unit.precisions)}"
        )
        for key, value in unit.model_dump(exclude_none=True).items():
            if key not in ("description", "runtime", "precisions"):
                console.print(f"  {key}: {value}")
    console.print("\n[bold]sources[/bold]")
    for key, text in profile.sources.items():
        console.print(f"  {key}: {text}")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    """search estimate: predicted latency and energy of a model on a profile unit."""
    import json

    from search.analysis.console import print_estimate
    from search.analysis.estimate import estimate_json, estimate_on

    check_at_least("--threads", args.threads, 1)
    check_at_least("--input-size", args.input_size, 1, "px")
    result = estimate_on(args.hw, args.model, args.precision, args.input_size, args.threads)
    if args.json:
        print(json.dumps(estimate_json(result, args.model, args.precision, args.by_layer), indent=2))
        return 0
    unit = result.unit
    measured = f", as measured under {unit.protocol}" if unit.protocol else ""
    title = f"{args.model} on {result.hw} (v{result.profile.version}{measured}){result.fallback_note}"
    print_estimate(make_console(), result.estimate, title, args.by_layer, unit.latency_band, unit.energy_band)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """search calibrate: fit a profile to measurements (or measure this machine) and write a new profile version."""
    from pathlib import Path

    from search.analysis.console import print_fits
    from search.calibration.profile import CalibrationRequest, calibrate_profile, rerank, write_calibrated
    from search.study import open_existing_storage

    console = make_console()
    params = [p.strip() for p in args.params.split(",")] if args.params else None
    request = CalibrationRequest(
        args.hw, args.measurements, params, args.latency_scale, args.per_model, args.input_size, args.seed, args.out
    )
    calibrated = calibrate_profile(request, console.print)
    study = study_of(args) if args.study else None  # before writing: a wrong name leaves nothing half-done
    write_calibrated(calibrated)
    print_fits(console, calibrated.fits)
    new = calibrated.profile
    console.print(f"wrote {new.name} v{new.version} to {calibrated.out}")
    if study is not None:
        rerank(study, open_existing_storage(storage_of(args)), calibrated, Path(args.run_dir), console)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`search hw list|show`, `search estimate` and `search calibrate`."""
    from core.precisions import PRECISIONS

    hw = sub.add_parser("hw", help="hardware profiles").add_subparsers(dest="hw_command", required=True)
    hw.add_parser("list", help="profiles, units and precisions").set_defaults(func=cmd_hw_list)
    show = hw.add_parser("show", help="every number of a profile with its source")
    show.add_argument("name")
    show.set_defaults(func=cmd_hw_show)
    est = sub.add_parser("estimate", help="predicted latency and energy of a model on a profile unit")
    est.add_argument("--hw", required=True, help="NAME or NAME:UNIT (see `search hw list`)")
    est.add_argument("--model", required=True, help="model name (small_cnn, hl_cnn, timm, torchvision:NAME) or FILE.onnx")
    est.add_argument(
        "--precision",
        choices=PRECISIONS.names(),
        help="run every layer in this precision (default: fp32 for names, as given for files)",
    )
    est.add_argument("--input-size", type=int, default=224)
    est.add_argument("--threads", type=int, help="threads on CPU units (default: the unit's)")
    est.add_argument("--by-layer", action="store_true", help="per-layer table: op, shape, MACs, bytes, bound, ms, mJ")
    est.add_argument("--json", action="store_true", help="one JSON object (latency_ms, energy_mj, params, macs, ...)")
    est.set_defaults(func=cmd_estimate)
    _add_calibrate(sub)


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    cal = sub.add_parser("calibrate", help="fit a profile to measured latencies and write a new profile version")
    cal.add_argument(
        "--hw",
        required=True,
        help="profile NAME[:UNIT]; `host` measures this machine in onnxruntime, `host:xnnpack` in LiteRT (after `host`)",
    )
    cal.add_argument(
        "--measurements",
        "--measured",
        dest="measurements",
        help="CSV with columns model, precision, unit, threads, input_size, latency_ms (`search shortlist` scripts write one)",
    )
    cal.add_argument("--study", help="re-rank this study's front with the new profile (a new study STUDY@PROFILE-vN)")
    add_study_args(cal, named=False)
    cal.add_argument(
        "--params", help="comma list of parameters to fit (default: MAC rates of the measured precisions, overhead, threads)"
    )
    cal.add_argument("--out", help="where to write the profile (default: the bundled profile file)")
    cal.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        help="multiply measured latencies (rows of a sibling device at another clock, e.g. 2.80/2.85)",
    )
    cal.add_argument(
        "--per-model",
        type=int,
        help="host: random candidates per calibration model (default 10; host:xnnpack: 4 per input size)",
    )
    cal.add_argument("--input-size", type=int, default=224, help="host: input resolution of the calibration graphs")
    cal.add_argument("--seed", type=int, default=0)
    cal.set_defaults(func=cmd_calibrate)
