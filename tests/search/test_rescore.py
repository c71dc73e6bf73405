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


def test_replace_only_swaps_in_a_rescore_of_the_same_source(tmp_path):
    import optuna
    import pytest

    from core.errors import UserError
    from search.analysis.rescore import rescore
    from search.study import StudyInfo, create_study, open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    info = StudyInfo(model="small_cnn", data="digits", hw="pixel7:cpu", objectives=("accuracy", "latency"))
    source = create_study(storage, "src", optuna.samplers.RandomSampler(), info)
    other = create_study(storage, "other", optuna.samplers.RandomSampler(), info)
    first = rescore(source, storage, "rpi4").study
    assert StudyInfo.of(first).rescored_from == "src" and StudyInfo.of(first).hw == "rpi4:cpu"
    with pytest.raises(UserError, match="exists: pass --replace"):
        rescore(source, storage, "rpi4")
    again = rescore(source, storage, "rpi4", replace=True).study
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    assert names == ["other", "src", "src@rpi4-cpu"] and again._study_id != first._study_id
    with pytest.raises(UserError, match="not made by `search rescore`"):
        rescore(source, storage, "rpi4", "other", replace=True)
    with pytest.raises(UserError, match="is the study being rescored"):
        rescore(source, storage, "rpi4", "src", replace=True)
    with pytest.raises(UserError, match="a rescore of 'src'"):
        rescore(other, storage, "rpi4", "src@rpi4-cpu", replace=True)
    assert StudyInfo.of(optuna.load_study(study_name="other", storage=storage)).rescored_from is None
