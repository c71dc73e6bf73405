from __future__ import annotations

import pytest
import yaml

from core.errors import UserError
from hw_profiles import PROFILE_DIR, list_profiles, load_profile, load_profile_file


@pytest.mark.parametrize("name", list_profiles())
def test_every_bundled_profile_validates(name):
    profile, unit, unit_name = load_profile(name)
    assert unit_name == profile.default_unit
    assert unit.precisions


@pytest.mark.parametrize("name", [n for n in list_profiles() if n != "host"])
def test_every_calibrated_number_of_a_device_profile_has_its_prior(name):
    from evaluators.calibration import at_priors, get_value

    profile = load_profile(name)[0]
    for unit in profile.units.values():
        start = at_priors(unit)  # the hold-out's folds start here: refuses a calibrated number without a prior
        for path, prior in unit.priors.items():
            assert get_value(start, path) == prior.value


def test_a_calibrated_number_without_a_prior_is_refused():
    from evaluators.calibration import at_priors

    unit = load_profile("pixel4:cpu")[1]
    bare = unit.model_copy(update={"priors": {}})
    with pytest.raises(ValueError, match=r"calibrated numbers without a prior: .*gmacs\.fp32"):
        at_priors(bare)


def _write(tmp_path, mutate):
    data = yaml.safe_load((PROFILE_DIR / "pixel7.yaml").read_text())
    mutate(data)
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["units"]["cpu"].update(turbo=True), "units.cpu.turbo: Extra inputs are not permitted"),
        (lambda d: d["units"]["cpu"]["overhead_us"].pop("source"), "units.cpu.overhead_us.source: Field required"),
        (lambda d: d["units"]["cpu"]["overhead_us"].update(source="nowhere"), "cites source 'nowhere'"),
        (lambda d: d["units"]["cpu"].update(precisions=["fp32", "int4"]), "precisions"),
        (lambda d: d["units"]["cpu"].update(precisions=["fp32", "int8"]), "gmacs has fp16, which the unit does not run"),
        (lambda d: d.update(default_unit="npu"), "default_unit 'npu' is not one of the units"),
        (
            lambda d: d["units"]["gpu"]["memory_overlap"].update(value=1.5),
            "memory_overlap 1.5 is a share: it must lie between 0 and 1",
        ),
        (lambda d: d["units"]["cpu"]["priors"].update(turbo={"value": 1, "source": "x1"}), "priors name turbo"),
    ],
)
def test_schema_errors_are_one_clear_line(tmp_path, mutate, message):
    with pytest.raises(UserError) as info:
        load_profile_file(_write(tmp_path, mutate))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nunits: [a, b\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_profile_file(path)


def test_unknown_profile_and_unit_suggest_close_names():
    with pytest.raises(UserError, match="did you mean pixel7"):
        load_profile("pixel8")
    with pytest.raises(UserError, match=r"unknown unit of pixel7 'npu'.*cpu"):
        load_profile("pixel7:npu")


def test_profile_file_path_is_accepted(tmp_path):
    path = _write(tmp_path, lambda d: d.update(name="mine"))
    profile, _, _ = load_profile(str(path))
    assert profile.name == "mine"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["units"]["cpu"].update(turbo=True), "turbo: Extra inputs are not permitted"),
        (lambda d: d["units"]["cpu"]["overhead_us"].pop("source"), "overhead_us.source: Field required"),
        (lambda d: d["units"]["tpu"]["gmacs"].update(fp16=d["units"]["tpu"]["gmacs"]["int8"]), "does not run"),
    ],
)
def test_schema_errors_exit_2_on_the_command_line(tmp_path, mutate, message):
    from tests.search.test_cli import run_cli

    result = run_cli("estimate", "--hw", str(_write(tmp_path, mutate)), "--model", "small_cnn", "--input-size", "32")
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_a_refit_keeps_the_source_of_an_energy_band():
    from hw_profiles.writer import with_unit

    profile = load_profile_file(PROFILE_DIR / "rpi4.yaml")
    band = profile.units["cpu"].energy_band
    assert band is not None and band.source in profile.cited_sources()
    refit = with_unit(profile, "cpu", profile.units["cpu"], "refit", "a new calibration")  # drops uncited sources
    assert band.source in refit.sources
    data = yaml.safe_load((PROFILE_DIR / "rpi4.yaml").read_text())
    del data["sources"][band.source]
    with pytest.raises(ValueError, match="energy_band cites source"):
        type(profile).model_validate(data)
