"""Latency and energy bands of a profile unit, and which front members' bands overlap (their order is uncertain)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hw_profiles.schema import Band
    from search.study import TrialRecord


def unit_band(hw: str, metric: str = "latency") -> Band | None:
    """The latency (or ``metric="energy"``) band of profile unit ``hw``, or None (no band, or the profile is not on
    this machine)."""
    from core.errors import UserError
    from hw_profiles import load_profile

    try:
        unit = load_profile(hw)[1]
    except UserError:
        return None
    return unit.energy_band if metric == "energy" else unit.latency_band


def overlapping(members: list[TrialRecord], band: Band | None) -> dict[int, list[int]]:
    """For each front member (by trial number), the other members whose latency bands overlap its own."""
    spans = {}
    for member in members:
        latency = member.metrics["latency_ms"]
        spans[member.number] = band.around(latency) if band else (latency, latency)
    return {n: [m for m, (lo, hi) in spans.items() if m != n and lo <= spans[n][1] and spans[n][0] <= hi] for n in spans}
