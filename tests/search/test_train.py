"""`search train`: the baseline is trained once, cached where `search run` finds it, resumed after a SIGKILL from
its last epoch, flipped only where the data allows, and bad input is one line with exit code 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.cli.train import augmentations
from tests.search.test_idx_data import fake_idx_folder
from tests.search.test_resume import stop_session

ARGS = ["--model", "small_cnn", "--input-size", "16", "--batch-size", "32"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, check=False, cwd=cwd)


def _record(run_dir: Path) -> dict:
    (record,) = (run_dir / "baselines").glob("*.json")
    return json.loads(record.read_text())


def test_train_caches_a_baseline_that_run_reuses(tmp_path):
    done = _cli("train", "--model", "small_cnn", "--input-size", "16", "--epochs", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "val " in done.stdout and "use it: search run" in done.stdout
    record = _record(tmp_path / "runs")
    assert record["epochs"] == 3 and len(record["val_top1"]) == 3 and record["recipe"]["flip"] is False  # digits
    assert record["onnx_test_top1"] > 0.5 and record["cpu"]
    again = _cli("train", "--model", "small_cnn", "--input-size", "16", "--epochs", "3", cwd=tmp_path)
    assert "baseline: reusing" in again.stdout
    run = _cli(
        "run", "--model", "small_cnn", "--input-size", "16", "--baseline-epochs", "3", "--trials", "1", "--workers", "1",
        "--strategy", "all-int8", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "baseline: reusing" in run.stdout  # the same model, data, size, recipe and seed: the same file


def test_a_killed_training_resumes_from_its_last_epoch(tmp_path):
    args = [sys.executable, "-m", "search.cli", "train", *ARGS, "--epochs", "40"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "runs" / "baselines").glob("*.partial.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    stop_session(proc, signal.SIGKILL)
    assert list((tmp_path / "runs" / "baselines").glob("*.partial.pt")), "no epoch was saved before the kill"
    assert not list((tmp_path / "runs" / "baselines").glob("*.json"))
    resumed = _cli("train", *ARGS, "--epochs", "40", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stdout
    assert _record(tmp_path / "runs")["epochs"] == 40
    assert not list((tmp_path / "runs" / "baselines").glob("*.partial.pt"))


def test_mirror_flips_follow_the_data_kind(tmp_path):
    folder = fake_idx_folder(tmp_path / "set", train=120, test=20)
    mnist_like = _cli("train", *ARGS, "--data", f"idx:{folder}", "--epochs", "1", "--augment", "--run-dir", "a", cwd=tmp_path)
    assert mnist_like.returncode == 0, mnist_like.stderr
    recipe = _record(tmp_path / "a")["recipe"]
    assert recipe["crop"] is True and recipe["flip"] is False  # digits are not mirror-invariant


def test_augment_names_the_switches():
    assert augmentations("") == {"crop": False, "flip": False}
    assert augmentations("flip") == {"crop": False, "flip": True}
    assert augmentations("crop, flip") == {"crop": True, "flip": True}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nosuchnet"], "unknown model 'nosuchnet'"),
        (["--model", "small_cnn", "--augment", "crop,rotate"], "--augment: 'rotate' is not one of crop, flip"),
        (["--model", "small_cnn", "--epochs", "0"], "--epochs must be at least 1"),
        (["--model", "small_cnn", "--lr", "-1"], "--lr -1.0 must be above 0"),
        (["--model", "small_cnn", "--device", "tpu"], "--device 'tpu' is not one of auto, cpu, cuda"),
        (["--model", "small_cnn", "--data", "idx:nowhere"], "idx data not found"),
    ],
)
def test_bad_train_input_is_one_line(tmp_path, args, message):
    done = _cli("train", *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_run_on_cuda_without_a_gpu_is_one_line(tmp_path):
    done = _cli("run", "--device", "cuda", "--trials", "1", cwd=tmp_path)
    assert done.returncode == 2 and "--device cuda: torch sees no CUDA GPU" in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()
