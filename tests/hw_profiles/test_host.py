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
