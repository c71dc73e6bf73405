"""The `search` command line: parsing and printing only; the work lives in the packages below.

One module per group of commands, each command's parser beside its handler (``add_parsers``). Heavy libraries
(torch, NNCF, Ray, onnxruntime) are imported by the handlers that need them, so `search --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from core.errors import UserError
from search.cli import hw, inspect, replay, run, train
from search.cli.common import EXIT_USER_ERROR, Parser

EXIT_LOST_DATABASE = 3  # not the user's input: the database server went away mid-command


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (choices and help texts from the registries of ``core``)."""
    parser = Parser(
        prog="search",
        description="Hardware-aware compression search for CNNs: "
        "per-layer pruning and FP32/FP16/INT8 precision, Pareto front on a device profile.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (run, train, inspect, replay, hw):
        commands.add_parsers(sub)
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
    except Exception as exc:
        if args.debug or not lost_database(exc):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        print(
            f"error: the study database stopped answering ({first}): start it again, then run the same command "
            "to resume (finished trials are kept)",
            file=sys.stderr,
        )
        return EXIT_LOST_DATABASE


def lost_database(exc: BaseException) -> bool:
    """Whether ``exc`` is the study database failing under a running command (a server stopped, a disk gone)."""
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    optuna = sys.modules.get("optuna.exceptions")
    kinds = tuple(
        kind
        for kind in (
            getattr(sqlalchemy, "OperationalError", None),
            getattr(sqlalchemy, "InterfaceError", None),
            getattr(optuna, "StorageInternalError", None),
        )
        if kind is not None
    )
    return bool(kinds) and isinstance(exc, kinds)
