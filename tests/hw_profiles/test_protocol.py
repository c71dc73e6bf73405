"""Measurement protocols: every published row and every device unit names one, and a row of other kernels is
mapped by the unit's sourced factor or refused (hw_profiles.protocol, Unit.protocol_factor)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from core.errors import UserError
from hw_profiles import PROFILE_DIR, list_profiles, load_profile, load_profile_file
from hw_profiles.protocol import Protocol

DOCS = Path(__file__).resolve().parents[2] / "docs"
PUBLISHED = [*sorted((DOCS / "calibration").glob("*.csv")), DOCS / "validation" / "published_checks.csv"]


def test_a_protocol_reads_back_as_written_and_a_bad_one_is_one_line():
    protocol = Protocol.parse("xnnpack@2024/prime/invoke")
    assert (protocol.kernels, protocol.year, protocol.cores, protocol.timed) == ("xnnpack", 2024, "prime", "invoke")
    assert str(protocol) == "xnnpack@2024/prime/invoke"
    for text, message in (("xnnpack", "is not KERNELS@YEAR/CORES/TIMED"), ("tvm@2022/big/invoke", "kernels 'tvm'"),
                          ("xnnpack@2022/middle/invoke", "cores 'middle'"), ("xnnpack@2022/big/forward", "timed")):  # fmt: skip
        with pytest.raises(UserError, match=message):
            Protocol.parse(text)


def test_the_year_and_cores_are_recorded_but_kernels_and_timing_decide():
    assert Protocol.parse("xnnpack@2020/all/invoke").matches(Protocol.parse("xnnpack@2024/prime/invoke"))
    assert not Protocol.parse("xnnpack@2024/prime/invoke").matches(Protocol.parse("xnnpack@2024/prime/task"))
    assert not Protocol.parse("xnnpack@2024/prime/invoke").matches(Protocol.parse("tflite-cpu@2024/prime/invoke"))


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.name)
def test_every_published_row_names_its_publication_and_protocol(path):
    for row in csv.DictReader(path.open()):
        assert row["publication"] and " " not in row["publication"], row
        Protocol.parse(row["protocol"])


def test_every_device_unit_states_what_its_latencies_mean():
    for name in list_profiles():
        path = PROFILE_DIR / f"{name}.yaml"
        if path.is_file():
            for unit_name, unit in load_profile_file(path).units.items():
                assert unit.protocol, f"{name}:{unit_name}"


def test_a_row_of_other_kernels_is_mapped_by_a_sourced_factor_or_refused():
    _, pixel4, _ = load_profile("pixel4:cpu")  # XNNPACK; rows of TFLite's built-in kernels map by a cited factor
    assert pixel4.protocol_factor("xnnpack@2020/big/invoke", "fp32") == 1.0
    fp32, int8 = (
        pixel4.protocol_factor("tflite-cpu@2019/big/invoke", "fp32"),
        pixel4.protocol_factor("tflite-cpu@2019/big/invoke", "int8"),
    )
    assert fp32 is not None and int8 is not None and 0 < fp32 < int8 < 1
    assert pixel4.protocol_factors["tflite-cpu:fp32"].source in load_profile("pixel4")[0].sources
    assert pixel4.protocol_factor("xnnpack@2024/unstated/task", "fp32") is None  # a whole task is not an invoke
    assert pixel4.protocol_factor("ncnn@2022/all/invoke", "fp32") is None
    _, pixel7, _ = load_profile("pixel7:cpu")
    assert pixel7.protocol_factor("tflite-cpu@2019/big/invoke", "fp32") is None
