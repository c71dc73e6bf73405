"""The host profile belongs to the machine it was built on: refused elsewhere, with the command that builds it."""

from __future__ import annotations

import csv

import pytest

from core.errors import UserError
from hw_profiles import load_profile, load_profile_file
from hw_profiles.host import CACHE_ENV, TEMPLATE, load_host_profile, profile_path, this_machine, with_machine_blocks
from hw_profiles.writer import write_profile
from tests.search.test_cli import run_cli


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch):
    """A machine on which no host profile was built."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_machine_is_named_by_cpu_instruction_sets_and_runtime():
    machine = this_machine()
    assert set(machine) == {"cpu", "arch", "isa", "onnxruntime"} and machine["cpu"] and machine["onnxruntime"][0].isdigit()
    other = {**machine, "isa": machine["isa"] + " amx_tile"}
    assert profile_path(other) != profile_path(machine)  # another instruction set: another profile


def test_no_host_profile_here_is_refused_with_the_command_that_builds_it(empty_cache):
    with pytest.raises(UserError, match=r"no host profile for this machine, .*: build it with `search calibrate --hw host`"):
        load_profile("host")
    result = run_cli("estimate", "--model", "small_cnn", "--hw", "host")
    assert result.returncode == 2 and "search calibrate --hw host" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    listed = run_cli("hw", "list")
    cells = "".join(listed.stdout.replace("│", " ").split())  # the table wraps long cells
    assert listed.returncode == 0 and "notbuiltonthismachine:searchcalibrate--hwhost" in cells


def test_another_machines_host_profile_is_never_used(empty_cache):
    template = load_profile_file(TEMPLATE)
    elsewhere = {**this_machine(), "cpu": "Intel Xeon Platinum 8480+", "isa": "avx512f avx512_vnni amx_tile amx_int8"}
    path = profile_path()
    path.parent.mkdir(parents=True)
    write_profile(template.model_copy(update={"machine": elsewhere}), path)  # copied in from another machine
    with pytest.raises(UserError, match=r"was built on Intel Xeon Platinum 8480\+ .* not this one: rebuild it"):
        load_host_profile()
    write_profile(template, path)  # no machine recorded at all: refused too
    with pytest.raises(UserError, match="built on an unknown machine"):
        load_host_profile()


def test_calibrate_builds_this_machines_host_profile_into_the_cache(empty_cache, tmp_path):
    """`search calibrate --hw host` (here from whole-model rows, the fast path) starts from the template and writes
    the profile of this machine where `--hw host` finds it."""
    rows = [
        {"model": "small_cnn", "precision": "fp32", "unit": "cpu", "threads": 1, "input_size": size, "latency_ms": ms}
        for size, ms in [(32, 0.05), (64, 0.18), (96, 0.40), (128, 0.70)]
    ]
    measured = tmp_path / "rows.csv"
    with measured.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=[*rows[0], "source"])
        writer.writeheader()
        writer.writerows([{**row, "source": "measured here"} for row in rows])
    result = run_cli("calibrate", "--hw", "host", "--measurements", str(measured), "--params", "gmacs.fp32")
    assert result.returncode == 0, result.stderr
    assert str(profile_path()) in result.stdout.replace("\n", "")
    built = load_host_profile()
    assert built.machine == this_machine() and built.version == load_profile_file(TEMPLATE).version + 1
    assert this_machine()["cpu"] in built.description
    assert run_cli("estimate", "--model", "small_cnn", "--hw", "host").returncode == 0


def test_channel_blocks_follow_the_machines_instruction_set():
    template = load_profile_file(TEMPLATE)

    def blocks(isa: str) -> dict[str, float]:
        unit = with_machine_blocks(template, {"isa": isa}).units["cpu"]
        return {precision: entry.value for precision, entry in unit.channel_block.items()}

    assert blocks("avx avx2 avx512f avx512bw fma") == {"fp32": 16.0, "int8": 8.0}
    assert blocks("avx avx2 fma") == {"fp32": 8.0, "int8": 8.0}
    assert with_machine_blocks(template, {"isa": "asimd"}) == template  # no known block: unchanged
    profile = with_machine_blocks(template, {"isa": "avx512f avx512bw"})
    assert all(entry.source in profile.sources for entry in profile.units["cpu"].channel_block.values())


def _write_host_profile(units_dropped: tuple[str, ...] = (), calibrated: tuple[str, ...] = ()) -> None:
    """This machine's host profile from the template: ``units_dropped`` left out (a profile built before they
    existed), the MAC rates of ``calibrated`` units marked as fitted here."""
    data = load_profile_file(TEMPLATE).model_dump()
    for name in units_dropped:
        del data["units"][name]
    for name in calibrated:
        data["sources"]["calibration-2026-12-05-" + name] = "fitted here (test)"
        for rate in data["units"][name]["gmacs"].values():
            rate["source"] = "calibration-2026-12-05-" + name
    data["machine"] = this_machine()
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_profile(type(load_profile_file(TEMPLATE)).model_validate(data), path)


def test_an_uncalibrated_litert_unit_is_refused_with_the_command_that_calibrates_it(empty_cache):
    _write_host_profile()
    assert load_profile("host")[2] == "cpu"
    with pytest.raises(
        UserError,
        match=r"unit xnnpack of the host profile is not calibrated on this machine: run `search calibrate --hw host:xnnpack`",
    ):
        load_profile("host:xnnpack")
    result = run_cli("estimate", "--model", "small_cnn", "--hw", "host:xnnpack")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_a_host_profile_built_before_the_litert_unit_gets_it_uncalibrated(empty_cache):
    _write_host_profile(units_dropped=("xnnpack",))
    with pytest.raises(UserError, match="not calibrated on this machine"):
        load_profile("host:xnnpack")


def test_a_host_profile_built_before_host_runtime_existed_still_calibrates_in_onnxruntime(empty_cache):
    from hw_profiles.host import calibration_start

    _write_host_profile(units_dropped=("xnnpack",))
    path = profile_path()
    path.write_text(path.read_text().replace("    host_runtime: onnxruntime\n", ""))
    assert load_profile_file(path).units["cpu"].host_runtime is None
    start = calibration_start()
    assert start.units["cpu"].host_runtime == "onnxruntime" and start.units["xnnpack"].host_runtime == "litert"


def test_calibrating_the_litert_unit_needs_the_host_profile_first(empty_cache):
    result = run_cli("calibrate", "--hw", "host:xnnpack")
    assert result.returncode == 2 and "build it with `search calibrate --hw host`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not empty_cache.exists()


def test_a_study_on_the_litert_unit_times_every_candidate_in_litert(empty_cache):
    from search.config import RunConfig
    from search.driver.inputs import resolve_inputs

    _write_host_profile(calibrated=("xnnpack",))
    inputs = resolve_inputs(RunConfig(hw="host:xnnpack", run_dir=str(empty_cache.parent / "runs")))
    assert inputs.litert_host and inputs.hw == "host:xnnpack"
    assert not resolve_inputs(RunConfig(hw="pixel7", run_dir=str(empty_cache.parent / "runs"))).litert_host


@pytest.mark.slow
def test_calibrate_host_xnnpack_times_tflite_files_here_and_fits_the_unit(empty_cache):
    _write_host_profile()
    result = run_cli("calibrate", "--hw", "host:xnnpack", "--per-model", "1", "--input-size", "32")
    assert result.returncode == 0, result.stderr
    profile, unit, _ = load_profile("host:xnnpack")
    assert all(rate.source.startswith("calibration-") for rate in unit.gmacs.values())
    assert unit.gmacs["fp16"].value == unit.gmacs["fp32"].value  # XNNPACK computes its FP16 layers in FP32 here
    assert unit.weights_cache_kb is not None and unit.weights_cache_kb.source == "caches-this-machine"
    assert (
        "LiteRT" in profile.sources[unit.gmacs["int8"].source]
        and this_machine()["cpu"] in profile.sources[unit.gmacs["int8"].source]
    )
    assert profile.units["cpu"] == load_profile_file(TEMPLATE).units["cpu"]  # the onnxruntime unit is left as it was
    estimate = run_cli("estimate", "--model", "small_cnn", "--hw", "host:xnnpack")
    assert estimate.returncode == 0, estimate.stderr
