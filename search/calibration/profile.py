"""`search calibrate` as one call: which profile and unit, fitted from measurements or measured here, and where the
new version goes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna
    from rich.console import Console

    from evaluators.calibration import FitResult
    from hw_profiles.schema import Profile


@dataclass(frozen=True)
class CalibrationRequest:
    """What `search calibrate` was asked: the profile (``NAME[:UNIT]``) and how to fit it.

    ``measurements`` is a CSV of measured latencies (a device profile); without it, ``host`` units are measured on
    this machine (``per_model`` random candidates of each calibration model at ``input_size``).
    """

    hw: str
    measurements: str | None = None
    params: list[str] | None = None
    latency_scale: float = 1.0
    per_model: int | None = None
    input_size: int = 224
    seed: int = 0
    out: str | None = None


@dataclass(frozen=True)
class Calibrated:
    """A new profile version, the fits that made it, and the file it belongs in."""

    profile: Profile
    fits: dict[str, FitResult]
    out: Path


def calibrate_profile(request: CalibrationRequest, log: Callable[[str], None]) -> Calibrated:
    """Fit the profile of ``request`` (nothing is written: see :func:`write_calibrated`).

    Raises:
        UserError: an unknown profile or unit, a device profile without measurements, a bad ``out``.
    """
    from core.errors import unknown_name
    from core.files import check_out_file
    from hw_profiles import PROFILE_DIR, load_profile
    from hw_profiles.host import HOST, calibration_start, load_host_profile, profile_path, with_template_units
    from search.calibration.calibrate import (
        COLUMNS,
        calibrate_from_measurements,
        calibrate_host_profile,
        calibrate_litert_unit,
    )
    from spaces.litert import require_litert

    name = request.hw.partition(":")[0]
    if name == HOST:  # this machine's profile: fitted from its own one or the template, cached for this machine
        profile = calibration_start()
        default_out = profile_path()
    else:
        profile, _, _ = load_profile(name)
        # a profile read from a file is written back to that file; a bundled one to its own file (never a path
        # made from a name inside the YAML)
        default_out = Path(name) if Path(name).suffix in (".yaml", ".yml") else PROFILE_DIR / f"{name}.yaml"
    out = check_out_file(request.out, f"{profile.name}.yaml") if request.out else default_out
    unit_name = request.hw.partition(":")[2] or profile.default_unit
    if unit_name not in profile.units:
        raise unknown_name(f"unit of {profile.name}", unit_name, profile.units, f"search hw show {profile.name}")
    runtime = profile.units[unit_name].host_runtime
    if request.measurements:
        new, fits = calibrate_from_measurements(profile, request.measurements, request.params, log, request.latency_scale)
    elif runtime == "onnxruntime":
        new, fits = calibrate_host_profile(profile, request.per_model or 10, request.seed, request.input_size, log)
    elif runtime == "litert":
        require_litert()
        profile = with_template_units(load_host_profile())  # the onnxruntime unit first: it makes the profile
        per_model = request.per_model or 4
        new, fits = calibrate_litert_unit(profile, unit_name, per_model, request.seed, request.input_size, log, request.params)
    else:
        raise UserError(f"{profile.name} is a device profile: pass --measurements FILE.csv (columns {', '.join(COLUMNS)})")
    if name == HOST:
        new = with_this_machine(new)
    return Calibrated(new, fits, out)


def with_this_machine(profile: Profile) -> Profile:
    """``profile`` described as this machine's (its CPU, and the runtimes its two units time)."""
    from hw_profiles.host import describe, this_machine

    machine = this_machine()
    about = (
        f"This machine, {describe(machine)}: its CPU running the ONNX graph in onnxruntime (unit cpu) and the "
        ".tflite in LiteRT with XNNPACK (unit xnnpack)"
    )
    return profile.model_copy(update={"machine": machine, "description": about})


def write_calibrated(calibrated: Calibrated) -> None:
    """Write the new profile version to its file (atomically)."""
    from hw_profiles.writer import write_profile

    calibrated.out.parent.mkdir(parents=True, exist_ok=True)
    write_profile(calibrated.profile, calibrated.out)


def rerank(
    study: optuna.Study, storage: optuna.storages.BaseStorage, calibrated: Calibrated, run_dir: Path, console: Console
) -> None:
    """``study``'s trials re-priced with the new profile version (on the study's own unit) as study
    ``STUDY@PROFILE-vN``, and its front printed and exported."""
    from search.analysis.rescore import rescore
    from search.artifacts.export import report_front
    from search.study import StudyInfo

    new = calibrated.profile
    name = f"{study.study_name}@{new.name}-v{new.version}"
    unit = StudyInfo.of(study).unit  # the study's own unit, not the profile's default
    done = rescore(study, storage, f"{calibrated.out}:{unit}", name, replace=True)
    console.print(f"front of '{study.study_name}' re-ranked with the new profile: study '{name}'")
    report_front(done.study, StudyInfo.of(done.study).hw, run_dir, console)
