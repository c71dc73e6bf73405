"""Output files: checking an ``--out`` path, and writing so that readers never see a half-written file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import UserError


def check_out_file(out: str | Path, example: str) -> Path:
    """``--out`` as a file path whose folder exists and which is not a folder itself (``example``: a file name to suggest)."""
    path = Path(out)
    if path.is_dir():
        raise UserError(f"--out '{out}' is a folder: pass a file name such as {path / example}")
    if not path.parent.is_dir():
        raise UserError(f"--out '{out}': folder '{path.parent}' does not exist: create it first")
    return path


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` on success, removed on failure."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_files(files: dict[Path, str]) -> list[Path]:
    """Write each text file (UTF-8) through :func:`atomic_target`: a reader sees each one old or new, never half
    written. Returns the paths in order."""
    for path, text in files.items():
        with atomic_target(path) as temporary:
            temporary.write_text(text, encoding="utf-8")
    return list(files)
