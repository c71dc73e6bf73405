"""Kinds of data set a study can read (``--data KIND[:PATH]``).

The vocabulary lives here; ``search.data`` registers each kind with the
functions that check and load it, so the CLI's choices, its help text and the
loaders come from one list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.registry import Registry


@dataclass(frozen=True)
class DataKind:
    """One kind of data set.

    Attributes:
        name: ``--data`` prefix (``cifar10``).
        needs_path: Whether ``--data`` must name a folder (``cifar10:DIR``); embedded sets take none.
            A kind with a ``default_path`` takes an optional one.
        default_input_size: Input resolution when ``--input-size`` is not given.
        check: Called with the resolved folder before anything runs; raises UserError if the data is not there.
        load: Builds the train/val/test splits from a ``search.data.DataSpec``.
        description: One line for help texts.
        default_path: Where its files are when ``--data`` names no folder (a system package's location).
        own_test_set: Whether it ships a separate test set (then ``--train-size`` subsets only its train part).
        mirror_invariant: Whether a mirrored image keeps its class (clothes, photos: yes; digits: no); baseline
            training flips images only where it does.
    """

    name: str
    needs_path: bool
    default_input_size: int
    check: Callable[[Path], object]
    load: Callable[[Any], Any]
    description: str = ""
    default_path: str | None = None
    own_test_set: bool = True
    mirror_invariant: bool = False

    @property
    def usage(self) -> str:
        """How it is written on the command line."""
        if self.default_path:
            return f"{self.name}[:DIR]"
        return f"{self.name}:DIR" if self.needs_path else self.name


DATA_KINDS: Registry[DataKind] = Registry("data set", "search run --help")
