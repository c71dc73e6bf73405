"""Multi-fidelity trials: which cheap trials are promoted to the full fine-tune (search.driver.fidelity), and a
study run with ``--cheap-steps`` whose front is at full fidelity."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from search.analysis.tables import trials_table
from search.driver.fidelity import CHEAP_BN_BATCHES, Fidelity
from search.study import Budgets
from search.worker import ModelSpec, TrialJob


def front_study(points: list[tuple[float, float]]) -> optuna.Study:
    """A study maximising accuracy (%) and minimising latency (ms) with ``points`` as finished trials."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in points:
        study.add_trial(optuna.trial.create_trial(values=list(values)))
    return study


def test_every_trial_is_promoted_until_the_gain_is_measured():
    fidelity = Fidelity(cheap_steps=5, warmup=2)
    study = front_study([(99.0, 0.5)])
    worst = {"val_top1": 0.10, "latency_ms": 9.0}
    assert fidelity.promote(worst, 0.2, study, ["accuracy", "latency"], Budgets(0.99))
    fidelity.learn(0.2, {"val_top1": 0.90}, {"val_top1": 0.93})
    assert fidelity.promote(worst, 0.2, study, ["accuracy", "latency"], Budgets(0.99))
    fidelity.learn(0.2, {"val_top1": 0.90}, {"val_top1": 0.91})
    assert fidelity.margin(0.2) == pytest.approx(0.03)
    assert not fidelity.promote(worst, 0.2, study, ["accuracy", "latency"], Budgets(0.99))


def test_a_cheap_trial_is_promoted_when_its_raised_accuracy_could_join_the_front():
    fidelity = Fidelity(cheap_steps=5, warmup=1, gains=[(0.5, 0.02)])
    study = front_study([(98.0, 1.0)])
    objectives = ["accuracy", "latency"]
    assert not fidelity.promote({"val_top1": 0.95, "latency_ms": 1.5}, 0.5, study, objectives, Budgets(0.99))  # 97 < 98
    assert fidelity.promote({"val_top1": 0.97, "latency_ms": 1.5}, 0.5, study, objectives, Budgets(0.99))  # 99 > 98
    assert fidelity.promote({"val_top1": 0.90, "latency_ms": 0.5}, 0.5, study, objectives, Budgets(0.99))  # faster
    # the accuracy budget counts the raised accuracy: 0.965 + 0.02 is within 1.0 point of 0.99, 0.95 + 0.02 is not
    budget = Budgets(0.99, max_accuracy_drop=1.0)
    assert fidelity.promote({"val_top1": 0.965, "latency_ms": 0.5}, 0.5, study, objectives, budget)
    assert not fidelity.promote({"val_top1": 0.95, "latency_ms": 0.5}, 0.5, study, objectives, budget)


def test_a_full_fine_tune_that_lost_accuracy_never_lowers_a_cheap_trial_below_its_own_point():
    fidelity = Fidelity(cheap_steps=5, warmup=1, gains=[(0.5, -0.04)])
    assert fidelity.margin(0.5) == 0.0
    assert not fidelity.promote({"val_top1": 0.97, "latency_ms": 1.0}, 0.5, front_study([(98.0, 1.0)]), ["accuracy", "latency"],
                                Budgets(0.99))  # fmt: skip


def test_a_gain_stands_only_for_plans_pruned_no_more_than_the_one_it_was_measured_on():
    fidelity = Fidelity(cheap_steps=5, warmup=2, gains=[(0.1, 0.005), (0.4, 0.02)])
    assert fidelity.margin(0.0) == pytest.approx(0.02)  # the largest gain among plans pruned at least as much
    assert fidelity.margin(0.3) == pytest.approx(0.02)
    assert fidelity.margin(0.44) == pytest.approx(0.02)  # within the tolerance of the 0.4 plan
    assert fidelity.margin(0.6) == float("inf")  # pruned more than any plan measured: promoted, its gain learned
    study = front_study([(98.0, 1.0)])
    budget = Budgets(0.99, max_accuracy_drop=1.0)
    fast_but_low = {"val_top1": 0.90, "latency_ms": 0.5}  # 90% + 2 points still misses the 98% budget
    assert not fidelity.promote(fast_but_low, 0.4, study, ["accuracy", "latency"], budget)
    assert fidelity.promote(fast_but_low, 0.6, study, ["accuracy", "latency"], budget)
    fidelity.learn(0.6, {"val_top1": 0.90}, {"val_top1": 0.95})
    assert fidelity.margin(0.6) == pytest.approx(0.05)


def test_the_cheap_job_fine_tunes_fewer_steps_re_estimates_batchnorm_and_skips_the_test_split():
    plan = {"layers": {}, "recipe": {"finetune_steps": 400, "bn_batches": 0, "finetune_lr": 0.003}}
    job = TrialJob(plan, ModelSpec("small_cnn", 10, 16), None, None, "cpu", test=True)  # type: ignore[arg-type]
    fidelity = Fidelity(cheap_steps=50)
    cheap = fidelity.cheap_job(job)
    assert cheap.plan["recipe"] == {"finetune_steps": 50, "bn_batches": CHEAP_BN_BATCHES, "finetune_lr": 0.003}
    assert cheap.test is False and job.plan["recipe"]["finetune_steps"] == 400  # the full job is untouched
    assert fidelity.applies(plan) and not fidelity.applies({"recipe": {"finetune_steps": 50}})


@pytest.mark.slow
def test_a_multi_fidelity_study_keeps_its_front_at_full_fidelity(tmp_path):
    common = ["--hw", "pixel7", "--input-size", "16", "--baseline-epochs", "2", "--finetune-steps", "30"]
    common += ["--cheap-steps", "5", "--workers", "1", "--run-dir", str(tmp_path)]
    for extra in (["--strategy", "prune-uniform-25-int8"], ["--trials", "9"]):  # the recipe, then the search
        done = subprocess.run([sys.executable, "-m", "search.cli", "run", *common, *extra], capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="small_cnn-digits-pixel7-cpu", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 9
    searched = [t for t in complete if not t.user_attrs.get("baseline")]
    assert searched and all(t.user_attrs.get("fidelity") in ("cheap", "full") for t in searched)
    for trial in searched:
        steps = trial.user_attrs["plan"]["recipe"]["finetune_steps"]
        if trial.user_attrs["fidelity"] == "full":
            assert steps == 30 and 0 < trial.user_attrs["cheap_val_top1"] <= 1
        else:
            assert steps == 5 and "cheap_val_top1" not in trial.user_attrs and "test_top1" not in trial.user_attrs
    assert sum(t.user_attrs["fidelity"] == "full" for t in searched) >= 3  # the warm-up
    assert all(t.user_attrs.get("fidelity") != "cheap" for t in study.best_trials)
    table = trials_table(study).set_index("trial")
    assert all(table.loc[t.number, "fidelity"] == t.user_attrs["fidelity"] for t in searched)  # `search show` says which
    recipe = next(t for t in complete if t.user_attrs.get("baseline"))
    assert "fidelity" not in recipe.user_attrs and recipe.user_attrs["plan"]["recipe"]["finetune_steps"] == 30
