"""The test split is held out from the search: scored only for trials that could be on the front (and recipes)."""

from __future__ import annotations

from dataclasses import asdict

import optuna
import pytest
from optuna.trial import TrialState

from search.analysis.rescore import Repriced, score_untested_front
from search.data import DataSpec
from search.driver.loop import TrialLoop
from search.study import Budgets
from search.worker import TrialOutcome

MAX, MIN = optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE


def _loop(tmp_path) -> TrialLoop:
    """A loop over a study holding one finished trial: val 95%, 1.0 ms (reference val 96%, budget 3 points)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[95.0, 1.0], constraints={"accuracy_drop": -2.0}))
    budgets = Budgets(reference_top1=0.96, max_accuracy_drop=3.0)
    return TrialLoop(study, None, None, {}, ["accuracy", "latency"], budgets, tmp_path, 1, 10)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metrics", "scored"),
    [
        ({"val_top1": 0.96, "latency_ms": 1.5}, True),  # more accurate, slower: on the front
        ({"val_top1": 0.94, "latency_ms": 0.5}, True),  # faster, less accurate, within budget: on the front
        ({"val_top1": 0.95, "latency_ms": 1.0}, True),  # equal to a front member: not dominated
        ({"val_top1": 0.94, "latency_ms": 1.2}, False),  # dominated: it stays dominated whatever comes later
        ({"val_top1": 0.92, "latency_ms": 0.1}, False),  # 4 points below the reference: over the budget
        ({"val_top1": 0.99, "latency_ms": 0.1, "test_top1": 0.9}, False),  # scored already (a recipe)
    ],
)
def test_only_a_candidate_that_could_be_on_the_front_is_scored_on_test(tmp_path, metrics, scored):
    assert _loop(tmp_path)._may_join_front(TrialOutcome(metrics=metrics)) is scored


def test_a_failed_candidate_is_not_scored_on_test(tmp_path):
    assert not _loop(tmp_path)._may_join_front(TrialOutcome(error="RuntimeError: NaN loss"))


def test_the_test_split_joins_the_outcome_or_fails_it():
    evaluated = TrialOutcome(metrics={"val_top1": 0.9, "seconds": 2.0}, onnx_bytes=b"g", worker="w")
    joined = evaluated.with_test(TrialOutcome(metrics={"test_top1": 0.8, "stage_s:test": 0.5, "seconds": 0.5}))
    assert joined.metrics == {"val_top1": 0.9, "test_top1": 0.8, "stage_s:test": 0.5, "seconds": 2.5}
    assert joined.onnx_bytes == b"g" and joined.worker == "w" and joined.error is None
    failed = evaluated.with_test(TrialOutcome(error="OSError: gone"))  # the candidate stands, the reason is kept
    assert failed.error is None and failed.metrics == evaluated.metrics and failed.test_error == "OSError: gone"


def _row(number: int, values: list[float] | None, attrs: dict) -> Repriced:
    trial = optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.0, 0.0])
    trial.number = number
    return Repriced(trial, attrs, values, {})


def test_rescore_scores_the_new_fronts_members_that_lack_a_test_score(tmp_path, tiny_cnn):
    from spaces.onnx_export import export_onnx

    graph = tmp_path / "g.onnx"
    graph.write_bytes(export_onnx(tiny_cnn, 16).SerializeToString())
    spec = asdict(DataSpec(input_size=16))
    scored = {"onnx": str(graph), "test_top1": 0.5}
    rows = [
        _row(0, [90.0, 2.0], dict(scored)),  # on the front, scored in the search
        _row(1, [80.0, 1.0], {"onnx": str(graph)}),  # on the new device's front, never scored
        _row(2, [70.0, 3.0], {"onnx": str(graph)}),  # dominated on the new device too
        _row(3, None, {"onnx": str(graph)}),  # cannot run there
    ]
    assert score_untested_front(rows, [MAX, MIN], spec) == ""
    assert rows[0].attrs["test_top1"] == 0.5 and 0.0 <= rows[1].attrs["test_top1"] <= 1.0
    assert "test_top1" not in rows[2].attrs and "test_top1" not in rows[3].attrs

    again = [_row(1, [80.0, 1.0], {"onnx": str(graph)})]
    assert score_untested_front(again, [MAX, MIN], None) == "the source study does not record its data"
    missing = {**spec, "kind": "fashion-mnist", "path": str(tmp_path / "nowhere")}
    assert "cannot be loaded here" in score_untested_front(again, [MAX, MIN], missing)
