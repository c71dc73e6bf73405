"""What every command of the command line shares: the parser class, the console, printing a table, finding a study."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from core.errors import UserError

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

EXIT_USER_ERROR = 2


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit code 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def make_console() -> Console:
    """The console commands print to (no colour guessing; 160 columns when not a terminal)."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def comma_list(text: str, option: str, what: str) -> list[str]:
    """``a, b,c`` -> ``["a", "b", "c"]``; an empty list is a user error naming ``option``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError(f"{option} is empty: give a comma list of {what}")
    return names


def print_frame(frame: Any, title: str, output: str) -> None:
    """A DataFrame as CSV or JSON records on stdout, or as a table on the terminal."""
    if output == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif output == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=1) + "\n")
    else:
        from search.analysis.console import print_frame

        print_frame(make_console(), frame, title)


def storage_of(args: argparse.Namespace) -> str:
    """The storage URL of a command's ``--storage``, or the SQLite file of its ``--run-dir``."""
    from search.study import default_storage

    return args.storage or default_storage(Path(args.run_dir))


def study_of(args: argparse.Namespace) -> optuna.Study:
    """The existing study ``args.study`` in the command's storage (nothing is created)."""
    from search.study import load_existing_study, open_existing_storage

    return load_existing_study(open_existing_storage(storage_of(args)), args.study)


def add_study_args(p: argparse.ArgumentParser, named: bool = True) -> None:
    """The arguments that find a study: its name (when ``named``), the storage URL or the run folder."""
    from search.config import RunConfig

    if named:
        p.add_argument("study", help="study name (see `search studies`)")
    p.add_argument("--storage", help="Optuna storage URL (default: the run folder's SQLite file)")
    p.add_argument("--run-dir", default=RunConfig.run_dir, help="run folder whose studies.db is the default storage")
