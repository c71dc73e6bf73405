"""The `search` command line. Each subcommand is one small function; logic lives in the packages.

Heavy libraries (torch, NNCF, Ray, onnxruntime) are imported by the
subcommands that need them, so `search --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from core.errors import UserError, check_at_least

if TYPE_CHECKING:
    import optuna

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit code 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _run_config(args: argparse.Namespace) -> Any:
    """The RunConfig of the `search run` options in ``args`` (``--strategy a,b``: only those fixed recipes run)."""
    from search.run import RunConfig

    names = {f.name for f in fields(RunConfig)}
    config = RunConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    if config.train_size == 0:  # the whole train part (compare's default is a subset)
        config.train_size = None
    if getattr(args, "strategy", None) is not None:
        config.strategies = tuple(_comma_list(args.strategy, "--strategy", "fixed recipes"))
        config.search = False
    return config


def _comma_list(text: str, option: str, what: str) -> list[str]:
    """``a, b,c`` -> ``["a", "b", "c"]``; an empty list is a user error naming ``option``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError(f"{option} is empty: give a comma list of {what}")
    return names


def cmd_run(args: argparse.Namespace) -> int:
    """search run: the hardware-aware compression search (or, with --strategy, fixed recipes alone)."""
    from search.run import run_search

    return run_search(_run_config(args), _console())


def cmd_compare(args: argparse.Namespace) -> int:
    """search compare: per model the baseline, the fixed recipes and a search; one table and one plot."""
    from search.compare import CompareConfig, run_compare

    models = tuple(_comma_list(args.models, "--models", "model names"))
    return run_compare(CompareConfig(models, args.out, _run_config(args)), _console())


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """search sensitivity: per-layer accuracy change of one change at a time, as a table, CSV and plot."""
    from search.sensitivity import run_sensitivity

    changes = _comma_list(args.changes, "--changes", "precisions or prune") if args.changes is not None else None
    return run_sensitivity(_run_config(args), changes, args.prune_ratio, args.out, _console())


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

    from core.precisions import REFERENCE
    from evaluators.estimate import estimate_model
    from hw_profiles import load_profile
    from search.model_graphs import input_dims, model_graph

    check_at_least("--threads", args.threads, 1)
    check_at_least("--input-size", args.input_size, 1, "px")
    profile, _, unit_name = load_profile(args.hw)
    unit = profile.units[unit_name]
    hw = f"{profile.name}:{unit_name}"
    if args.threads and args.threads > unit.max_threads:
        raise UserError(f"--threads {args.threads}: {hw} runs at most {unit.max_threads} thread(s)")
    fallback_unit = profile.fallback_of(unit_name)
    runs = {*unit.precisions, *(fallback_unit.precisions if fallback_unit else ())}
    if args.precision and args.precision not in runs:
        raise UserError(f"{hw} does not run {args.precision}: use --precision {' or '.join(sorted(runs))}")
    graph = model_graph(args.model, args.precision, args.input_size)
    try:
        estimate = estimate_model(graph, profile, unit_name, args.threads)
    except UserError as exc:  # an uncovered op, or a precision neither the unit nor its fallback runs
        raise UserError(f"{args.model} on {hw}: {exc}") from None
    on_fallback = sorted({row.precision for row in estimate.layers if row.unit != unit_name and row.op_type != "Convert"})
    fallback_note = f"; {', '.join(on_fallback)} layers run on its fallback unit {unit.fallback}" if on_fallback else ""
    if args.json:
        data = {
            "hw": hw,
            "profile_version": profile.version,
            "model": args.model,
            "precision": args.precision or ("as given" if args.model.endswith(".onnx") else REFERENCE),
            "input_size": input_dims(graph)[2],
            "fallback_unit": unit.fallback if on_fallback else None,
            **estimate.summary(),
            "latency_band_ms": list(unit.latency_band.around(estimate.latency_ms)) if unit.latency_band else None,
            "latency_band": unit.latency_band.describe() if unit.latency_band else "no out-of-sample check",
            "energy_checked": unit.energy_band is not None,
            "energy_band_mj": list(unit.energy_band.around(estimate.energy_mj)) if unit.energy_band else None,
            "slower_than_fp32": [vars(layer) for layer in estimate.slower_than_fp32()],
        }
        if args.by_layer:
            data["layers"] = [vars(row) | {"shape": list(row.shape)} for row in estimate.layers]
        print(json.dumps(data, indent=2))
        return 0
    from search.console import print_estimate

    title = f"{args.model} on {hw} (v{profile.version}){fallback_note}"
    print_estimate(_console(), estimate, title, args.by_layer, unit.latency_band, unit.energy_band)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """search calibrate: fit a profile to measurements (or measure this machine) and write a new version."""
    from core.errors import unknown_name
    from core.files import check_out_file
    from hw_profiles import PROFILE_DIR, load_profile
    from hw_profiles.host import (
        HOST,
        calibration_start,
        describe,
        load_host_profile,
        profile_path,
        this_machine,
        with_template_units,
    )
    from hw_profiles.writer import write_profile
    from search.calibrate import COLUMNS, calibrate_from_measurements, calibrate_host_profile, calibrate_litert_unit
    from search.console import print_fits
    from spaces.litert import require_litert

    console = _console()
    name = args.hw.partition(":")[0]
    if name == HOST:  # this machine's profile: fitted from its own one or the template, cached for this machine
        profile = calibration_start()
        default_out = profile_path()
    else:
        profile, _, _ = load_profile(name)
        default_out = PROFILE_DIR / f"{profile.name}.yaml"
    out = check_out_file(args.out, f"{profile.name}.yaml") if args.out else default_out
    params = [p.strip() for p in args.params.split(",")] if args.params else None
    unit_name = args.hw.partition(":")[2] or profile.default_unit
    if unit_name not in profile.units:
        raise unknown_name(f"unit of {profile.name}", unit_name, profile.units, f"search hw show {profile.name}")
    runtime = profile.units[unit_name].host_runtime
    if args.measurements:
        new, fits = calibrate_from_measurements(profile, args.measurements, params, console.print, args.latency_scale)
    elif runtime == "onnxruntime":
        new, fits = calibrate_host_profile(profile, args.per_model or 10, args.seed, args.input_size, console.print)
    elif runtime == "litert":
        require_litert()
        profile = with_template_units(load_host_profile())  # the onnxruntime unit first: it makes the profile
        new, fits = calibrate_litert_unit(
            profile, unit_name, args.per_model or 4, args.seed, args.input_size, console.print, params
        )
    else:
        raise UserError(f"{profile.name} is a device profile: pass --measurements FILE.csv (columns {', '.join(COLUMNS)})")
    if name == HOST:
        machine = this_machine()
        about = (
            f"This machine, {describe(machine)}: its CPU running the ONNX graph in onnxruntime (unit cpu) and the "
            ".tflite in LiteRT with XNNPACK (unit xnnpack)"
        )
        new = new.model_copy(update={"machine": machine, "description": about})
    out.parent.mkdir(parents=True, exist_ok=True)
    study = _study_of(args) if args.study else None  # before writing: a wrong name leaves nothing half-done
    write_profile(new, out)
    print_fits(console, fits)
    console.print(f"wrote {profile.name} v{new.version} to {out}")
    if study is not None:
        unit = study.user_attrs["hw"].partition(":")[2]  # the study's own unit, not the profile's default
        rerank(study, args, f"{out}:{unit}", f"{study.study_name}@{profile.name}-v{new.version}", console)
    return 0


def rerank(study: optuna.Study, args: argparse.Namespace, hw: str, name: str, console: Any) -> None:
    """``study``'s trials re-priced on profile ``hw`` as study ``name``, and its front printed."""
    from search.inspect_study import open_existing_storage
    from search.rescore import rescore
    from search.run import report_front

    done = rescore(study, open_existing_storage(_storage_of(args)), hw, name, replace=True)
    console.print(f"front of '{study.study_name}' re-ranked with the new profile: study '{name}'")
    report_front(done.study, done.study.user_attrs["hw"], Path(args.run_dir), console)


def cmd_shortlist(args: argparse.Namespace) -> int:
    """search shortlist STUDY --out DIR: the front members worth measuring, with the scripts that measure them."""
    from search.shortlist import MEASURED, write_shortlist

    check_at_least("--count", args.count, 2)  # one measured graph cannot determine even one parameter
    study = _study_of(args)
    chosen = write_shortlist(study, args.count, Path(args.out))
    hw = study.user_attrs["hw"]
    scripts = [name for name in ("measure_here.py", "measure_android.sh") if (Path(args.out) / name).is_file()]
    how = " or ".join(scripts) or f"your own tool ({hw} runs TFLite delegates, which have no export yet: no script)"
    print(
        f"wrote {len(chosen)} graphs (trials {', '.join(str(m.number) for m in chosen)}) to {args.out}: measure them with "
        f"{how}, then `search calibrate --hw {hw.partition(':')[0]} --measured {Path(args.out) / MEASURED} "
        f"--study {study.study_name}`"
    )
    return 0


def _print_frame(frame: Any, title: str, output: str) -> None:
    """A DataFrame as CSV or JSON records on stdout, or as a table on the terminal."""
    if output == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif output == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=1) + "\n")
    else:
        from search.console import print_frame

        print_frame(_console(), frame, title)


def _storage_of(args: argparse.Namespace) -> str:

    from search.study import default_storage

    return args.storage or default_storage(Path(args.run_dir))


def cmd_studies(args: argparse.Namespace) -> int:
    """search studies: every study of a storage."""
    from search.inspect_study import open_existing_storage, studies_table

    url = _storage_of(args)
    _print_frame(studies_table(open_existing_storage(url)), f"studies in {url}", args.output)
    return 0


def _study_of(args: argparse.Namespace) -> optuna.Study:
    from search.inspect_study import load_existing_study, open_existing_storage

    return load_existing_study(open_existing_storage(_storage_of(args)), args.study)


def cmd_show(args: argparse.Namespace) -> int:
    """search show STUDY: one row per trial."""
    from search.inspect_study import select, trials_table

    study = _study_of(args)
    machine_readable = args.output in ("csv", "json")  # the seconds per stage would overflow a terminal table
    frame = select(trials_table(study, stages=machine_readable), args.state, args.sort, args.descending)
    _print_frame(frame, f"trials of '{study.study_name}'", args.output)
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    """search pareto STUDY: the feasible front, with speed-up and size reduction vs the uncompressed baseline."""
    from search.inspect_study import pareto_table

    study = _study_of(args)
    _print_frame(pareto_table(study, args.robust), f"Pareto front of '{study.study_name}'", args.output)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """search report STUDY --out FILE.html: one self-contained HTML page (front, hypervolume, per-layer plans, trials)."""

    from search.html_report import write_report

    out = Path(args.out)
    study = _study_of(args)
    write_report(study, out)
    print(f"wrote the report of '{study.study_name}' to {out} ({out.stat().st_size / 1024:.0f} KB)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """search export STUDY (--pareto | --trial N) --out DIR: plan, ONNX graph and model card per trial."""

    from search.export import choose_trials, export_trials, parse_formats

    formats = parse_formats(args.format)
    study = _study_of(args)
    written = export_trials(study, choose_trials(study, None if args.pareto else args.trial), Path(args.out), formats)
    for folder, files in written:
        print(f"{folder}: {', '.join(files)}")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    """search rescore STUDY --hw H: the study's trials re-priced on another profile, as a new study with its front."""

    from search.inspect_study import open_existing_storage
    from search.rescore import rescore
    from search.run import report_front

    study = _study_of(args)
    console = _console()
    done = rescore(study, open_existing_storage(_storage_of(args)), args.hw, args.study_name, args.replace)
    console.print(
        f"rescored '{study.study_name}' onto {done.study.user_attrs['hw']} in {done.seconds:.1f} s: "
        f"{done.rescored} trials re-priced, {len(done.cannot_run)} cannot run there; study '{done.study.study_name}'"
    )
    for number, reason in done.cannot_run.items():
        console.print(f"  trial {number}: {reason}")
    if done.untested:
        console.print(f"front members without a test score: {done.untested}")
    report_front(done.study, done.study.user_attrs["hw"], Path(args.run_dir), console)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """search apply PLAN.yaml --model M --out model.onnx: rebuild a candidate from its plan and score it."""
    import json

    from search.apply_plan import ApplyConfig, apply_plan

    names = {f.name for f in fields(ApplyConfig)}
    metrics = apply_plan(ApplyConfig(**{k: v for k, v in vars(args).items() if k in names}))
    if args.json:
        print(json.dumps(metrics, indent=1))
        return 0
    print(
        f"wrote {args.out}: test top-1 {100 * metrics['test_top1']:.2f}%, val top-1 {100 * metrics['val_top1']:.2f}%, "
        f"{metrics['size_bytes'] / 1024:.1f} KB, {metrics['macs'] / 1e6:.3f} M MACs, predicted on {metrics['hw']} "
        f"(v{metrics['profile_version']}) {metrics['latency_ms']:.4f} ms / {metrics['energy_mj']:.4f} mJ, "
        f"host {metrics['host_latency_ms']:.4f} ms"
    )
    if metrics["checkpoint_matches_plan"] is False:
        print("note: this checkpoint is not the one the plan was searched on (sha256 differs); metrics will differ")
    return 0


def _add_study_args(p: argparse.ArgumentParser, named: bool = True) -> None:
    """The arguments that find a study: its name (when ``named``), the storage URL or the run folder."""
    from search.run import RunConfig

    if named:
        p.add_argument("study", help="study name (see `search studies`)")
    p.add_argument("--storage", help="Optuna storage URL (default: the run folder's SQLite file)")
    p.add_argument("--run-dir", default=RunConfig.run_dir, help="run folder whose studies.db is the default storage")


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write plan.yaml, model.onnx (and/or model.tflite) and MODEL_CARD.md of the front or of chosen trials"
    )
    _add_study_args(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--pareto", action="store_true", help="every member of the feasible Pareto front")
    which.add_argument("--trial", type=int, action="append", help="trial number (repeat for several)")
    p.add_argument("--out", required=True, help="folder to write trial_NNNNN/ folders into")
    p.add_argument(
        "--format",
        default="onnx",
        help="onnx, tflite or onnx,tflite: tflite rebuilds the candidate, converts it with LiteRT (the [litert] extra) "
        "and scores it beside the ONNX graph",
    )
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("rescore", help="re-price a study's trials on another device profile (new study, no re-training)")
    _add_study_args(p)
    p.add_argument("--hw", required=True, help="target profile NAME or NAME:UNIT (see `search hw list`)")
    p.add_argument("--study-name", help="name of the new study (default: STUDY@PROFILE-UNIT)")
    p.add_argument("--replace", action="store_true", help="write the new study again if it exists")
    p.set_defaults(func=cmd_rescore)
    p = sub.add_parser("shortlist", help="the front members worth measuring on the device, with the scripts that measure them")
    _add_study_args(p)
    p.add_argument("--count", type=int, default=4, help="how many (the fastest first, then the least certain order)")
    p.add_argument("--out", required=True, help="folder for the graphs, shortlist.csv and the measuring scripts")
    p.set_defaults(func=cmd_shortlist)
    p = sub.add_parser("apply", help="rebuild a candidate from a plan.yaml and score it like its trial")
    p.add_argument("plan", help="plan.yaml written by `search export` or `search run`")
    p.add_argument("--model", required=True, help="the model the plan was made for (small_cnn, hl_cnn, timm name)")
    p.add_argument("--checkpoint", help="uncompressed weights (default: the plan's source checkpoint)")
    p.add_argument("--data", help="data set as in `search run` (default: the plan's)")
    p.add_argument("--train-size", type=int, help="as in `search run` (default: the plan's)")
    p.add_argument("--input-size", type=int, help="default: the plan's")
    p.add_argument("--hw", help="profile to predict latency on (default: the plan's)")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--threads", type=int, default=1, help="threads, as a search worker (1 repeats the trial exactly)")
    p.add_argument("--json", action="store_true", help="metrics as one JSON object")
    p.set_defaults(func=cmd_apply)


def _add_inspection(sub: argparse._SubParsersAction) -> None:
    for name, func, text in (
        ("studies", cmd_studies, "every study of a storage: model, profile, objectives, trials by state, front size"),
        ("show", cmd_show, "one row per trial of a study (objectives, size, MACs, precisions, prune, failure reason)"),
        ("pareto", cmd_pareto, "the Pareto front of a study, with speed-up and size reduction vs the uncompressed one"),
    ):
        p = sub.add_parser(name, help=text)
        _add_study_args(p, named=name != "studies")
        out = p.add_mutually_exclusive_group()
        out.add_argument("--csv", dest="output", action="store_const", const="csv", help="CSV on stdout")
        out.add_argument("--json", dest="output", action="store_const", const="json", help="JSON records on stdout")
        p.set_defaults(func=func, output="table")
        if name == "pareto":
            p.add_argument(
                "--robust",
                action="store_true",
                help="add each member's latency band and the members whose bands overlap it (their order is uncertain)",
            )
        if name == "show":
            p.add_argument("--sort", help="column to sort by (e.g. latency_ms, accuracy, size_kb)")
            p.add_argument("--descending", action="store_true", help="sort from the largest value")
            p.add_argument("--state", help="only trials in this state (complete, fail, running, ...)")
    p = sub.add_parser(
        "report", help="one self-contained HTML page of a study: Pareto front, hypervolume, per-layer plans, trials"
    )
    _add_study_args(p)
    p.add_argument("--out", required=True, help="the HTML file to write (replaced atomically if it exists)")
    p.set_defaults(func=cmd_report)


def _add_run_arguments(p: argparse.ArgumentParser, d: Any, omit: frozenset[str] = frozenset()) -> None:
    """The options of `search run` (defaults from the RunConfig ``d``), except the flags in ``omit``."""
    from core.data_kinds import DATA_KINDS
    from core.metrics import OBJECTIVES, QUALITY
    from core.samplers import SAMPLERS
    from search.data import data_usage
    from search.run import WARM_STARTS

    def add(group: argparse._ArgumentGroup, flag: str, **options: Any) -> None:
        if flag not in omit:
            group.add_argument(flag, **options)

    g = p.add_argument_group("inputs")
    add(
        g,
        "--hw",
        default=d.hw,
        help="hardware profile NAME or NAME:UNIT (see `search hw list`), or a profile YAML; search run also takes a "
        "comma list (pixel7,rpi4): it searches on the first and reports a front per device (see search rescore)",
    )
    add(g, "--model", default=d.model, help="small_cnn, hl_cnn or any timm model name")
    add(
        g,
        "--checkpoint",
        help="state_dict of the uncompressed model (loaded with weights_only=True); "
        "without it the model is trained here on the train split",
    )
    add(g, "--pretrained", action="store_true", help="ask timm for pretrained weights (needs internet)")
    add(g, "--data", default=d.data, help=f"data set: {data_usage()}")
    add(
        g,
        "--train-size",
        type=int,
        default=d.train_size,
        help="train on a seeded, stratified subset of this many images of the train part (validation carved from it; "
        "0: all of it); the test set stays whole",
    )
    add(
        g,
        "--input-size",
        type=int,
        help="input resolution (default: " + ", ".join(f"{k.default_input_size} for {k.name}" for k in DATA_KINDS) + ")",
    )
    g = p.add_argument_group("study")
    add(g, "--trials", type=int, default=d.trials, help="finished trials the study should reach (fixed recipes included)")
    add(
        g,
        "--strategy",
        help="run only these fixed recipes (comma list; no search): "
        + "; ".join(f"{s.name}: {s.description}" for s in _strategies()).replace("%", "%%"),  # argparse formats help
    )
    add(
        g,
        "--warm-start",
        choices=WARM_STARTS,
        default=d.warm_start,
        help="fixed recipes a search starts from: default (uncompressed, all-int8, prune-uniform-25/50, "
        "prune-uniform-50-int8) or all (every strategy the unit runs)",
    )
    add(
        g,
        "--objectives",
        default=d.objectives,
        help=f"comma list, {QUALITY} first, then any of: "
        + "; ".join(f"{o.name} ({o.direction}, {o.description})" for o in OBJECTIVES if o.name != QUALITY),
    )
    add(
        g,
        "--sampler",
        choices=SAMPLERS.names(),
        default=d.sampler,
        help="; ".join(f"{s.name}: {s.description}" for s in SAMPLERS),
    )
    add(g, "--population", type=int, help="NSGA-II population (default: trials/3 within 8..50)")
    add(g, "--seed", type=int, default=d.seed, help="seed of the data split, training, fine-tunes and the sampler")
    add(g, "--sampler-seed", type=int, help="seed of the sampler alone (default: --seed): another search of the same problem")
    add(
        g,
        "--test-every-trial",
        action="store_true",
        help="score every trial on the test split (default: only the fixed recipes and trials that could be on the front)",
    )
    add(
        g,
        "--litert-host",
        action="store_true",
        help="also convert every candidate to .tflite and time it with LiteRT's XNNPACK on this host, as Android's "
        "CPU runs it (litert_host_ms; needs the [litert] extra, a few seconds per trial)",
    )
    add(
        g,
        "--max-accuracy-drop",
        type=float,
        default=d.max_accuracy_drop,
        help="budget: validation accuracy drop vs uncompressed, in points",
    )
    add(g, "--latency-budget-ms", type=float, help="budget: predicted latency on the profile, in ms")
    add(g, "--memory-budget-kb", type=float, help="budget: weights plus peak activation memory on the profile's unit, in KB")
    add(g, "--storage", help="Optuna storage URL (default: sqlite file in the run folder)")
    add(g, "--study-name", help="default: MODEL-DATA-PROFILE-UNIT; an existing study is resumed")
    add(g, "--run-dir", default=d.run_dir, help="folder for the study database, baselines, ONNX graphs and the front")
    g = p.add_argument_group("execution")
    add(g, "--workers", type=int, help="trials in parallel (default: number of cores)")
    add(g, "--ray-address", help="join this Ray cluster (e.g. auto or HOST:6379) instead of a local Ray")
    add(
        g,
        "--heartbeat",
        type=int,
        default=d.heartbeat,
        help="seconds between heartbeats of running trials; a trial silent for 3 heartbeats (its driver died) is run again",
    )
    g = p.add_argument_group("compression")
    add(g, "--max-prune", type=float, default=d.max_prune, help="largest prune ratio per group")
    add(g, "--prune-step", type=float, default=d.prune_step, help="grid step of prune ratios")
    add(g, "--round-to", type=int, default=d.round_to, help="keep channel counts multiples of this")
    add(g, "--finetune-epochs", type=int, default=d.finetune_epochs, help="recovery fine-tune after pruning")
    add(g, "--finetune-lr", type=float, default=d.finetune_lr)
    add(g, "--distill", action="store_true", help="distil the fine-tune from the uncompressed model")
    add(
        g,
        "--recovery",
        choices=("ptq", "qat"),
        default=d.recovery,
        help="ptq: fine-tune in FP32, then INT8 by post-training quantization; qat: fine-tune with the INT8 layers "
        "fake-quantized (quantization-aware; also runs for unpruned INT8 plans)",
    )
    add(g, "--calibration-size", type=int, default=d.calibration_size, help="images for INT8 calibration")
    add(
        g,
        "--baseline-epochs",
        type=int,
        default=d.baseline_epochs,
        help="epochs to train the baseline when no checkpoint is given",
    )


def _strategies() -> list[Any]:
    from spaces.strategies import STRATEGIES

    return list(STRATEGIES)


def _add_run(sub: argparse._SubParsersAction) -> None:
    from search.compare import COMPARE_DEFAULTS, CompareConfig
    from search.run import RunConfig
    from search.sensitivity import DEFAULT_PRUNE_RATIO

    p = sub.add_parser(
        "run",
        help="search per-layer pruning and precision; print and export the Pareto front",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.set_defaults(func=cmd_run)
    _add_run_arguments(p, RunConfig())
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
    _add_run_arguments(
        p, COMPARE_DEFAULTS, frozenset({*per_model, "--strategy", "--warm-start", "--test-every-trial"})
    )  # compare runs every recipe, tests every trial
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
    execution |= {"--sampler", "--sampler-seed", "--test-every-trial", "--litert-host"}
    budgets = {"--population", "--max-accuracy-drop", "--latency-budget-ms", "--memory-budget-kb"}
    budgets |= {"--finetune-epochs", "--finetune-lr", "--distill", "--recovery"}
    _add_run_arguments(p, RunConfig(), frozenset(execution | budgets))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (choices and help texts from the registries of ``core``)."""
    from core.precisions import PRECISIONS

    parser = _Parser(
        prog="search",
        description="Hardware-aware compression search for CNNs: "
        "per-layer pruning and FP32/FP16/INT8 precision, Pareto front on a device profile.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_inspection(sub)
    _add_replay(sub)
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
    cal.add_argument("--storage", help="Optuna storage URL of --study (default: the run folder's SQLite file)")
    cal.add_argument("--run-dir", default="runs", help="run folder whose studies.db holds --study")
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
