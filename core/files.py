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


def replace_folder(new: Path, target: Path) -> None:
    """Put folder ``new`` in the place of ``target`` so that a reader, or a kill at any moment, finds the old folder
    or the new one, never neither: the two are exchanged in one step (Linux ``renameat2(RENAME_EXCHANGE)``), then
    the old one is removed. Where the exchange is not available, the old folder is moved aside first and a later
    call finds it there if a kill came in between."""
    import shutil

    aside = target.with_name(f".{target.name}.old")
    if not target.exists() and aside.exists():  # a kill between the two renames of an earlier call
        aside.replace(target)
    if not target.exists():
        new.replace(target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # it holds the old folder now
        return
    shutil.rmtree(aside, ignore_errors=True)
    target.replace(aside)
    new.replace(target)
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where the system cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
