"""search rescore's rules on their own (the end-to-end test rescores a real study)."""

from __future__ import annotations

from hw_profiles import load_profile
from search.analysis.rescore import rescored_name, unrunnable
from search.study.records import TrialRecord


def test_a_graph_elsewhere_or_a_missing_precision_cannot_be_repriced(tmp_path):
    graph = tmp_path / "00003.onnx"
    graph.write_bytes(b"")
    _, rpi4, _ = load_profile("rpi4")
    mixed = TrialRecord(3, "COMPLETE", precisions={"a": "int8", "b": "fp16", "c": "fp16"}, onnx=str(graph))
    assert unrunnable(mixed, rpi4, "rpi4:cpu") == "cannot run on rpi4:cpu: 2 layers in fp16, which it lacks (it runs fp32, int8)"
    elsewhere = TrialRecord(4, "COMPLETE", precisions={"a": "int8"}, onnx=str(tmp_path / "gone.onnx"))
    assert "is not on this machine" in str(unrunnable(elsewhere, rpi4, "rpi4:cpu"))
    int8 = TrialRecord(5, "COMPLETE", precisions={"a": "int8", "b": "fp32"}, onnx=str(graph))
    assert unrunnable(int8, rpi4, "rpi4:cpu") is None


def test_the_rescored_study_is_named_after_source_and_device():
    assert rescored_name("small_cnn-digits-pixel7-cpu", "rpi4:cpu") == "small_cnn-digits-pixel7-cpu@rpi4-cpu"
