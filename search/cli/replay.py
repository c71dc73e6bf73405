"""`search export|rescore|shortlist|apply`: what leaves a study (files, another device's front, a rebuilt plan)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from core.errors import check_at_least
from search.cli.common import add_study_args, make_console, storage_of, study_of


def cmd_shortlist(args: argparse.Namespace) -> int:
    """search shortlist STUDY --out DIR: the front members worth measuring, with the scripts that measure them."""
    from search.calibration.shortlist import MEASURED, write_shortlist
    from search.study import StudyInfo

    check_at_least("--count", args.count, 2)  # one measured graph cannot determine even one parameter
    study = study_of(args)
    chosen = write_shortlist(study, args.count, Path(args.out))
    hw = StudyInfo.of(study).hw
    scripts = [name for name in ("measure_here.py", "measure_android.sh") if (Path(args.out) / name).is_file()]
    how = " or ".join(scripts) or f"your own tool ({hw} runs TFLite delegates, which have no export yet: no script)"
    print(
        f"wrote {len(chosen)} graphs (trials {', '.join(str(m.number) for m in chosen)}) to {args.out}: measure them with "
        f"{how}, then `search calibrate --hw {hw.partition(':')[0]} --measured {Path(args.out) / MEASURED} "
        f"--study {study.study_name}`"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """search export STUDY (--pareto | --trial N) --out DIR: plan, ONNX graph and model card per trial."""

    from search.artifacts.export import choose_trials, export_trials, parse_formats

    formats = parse_formats(args.format)
    study = study_of(args)
    written = export_trials(study, choose_trials(study, None if args.pareto else args.trial), Path(args.out), formats)
    for folder, files in written:
        print(f"{folder}: {', '.join(files)}")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    """search rescore STUDY --hw H: the study's trials re-priced on another profile, as a new study with its front."""
    from search.analysis.rescore import rescore
    from search.artifacts.export import report_rescored
    from search.study import open_existing_storage

    study = study_of(args)
    done = rescore(study, open_existing_storage(storage_of(args)), args.hw, args.study_name, args.replace)
    report_rescored(study.study_name, done, Path(args.run_dir), make_console())
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """search apply PLAN.yaml --model M --out model.onnx: rebuild a candidate from its plan and score it."""
    import json

    from search.artifacts.apply import ApplyConfig, apply_plan

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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`search export`, `rescore`, `shortlist` and `apply`."""
    p = sub.add_parser(
        "export", help="write plan.yaml, model.onnx (and/or model.tflite) and MODEL_CARD.md of the front or of chosen trials"
    )
    add_study_args(p)
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
    add_study_args(p)
    p.add_argument("--hw", required=True, help="target profile NAME or NAME:UNIT (see `search hw list`)")
    p.add_argument("--study-name", help="name of the new study (default: STUDY@PROFILE-UNIT)")
    p.add_argument("--replace", action="store_true", help="write the new study again if it exists")
    p.set_defaults(func=cmd_rescore)
    p = sub.add_parser("shortlist", help="the front members worth measuring on the device, with the scripts that measure them")
    add_study_args(p)
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
