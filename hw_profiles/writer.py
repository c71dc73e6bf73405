"""Write a profile back to YAML: a calibration bumps the version and cites itself as the source of what it fitted."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.files import atomic_target
from hw_profiles.schema import Profile, Unit


def with_unit(profile: Profile, unit_name: str, unit: Unit, source_key: str, source_text: str) -> Profile:
    """``profile`` with ``unit_name`` replaced and the source added (see :func:`next_version`).

    Sources no number cites any more (e.g. an earlier calibration of the same parameters) are dropped.
    """
    data = profile.model_dump()
    data["sources"][source_key] = source_text
    data["units"][unit_name] = unit.model_dump()
    updated = Profile.model_validate(data)
    cited = updated.cited_sources()
    return updated.model_copy(update={"sources": {k: v for k, v in updated.sources.items() if k in cited}})


def write_profile(profile: Profile, path: str | Path) -> None:
    """Save ``profile`` as YAML (``yaml.safe_dump``), written to a temporary file first and then moved in place."""
    path = Path(path)
    data = profile.model_dump(exclude_defaults=True)
    data["version"] = profile.version
    header = f"# Hardware profile {profile.name} v{profile.version}; every number cites a key of `sources`.\n"
    with atomic_target(path) as temporary:
        temporary.write_text(header + yaml.safe_dump(data, sort_keys=False, width=110))


def next_version(profile: Profile) -> Profile:
    """``profile`` with its version bumped: once per calibration run, whatever it fitted."""
    return profile.model_copy(update={"version": profile.version + 1})
