"""Hardware profiles: one YAML per device under this folder, validated by :class:`hw_profiles.schema.Profile`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError, unknown_name
from hw_profiles.files import load_profile_file

if TYPE_CHECKING:
    from hw_profiles.schema import Profile, Unit

PROFILE_DIR = Path(__file__).parent

__all__ = ["PROFILE_DIR", "list_profiles", "load_profile", "load_profile_file"]


def list_profiles() -> list[str]:
    """Names of the bundled profiles and ``host`` (this machine's, built here)."""
    from hw_profiles.host import HOST

    return sorted([*(p.stem for p in PROFILE_DIR.glob("*.yaml")), HOST])


def load_profile(spec: str) -> tuple[Profile, Unit, str]:
    """Resolve ``NAME`` or ``NAME:UNIT`` (or a path to a YAML file) to the profile, the unit and its name; ``host``
    is this machine's own profile (:mod:`hw_profiles.host`)."""
    from hw_profiles.host import HOST, check_calibrated, load_host_profile, with_template_units

    name, _, unit_name = spec.partition(":")
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"profile file '{path}' does not exist: give a profile YAML's path or a name of `search hw list`")
        profile = load_profile_file(path)
    elif name == HOST:
        profile = with_template_units(load_host_profile())
    elif name in list_profiles():
        profile = load_profile_file(PROFILE_DIR / f"{name}.yaml")
    else:
        raise unknown_name("hardware profile", name, list_profiles(), "search hw list")
    unit_name = unit_name or profile.default_unit
    if unit_name not in profile.units:
        raise unknown_name(f"unit of {profile.name}", unit_name, profile.units, f"search hw show {profile.name}")
    if name == HOST:
        check_calibrated(profile, unit_name)
    return profile, profile.units[unit_name], unit_name
