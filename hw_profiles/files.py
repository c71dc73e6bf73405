"""Reading one profile YAML file: safe_load, then validated by the schema; one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError, yaml_where

if TYPE_CHECKING:
    from hw_profiles.schema import Profile


def load_profile_file(path: str | Path) -> Profile:
    """Read and validate one profile YAML (``yaml.safe_load``); a UserError names the first problem."""
    import yaml
    from pydantic import ValidationError

    from hw_profiles.schema import Profile

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"profile '{path}' is not valid YAML{yaml_where(exc)}: fix the file") from None
    except UnicodeDecodeError:
        raise UserError(f"profile '{path}' is not UTF-8 text: save it as UTF-8") from None
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "top level"
        raise UserError(f"profile '{path}': {loc}: {err['msg']}") from None
