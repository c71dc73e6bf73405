"""A registry of named entries with listing and one-line errors that name the closest entry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from core.errors import unknown_name


class Named(Protocol):
    """What a registry holds: anything with a ``name``."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Entries by name, in registration order.

    Args:
        kind: What an entry is, for error messages (``"precision"``, ``"objective"``).
        hint: Where a user finds the valid names (an option or a command).
    """

    def __init__(self, kind: str, hint: str) -> None:
        self.kind, self.hint = kind, hint
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add ``entry``; a second entry of the same name is a programming error."""
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} '{entry.name}' is registered already")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a toy one clean up with this)."""
        del self._entries[name]

    def get(self, name: str) -> T:
        """The entry called ``name``; a UserError naming the closest names if there is none."""
        if name not in self._entries:
            raise unknown_name(self.kind, name, self._entries, self.hint)
        return self._entries[name]

    def names(self) -> list[str]:
        """Every name, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)
