"""`search studies|show|pareto|report`: the study database as tables and one HTML page (read only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.cli.common import add_study_args, print_frame, storage_of, study_of


def cmd_studies(args: argparse.Namespace) -> int:
    """search studies: every study of a storage."""
    from search.analysis.tables import studies_table
    from search.study import open_existing_storage, redact

    url = storage_of(args)
    print_frame(studies_table(open_existing_storage(url)), f"studies in {redact(url)}", args.output)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """search show STUDY: one row per trial."""
    from search.analysis.tables import select, trials_table

    study = study_of(args)
    machine_readable = args.output in ("csv", "json")  # the seconds per stage would overflow a terminal table
    frame = select(trials_table(study, stages=machine_readable), args.state, args.sort, args.descending)
    print_frame(frame, f"trials of '{study.study_name}'", args.output)
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    """search pareto STUDY: the feasible front, with speed-up and size reduction vs the uncompressed baseline."""
    from search.analysis.tables import pareto_table

    study = study_of(args)
    print_frame(pareto_table(study, args.robust), f"Pareto front of '{study.study_name}'", args.output)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """search report STUDY --out FILE.html: one self-contained HTML page (front, hypervolume, per-layer plans, trials)."""

    from search.analysis.report import write_report

    out = Path(args.out)
    study = study_of(args)
    write_report(study, out)
    print(f"wrote the report of '{study.study_name}' to {out} ({out.stat().st_size / 1024:.0f} KB)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`search studies`, `show`, `pareto` and `report`."""
    for name, func, text in (
        ("studies", cmd_studies, "every study of a storage: model, profile, objectives, trials by state, front size"),
        ("show", cmd_show, "one row per trial of a study (objectives, size, MACs, precisions, prune, failure reason)"),
        ("pareto", cmd_pareto, "the Pareto front of a study, with speed-up and size reduction vs the uncompressed one"),
    ):
        p = sub.add_parser(name, help=text)
        add_study_args(p, named=name != "studies")
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
    add_study_args(p)
    p.add_argument("--out", required=True, help="the HTML file to write (replaced atomically if it exists)")
    p.set_defaults(func=cmd_report)
