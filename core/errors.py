"""The one error root for mistakes a user can fix: printed as one line, exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str) -> UserError:
    """Build the error for an unknown name, listing the closest known names.

    Args:
        kind: What was looked up, e.g. ``"hardware profile"``.
        name: The name the user gave.
        known: Every valid name.
        hint: The command or option that lists valid names.
    """
    known = sorted(known)
    by_lower = {k.lower(): k for k in known}  # PIXEL7 -> pixel7
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)]
    if close:
        suggestion = f"did you mean {', '.join(close)}?"
    elif len(known) <= 12:
        suggestion = f"known: {', '.join(known)}"
    else:
        suggestion = f"see {hint}"
    return UserError(f"unknown {kind} '{name}': {suggestion}")


def yaml_where(exc: Exception) -> str:
    """`` at line N`` for a YAML parse error that knows its position, else an empty string."""
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark else ""


def check_at_least(option: str, value: float | None, minimum: float, unit: str = "") -> None:
    """Reject ``value`` of ``option`` below ``minimum`` with one line (``None``, an unset option, passes)."""
    if value is not None and value < minimum:
        raise UserError(f"{option} must be at least {minimum:g}{f' {unit}' if unit else ''}")
