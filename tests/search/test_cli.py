"""The command line as a user runs it: a subprocess, exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest


def run_cli(*args: str, cwd=None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=timeout
    )


def test_help_is_fast_and_imports_nothing_heavy():
    start = time.perf_counter()
    result = run_cli("--help")
    assert result.returncode == 0 and "run" in result.stdout
    assert time.perf_counter() - start < 5
    code = (
        "import sys, search.cli; search.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'nncf', 'ray', 'onnxruntime', 'optuna') if m in sys.modules))"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert probe.stdout.strip() == "[]"


def test_hw_list_and_show():
    listing = run_cli("hw", "list")
    assert listing.returncode == 0 and "pixel7" in listing.stdout and "int8" in listing.stdout
    shown = run_cli("hw", "show", "pixel7")
    assert shown.returncode == 0 and "calibration-" in shown.stdout and "gmacs" in shown.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hw", "pixel8"], "unknown hardware profile 'pixel8': did you mean pixel7"),
        (["--hw", "PIXEL7"], "unknown hardware profile 'PIXEL7': did you mean pixel7"),
        (["--hw", "/nonexistent/mine.yaml"], "profile file '/nonexistent/mine.yaml' does not exist"),
        (["--hw", "pixel7:npu"], "unknown unit of pixel7 'npu'"),
        (["--model", "resnet1888"], "unknown model 'resnet1888'"),
        (["--data", "cifar10:/nonexistent"], "cifar10 data not found"),
        (["--data", "imagefolder:EMPTY"], "needs train/"),
        (["--hw", "BADYAML"], "is not valid YAML"),
        (["--storage", "postgresql://u:p@127.0.0.1:1/db"], "cannot open storage"),
        (["--storage", "bogus"], "is malformed"),
        (["--checkpoint", "/nonexistent.pt"], "checkpoint '/nonexistent.pt' not found"),
        (["--objectives", "latency"], "--objectives must start with accuracy"),
        (["--trials", "0"], "--trials must be at least 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    args = [a.replace("EMPTY", str(tmp_path / "empty")).replace("BADYAML", str(tmp_path / "bad.yaml")) for a in args]
    run_dir = tmp_path / "runs"
    result = run_cli("run", "--run-dir", str(run_dir), *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not run_dir.exists()
