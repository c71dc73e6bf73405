"""`search compare`, `search run --strategy` and `search sensitivity`: the comparison's logic on a hand-made study,
then the commands for real (Optuna on SQLite, local Ray, Torch-Pruning, NNCF, onnxruntime) on digits."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from search.driver.compare import BEST, BEST_SEARCHED, comparison_table, dominates
from search.study.records import TrialRecord
from tests.search.test_cli import run_cli

DATA = ["--baseline-epochs", "2", "--calibration-size", "32", "--input-size", "16"]  # what sensitivity also takes
FAST = [*DATA, "--finetune-epochs", "1", "--finetune-steps", "0"]


def _trial(number: int, val: float, test: float, latency: float, size: float, baseline: str = "") -> optuna.trial.FrozenTrial:
    attrs = {
        "val_top1": val,
        "test_top1": test,
        "test_macro_f1": test,
        "latency_ms": latency,
        "energy_mj": 2 * latency,
        "host_latency_ms": latency,
        "size_bytes": size,
        "params": size / 4,
        "macs": 1e6,
        "plan": {"layers": {}},
    }
    if baseline:
        attrs["baseline"] = baseline
    return optuna.trial.create_trial(
        values=[100 * val, latency],
        params={},
        distributions={},
        user_attrs=attrs,
        system_attrs={"constraints": [100 * (0.90 - val) - 1.5]},
    )


@pytest.fixture()
def study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for trial in (
        _trial(0, 0.90, 0.89, 10.0, 1000, "uncompressed"),
        _trial(1, 0.89, 0.885, 5.0, 250, "all-int8"),
        _trial(2, 0.86, 0.85, 6.0, 400, "prune-uniform-50"),  # dominated by trial 3 (and by trial 1)
        _trial(3, 0.895, 0.89, 3.0, 300),  # searched: dominates every recipe on val and on test
        _trial(4, 0.80, 0.79, 1.0, 100),  # searched, fastest, but 10 points below: outside the budget
    ):
        study.add_trial(trial)
    return study


def test_dominance_needs_both_at_least_as_good_and_one_strictly():
    a, b = (TrialRecord(0, "COMPLETE", metrics={"val_top1": v, "latency_ms": lat}) for v, lat in ((0.9, 1.0), (0.9, 1.0)))
    assert not dominates(a, b, "val_top1")
    faster = TrialRecord(1, "COMPLETE", metrics={"val_top1": 0.9, "latency_ms": 0.5})
    assert dominates(faster, a, "val_top1") and not dominates(a, faster, "val_top1")


def test_comparison_rows_changes_dominance_and_the_seed_claim(study):
    table = comparison_table({"m": study}, 1.5)
    rows = table.set_index("entry")
    assert list(table["entry"]) == ["baseline", "all-int8", "prune-uniform-50", BEST, BEST_SEARCHED]
    assert rows.loc["all-int8", "size_change_pct"] == pytest.approx(-75.0)
    assert rows.loc["all-int8", "dominated_by"] == "3 (searched, also on test)"
    assert rows.loc["prune-uniform-50", "dominated_by"] == "3 (searched, also on test)"
    best = rows.loc[BEST]
    assert best["trial"] == 3 and best["origin"] == "searched"  # trial 4 is faster but outside the budget
    assert best["latency_change_pct"] == pytest.approx(-70.0) and best["size_change_pct"] == pytest.approx(-70.0)
    assert best["seed_claim"] == "yes"
    assert rows.loc[BEST_SEARCHED, "trial"] == 3


@pytest.mark.slow
def test_compare_runs_every_model_then_resumes_without_new_trials(tmp_path):
    args = ["compare", "--models", "small_cnn,hl_cnn", "--data", "digits", "--train-size", "0", "--trials", "12"]
    args += ["--workers", "2", "--out", str(tmp_path), *FAST]
    first = run_cli(*args, timeout=1500)
    assert first.returncode == 0, first.stdout + first.stderr
    table = pd.read_csv(tmp_path / "compare-pixel7-cpu.csv")
    assert set(table["model"]) == {"small_cnn", "hl_cnn"}
    for model, rows in table.groupby("model"):
        assert {"baseline", "seed-hybrid", "int8-ort", "int8-nncf", "prune-uniform-25-int8"} <= set(rows["entry"])
        base = rows[rows["entry"] == "baseline"].iloc[0]
        assert base["size_change_pct"] == 0 and base["test_top1"] > 20  # trained: twice chance or better
        int8 = rows[rows["entry"] == "int8-ort"].iloc[0]
        # INT8 weights: about a quarter of the FP32 bytes (the HL-CNN's SE convs, which NNCF leaves in FP32, hold 40%)
        assert int8["size_change_pct"] < (-70 if model == "small_cnn" else -40)
    assert "Whole comparison" in (tmp_path / "compare-pixel7-cpu.md").read_text()
    assert "plotly" in (tmp_path / "compare-pixel7-cpu.html").read_text()
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    counts = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert counts == {"small_cnn-digits-pixel7-cpu": 12, "hl_cnn-digits-pixel7-cpu": 12}
    again = run_cli(*args, timeout=900)
    assert again.returncode == 0, again.stderr
    assert {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)} == counts
    assert pd.read_csv(tmp_path / "compare-pixel7-cpu.csv")["trial"].tolist() == table["trial"].tolist()


@pytest.mark.slow
def test_run_strategy_alone_and_sensitivity_cached(tmp_path):
    result = run_cli("run", "--strategy", "int8-ort,seed-hybrid", "--run-dir", str(tmp_path), "--workers", "1", *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    study = optuna.load_study(study_name="small_cnn-digits-pixel7-cpu", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    trials = {t.user_attrs["baseline"]: t for t in study.trials}
    assert set(trials) == {"uncompressed", "int8-ort", "seed-hybrid"}  # nothing searched
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials.values())
    ort = trials["int8-ort"].user_attrs
    assert ort["plan"]["recipe"]["quantizer"] == "ort" and "int8" in ort["precisions"].values()
    hybrid = trials["seed-hybrid"].user_attrs["precisions"]
    assert {"int8", "fp16"} <= set(hybrid.values())

    # the INT8 column seed-hybrid ranked by is cached: sensitivity measures only what is missing
    sens = run_cli("sensitivity", "--run-dir", str(tmp_path), *DATA)
    assert sens.returncode == 0, sens.stdout + sens.stderr
    assert "sensitivity int8:" not in sens.stdout and "sensitivity fp16:" in sens.stdout
    rows = pd.read_csv(tmp_path / "small_cnn-digits-pixel7-cpu" / "sensitivity.csv")
    assert set(rows["change"]) == {"int8", "fp16", "prune-0.5"}
    mean = rows.groupby("change")["change_pts"].mean()
    assert mean["prune-0.5"] < mean["fp16"]  # halving a layer's channels without fine-tune costs more than FP16
    assert rows[rows["change"] == "fp16"]["change_pts"].abs().max() < 2
    again = run_cli("sensitivity", "--run-dir", str(tmp_path), *DATA)
    assert "sensitivity " not in again.stdout.replace("sensitivity.csv", "")


def test_compare_distils_by_default_and_no_distill_turns_it_off():
    from search.cli import build_parser
    from search.cli.run import run_config

    parser = build_parser()
    compare = run_config(parser.parse_args(["compare"]))
    assert (compare.distill, compare.finetune_lr, compare.finetune_steps) == (True, 1e-3, 400)
    assert run_config(parser.parse_args(["compare", "--no-distill"])).distill is False
    assert run_config(parser.parse_args(["run"])).distill is False
    assert run_config(parser.parse_args(["run", "--distill"])).distill is True
