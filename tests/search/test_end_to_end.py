"""A short real study through the CLI: Optuna (SQLite), local Ray, Torch-Pruning, NNCF, onnxruntime."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import optuna
import pytest
from onnx import TensorProto

from tests.search.test_cli import run_cli

pytestmark = pytest.mark.slow
FAST = ["--baseline-epochs", "4", "--finetune-epochs", "1", "--calibration-size", "32", "--workers", "2", "--input-size", "16"]
STUDY = "e2e"


def ray_processes() -> list[str]:
    out = subprocess.run(["pgrep", "-af", "raylet|gcs_server"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    before = ray_processes()
    result = run_cli(
        "run",
        "--hw",
        "pixel7,rpi4",
        "--run-dir",
        str(path),
        "--study-name",
        STUDY,
        "--trials",
        "6",
        "--litert-host",
        *FAST,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    deadline = time.time() + 20
    while ray_processes() != before and time.time() < deadline:
        time.sleep(0.5)
    assert ray_processes() == before, "the run left Ray processes behind"
    (path / "stdout.txt").write_text(result.stdout)
    return path


def _study(run_dir):
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{run_dir / 'studies.db'}")


def test_study_has_baselines_first_and_named_objectives(run_dir):
    study = _study(run_dir)
    assert study.metric_names == ["accuracy", "latency_ms"]
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL))
    assert len(trials) == 6
    assert [t.user_attrs.get("baseline") for t in trials[:5]] == [
        "uncompressed",
        "all-int8",
        "prune-uniform-25",
        "prune-uniform-50",
        "prune-uniform-50-int8",
    ]
    assert study.user_attrs["model"] == "small_cnn" and study.user_attrs["hw"] == "pixel7:cpu"
    assert study.user_attrs["reference_test_top1"] > 0.5
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("fail_reason")
        assert (
            trial.user_attrs["latency_ms"] > 0 and trial.user_attrs["energy_mj"] > 0 and trial.user_attrs["host_latency_ms"] > 0
        )


def test_all_int8_baseline_is_faster_on_pixel7_and_ships_qdq(run_dir):
    trials = {t.user_attrs.get("baseline"): t for t in _study(run_dir).trials}
    base, int8 = trials["uncompressed"], trials["all-int8"]
    assert base.user_attrs["latency_ms"] / int8.user_attrs["latency_ms"] > 1.5
    assert int8.user_attrs["size_bytes"] < 0.3 * base.user_attrs["size_bytes"]
    graph = onnx.load(int8.user_attrs["onnx"])
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_stored_accuracy_is_the_onnx_graphs_accuracy(run_dir):
    from evaluators.onnx_runtime import evaluate, session
    from search.data import DataSpec, load_splits

    splits = load_splits(DataSpec(input_size=16))
    for trial in _study(run_dir).trials:
        graph_bytes = Path(trial.user_attrs["onnx"]).read_bytes()
        metrics = evaluate(session(graph_bytes), splits.val)
        assert metrics["top1"] == trial.user_attrs["val_top1"]
        assert trial.values[0] == pytest.approx(100 * metrics["top1"])
        plan = trial.user_attrs["plan"]["layers"]
        fp16_layers = [name for name, lp in plan.items() if lp["precision"] == "fp16"]
        fp16_inits = {
            t.name.split("/")[0]
            for t in onnx.load_from_string(graph_bytes).graph.initializer
            if t.data_type == TensorProto.FLOAT16
        }
        assert set(fp16_layers) <= {name.rsplit(".", 1)[0] for name in fp16_inits}


def test_front_is_exported_and_printed(run_dir):
    front = sorted((run_dir / STUDY / "front").iterdir())
    assert front and len(front) == len(_study(run_dir).best_trials)
    for folder in front:
        assert (folder / "plan.yaml").is_file() and (folder / "model.onnx").is_file()
        onnx.checker.check_model(onnx.load(folder / "model.onnx"))
    assert "Pareto front" in (run_dir / "stdout.txt").read_text()


def test_optuna_cli_reads_the_study(run_dir):
    optuna_cli = str(Path(sys.executable).parent / "optuna")
    result = subprocess.run(
        [optuna_cli, "best-trials", "--study-name", STUDY, "--storage", f"sqlite:///{run_dir / 'studies.db'}", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "latency_ms" in result.stdout


def test_resume_adds_trials_and_refuses_another_model(run_dir):
    result = run_cli("run", "--run-dir", str(run_dir), "--study-name", STUDY, "--trials", "7", *FAST, timeout=900)
    assert result.returncode == 0, result.stderr
    study = _study(run_dir)
    assert len(study.trials) == 7
    assert sum(1 for t in study.trials if t.user_attrs.get("baseline")) == 5
    other = run_cli("run", "--run-dir", str(run_dir), "--study-name", STUDY, "--model", "hl_cnn", *FAST)
    assert other.returncode == 2 and "was created with model='small_cnn'" in other.stderr
    assert len(_study(run_dir).trials) == 7


def test_failing_trials_are_recorded_and_the_study_goes_on(run_dir):
    result = run_cli(
        "run", "--run-dir", str(run_dir), "--study-name", "nan", "--trials", "4", "--finetune-lr", "1e12", *FAST, timeout=900
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="nan", storage=f"sqlite:///{run_dir / 'studies.db'}")
    states = {t.user_attrs["baseline"]: t for t in study.trials}
    assert states["uncompressed"].state == optuna.trial.TrialState.COMPLETE
    failed = states["prune-uniform-50"]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert "FloatingPointError" in failed.user_attrs["fail_reason"]


def test_unmet_budget_is_reported_and_trials_kept(run_dir):
    result = run_cli(
        "run",
        "--run-dir",
        str(run_dir),
        "--study-name",
        "budget",
        "--trials",
        "2",
        "--latency-budget-ms",
        "0.000001",
        *FAST,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "no candidate meets the budgets" in result.stdout
    study = optuna.load_study(study_name="budget", storage=f"sqlite:///{run_dir / 'studies.db'}")
    finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(finished) == 2 and study.best_trials == []
    assert all(np.isfinite(t.values).all() for t in finished)
    # the baselines not run yet stay queued for a resumed run
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 3


def _db_digest(run_dir) -> str:
    import hashlib

    return hashlib.sha256((run_dir / "studies.db").read_bytes()).hexdigest()


def test_export_then_apply_rebuilds_the_trials_model(run_dir, tmp_path):
    study = _study(run_dir)
    trial = next(t for t in study.trials if t.user_attrs.get("baseline") == "prune-uniform-25")
    exported = run_cli("export", STUDY, "--run-dir", str(run_dir), "--trial", str(trial.number), "--out", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    folder = tmp_path / "out" / f"trial_{trial.number:05d}"
    card = (folder / "MODEL_CARD.md").read_text()
    assert study.user_attrs["checkpoint_sha256"] in card and "pixel7:cpu" in card
    assert all(f"| {name} |" in card for name in trial.user_attrs["plan"]["layers"])
    assert "search apply plan.yaml --model small_cnn" in card

    applied = run_cli("apply", str(folder / "plan.yaml"), "--model", "small_cnn", "--out", str(tmp_path / "re.onnx"), "--json")
    assert applied.returncode == 0, applied.stderr
    metrics = json.loads(applied.stdout)
    for key in ("val_top1", "test_top1", "size_bytes", "macs", "latency_ms", "energy_mj"):
        assert metrics[key] == trial.user_attrs[key], key
    assert (tmp_path / "re.onnx").read_bytes() == (folder / "model.onnx").read_bytes()

    front = run_cli("export", STUDY, "--run-dir", str(run_dir), "--pareto", "--out", str(tmp_path / "front"))
    assert front.returncode == 0 and len(list((tmp_path / "front").iterdir())) == len(study.best_trials)


def test_export_as_tflite_scores_it_beside_the_onnx_graph(run_dir, tmp_path):
    import re

    study = _study(run_dir)
    mixed = [t for t in study.best_trials if len({layer["precision"] for layer in t.user_attrs["plan"]["layers"].values()}) > 1]
    trial = (mixed or [next(t for t in study.trials if t.user_attrs.get("baseline") == "all-int8")])[0]

    def export(fmt: str, out: str):
        return run_cli("export", STUDY, "--run-dir", str(run_dir), "--trial", str(trial.number), "--format", fmt, "--out", out)

    both = export("onnx,tflite", str(tmp_path / "both"))
    assert both.returncode == 0, both.stderr
    folder = tmp_path / "both" / f"trial_{trial.number:05d}"
    assert {p.name for p in folder.iterdir()} == {"plan.yaml", "model.onnx", "model.tflite", "MODEL_CARD.md"}
    card = (folder / "MODEL_CARD.md").read_text()
    for name, layer in trial.user_attrs["plan"]["layers"].items():
        stored = {"fp32": "float32", "fp16": "float16", "int8": "int8"}[layer["precision"]]
        assert f"| {name} | {layer['precision']} | {stored} |" in card
    litert, onnx_top1 = map(float, re.search(r"test top-1 % \(\d+ images\) \| ([\d.]+) \| ([\d.]+) \|", card).groups())
    if "test_top1" in trial.user_attrs:  # the ONNX graph scored again here, as the trial scored it
        assert onnx_top1 == pytest.approx(100 * trial.user_attrs["test_top1"], abs=0.01)
    agreement = float(re.search(r"same class on ([\d.]+)%", card).group(1))
    assert agreement >= 97 and abs(litert - onnx_top1) <= 3
    assert re.search(r"\| host latency ms \| \d+\.\d+ \| \d+\.\d+ \|", card)

    only = export("tflite", str(tmp_path / "one"))
    assert only.returncode == 0, only.stderr
    assert {p.name for p in (tmp_path / "one" / folder.name).iterdir()} == {"plan.yaml", "model.tflite", "MODEL_CARD.md"}

    bad = export("onnx,pdf", str(tmp_path / "x"))
    assert bad.returncode == 2 and "unknown --format 'onnx,pdf': use onnx, tflite or onnx,tflite" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_bad_input_is_one_line_exit_2_and_leaves_the_database_alone(run_dir, tmp_path):
    import torch

    from search.models import build_model

    study = _study(run_dir)
    plan = run_dir / STUDY / "front" / f"trial_{study.best_trials[0].number:05d}" / "plan.yaml"
    stripped = tmp_path / "stripped.yaml"  # a plan with no source section: only its layer names tell the model
    stripped.write_text(plan.read_text().split("source:")[0])
    other = tmp_path / "hl_cnn.pt"
    torch.save(build_model("hl_cnn", 10).state_dict(), other)
    corrupt = tmp_path / "corrupt.yaml"
    corrupt.write_text("layers:\n  stem.0: {prune_ratio: 0.5\n")
    before = _db_digest(run_dir)
    cases = [
        (("export", "nope", "--run-dir", str(run_dir), "--pareto", "--out", str(tmp_path / "x")), "no study 'nope'"),
        (("report", "nope", "--run-dir", str(run_dir), "--out", str(tmp_path / "x.html")), "no study 'nope'"),
        (
            ("export", STUDY, "--storage", "postgresql://u@127.0.0.1:1/db", "--pareto", "--out", str(tmp_path / "x")),
            "cannot open",
        ),
        (("show", STUDY, "--storage", "sqlite:///" + str(run_dir / "missing.db")), "no study database"),
        (("export", STUDY, "--run-dir", str(run_dir), "--trial", "999", "--out", str(tmp_path / "x")), "has no trial 999"),
        (("apply", str(plan), "--model", "hl_cnn", "--out", str(tmp_path / "x.onnx")), "was made for model 'small_cnn'"),
        (("apply", str(stripped), "--model", "hl_cnn", "--checkpoint", str(other), "--out", str(tmp_path / "x.onnx")), "not fit"),
        (("apply", str(corrupt), "--model", "small_cnn", "--out", str(tmp_path / "x.onnx")), "is not valid YAML"),
        (("rescore", STUDY, "--hw", "pixel9", "--run-dir", str(run_dir)), "unknown hardware profile 'pixel9'"),
    ]
    foreign = tmp_path / "foreign.db"  # a SQLite file of something else: not to be turned into a study database
    sqlite3.connect(foreign).execute("create table notes (text)").connection.commit()
    foreign_bytes = foreign.read_bytes()
    cases.append((("studies", "--storage", f"sqlite:///{foreign}"), "holds no Optuna study database"))
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert foreign.read_bytes() == foreign_bytes
    # and the commands that succeed only read
    for args in (
        ("studies",),
        ("show", STUDY),
        ("pareto", STUDY),
        ("report", STUDY, "--out", str(tmp_path / "report.html")),
        ("export", STUDY, "--pareto", "--out", str(tmp_path / "front")),
    ):
        assert run_cli(*args, "--run-dir", str(run_dir)).returncode == 0, args
    assert _db_digest(run_dir) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("x")]  # nothing half-written by the failures


def test_with_litert_host_every_trial_is_timed_in_litert_too(run_dir):
    first_run = [t for t in _study(run_dir).trials if t.number < 6 and t.state == optuna.trial.TrialState.COMPLETE]
    assert first_run and all(t.user_attrs["litert_host_ms"] > 0 for t in first_run)  # later tests resume without it
    assert "LiteRT ms" in (run_dir / "stdout.txt").read_text()


def test_trials_record_seconds_per_stage(run_dir):
    study = _study(run_dir)
    pruned = next(t for t in study.trials if t.user_attrs.get("baseline") == "prune-uniform-50")
    stages = {k.split(":", 1)[1]: v for k, v in pruned.user_attrs.items() if k.startswith("stage_s:")}
    assert {"load", "prune", "finetune", "export", "precisions", "accuracy", "estimate", "host_latency"} <= set(stages)
    assert sum(stages.values()) <= pruned.user_attrs["seconds"] + 1e-6
    assert stages["finetune"] > 0
    shown = run_cli("show", STUDY, "--run-dir", str(run_dir), "--csv")
    assert {"finetune_s", "precisions_s", "accuracy_s"} <= set(shown.stdout.splitlines()[0].split(","))


def test_several_devices_give_one_front_each_from_one_search(run_dir):
    from evaluators.estimate import estimate_model
    from hw_profiles import load_profile

    stdout = (run_dir / "stdout.txt").read_text()
    assert "onto rpi4:cpu in" in stdout and "predicted on rpi4:cpu" in stdout
    source = _study(run_dir)
    other = optuna.load_study(study_name=f"{STUDY}@rpi4-cpu", storage=f"sqlite:///{run_dir / 'studies.db'}")
    assert other.user_attrs["hw"] == "rpi4:cpu" and other.user_attrs["rescored_from"] == STUDY
    assert len(other.trials) == 6  # every trial the run finished (a later test adds more to the source)
    profile, _, unit = load_profile("rpi4")
    for after in other.trials:
        before = source.trials[int(after.user_attrs["rescored_from"].split("#")[1])]
        assert after.params == before.params
        precisions = set(before.user_attrs["precisions"].values())
        if "fp16" in precisions:  # rpi4's CPU runs no FP16: kept as failed, with the reason
            assert after.state == optuna.trial.TrialState.FAIL and "fp16" in after.user_attrs["fail_reason"]
            continue
        assert after.state == optuna.trial.TrialState.COMPLETE
        assert after.user_attrs["val_top1"] == before.user_attrs["val_top1"]
        predicted = estimate_model(onnx.load(before.user_attrs["onnx"]), profile, unit).latency_ms
        assert after.values[1] == pytest.approx(predicted) and after.values[1] != pytest.approx(before.values[1])
    assert any((run_dir / f"{STUDY}@rpi4-cpu" / "front").glob("trial_*/model.onnx"))


def test_the_test_split_is_scored_for_every_front_member_and_recipe_only(run_dir):
    from search.study import dominates

    study = _study(run_dir)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials}
    for trial in complete:
        attrs = trial.user_attrs
        if trial.number in front or attrs.get("baseline"):
            assert "test_top1" in attrs and "stage_s:test" in attrs, trial.number
        elif "test_top1" not in attrs:  # held out: a trial finished before it dominated it when it was evaluated
            earlier = [t for t in complete if t.datetime_complete < trial.datetime_complete]
            assert any(dominates(t.values, trial.values, study.directions) for t in earlier), trial.number
    other = optuna.load_study(study_name=f"{STUDY}@rpi4-cpu", storage=f"sqlite:///{run_dir / 'studies.db'}")
    assert all("test_top1" in t.user_attrs for t in other.best_trials)


def test_pareto_robust_gives_each_members_band_and_the_members_it_overlaps(run_dir):
    robust = run_cli("pareto", STUDY, "--run-dir", str(run_dir), "--robust", "--json")
    assert robust.returncode == 0, robust.stderr
    rows = json.loads(robust.stdout)
    assert rows and all(r["band_low_ms"] < r["latency_ms"] < r["band_high_ms"] for r in rows)
    for row in rows:  # overlap is symmetric and computed from the bands shown
        for other in map(int, row["overlaps"].split()):
            partner = next(r for r in rows if r["trial"] == other)
            assert str(row["trial"]) in partner["overlaps"].split()
            assert row["band_low_ms"] <= partner["band_high_ms"] and partner["band_low_ms"] <= row["band_high_ms"]


def test_rescore_writes_a_new_study_and_refuses_to_overwrite_it(run_dir):
    storage = f"sqlite:///{run_dir / 'studies.db'}"
    first = run_cli("rescore", STUDY, "--hw", "jetson-nano", "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr
    assert "rescored 'e2e' onto jetson-nano:" in first.stdout and "Pareto front" in first.stdout
    from hw_profiles import load_profile

    unit = load_profile("jetson-nano")[2]
    study = optuna.load_study(study_name=f"{STUDY}@jetson-nano-{unit}", storage=storage)
    assert study.best_trials
    again = run_cli("rescore", STUDY, "--hw", "jetson-nano", "--run-dir", str(run_dir))
    assert again.returncode == 2 and "--replace" in again.stderr
    replaced = run_cli("rescore", STUDY, "--hw", "jetson-nano", "--run-dir", str(run_dir), "--replace")
    assert replaced.returncode == 0, replaced.stderr
