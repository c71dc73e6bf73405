"""Bad input, deep in every command: on a run folder with a real study in it, each case prints one line, exits with
code 2, and leaves the study database, the run folder and the inputs byte for byte as they were.

`BAD_INPUT_TABLE=FILE pytest tests/search/test_bad_input_table.py` also writes the table of cases and the line each
printed (docs/operations.md quotes it).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STUDY = "st"
# (what is wrong, the command line, a part of the line it must print). R: the run folder with study 'st';
# T: a folder of prepared bad inputs; P: a plan exported from the study; C: the study's checkpoint.
CASES = [
    ("--round-to 0", "run --round-to 0", "--round-to must be at least 1"),
    ("--calibration-size 0", "run --calibration-size 0", "--calibration-size must be at least 1"),
    ("--calibration-size negative", "run --calibration-size -5", "--calibration-size must be at least 1"),
    ("--population 1 with NSGA-II", "run --sampler nsga2 --population 1", "--population must be at least 2"),
    ("--seed -1", "run --seed -1", "--seed must be at least 0"),
    ("--max-accuracy-drop nan", "run --max-accuracy-drop nan", "--max-accuracy-drop must be a finite number"),
    ("--latency-budget-ms inf", "run --latency-budget-ms inf", "--latency-budget-ms must be a finite number"),
    ("--finetune-lr nan", "run --finetune-lr nan", "--finetune-lr must be a finite number"),
    ("--input-size below 8", "run --input-size 4", "--input-size must be at least 8"),
    ("--input-size unbounded", "run --input-size 100000", "--input-size 100000 is above 2048"),
    ("--train-size negative", "run --train-size -3", "--train-size must be at least 1"),
    ("--trial-timeout 0", "run --trial-timeout 0", "--trial-timeout must be at least 1"),
    ("--task-memory-mb 1", "run --task-memory-mb 1", "--task-memory-mb must be at least 64"),
    ("--keep-graphs unknown", "run --keep-graphs some", "invalid choice: 'some'"),
    ("--warm-start unknown", "run --warm-start bogus", "invalid choice: 'bogus'"),
    ("--heartbeat 0", "run --heartbeat 0", "--heartbeat must be at least 1"),
    ("--workers 0", "run --workers 0", "--workers must be at least 1"),
    ("--prune-step 0", "run --prune-step 0", "need 0 < --prune-step <= --max-prune < 1"),
    ("--max-prune 1", "run --max-prune 1", "need 0 < --prune-step <= --max-prune < 1"),
    ("--strategy empty", "run --strategy ,", "--strategy is empty"),
    ("timm name with a bad tag", "run --model resnet18.bogus_tag", "has no tag 'bogus_tag'"),
    ("--pretrained for a built-in model", "run --pretrained", "'small_cnn' has no pretrained weights here"),
    ("input smaller than the network's downsampling", "run --model inception_v3 --input-size 8", "cannot run on 8 px"),
    ("--ray-address nothing answers", "run --ray-address 127.0.0.1:9", "nothing answers there"),
    ("--ray-address malformed", "run --ray-address nowhere", "is not HOST:PORT"),
    ("studies.db that is not SQLite", "run --storage sqlite:///T/junk.db", "is not an SQLite database"),
    ("storage server down, password in URL", "run --storage postgresql://u:secret@127.0.0.1:9/db", "u:***@127.0.0.1:9"),
    ("storage URL malformed", "run --storage not-a-url", "is malformed"),
    ("profile not UTF-8", "run --hw T/latin1.yaml", "is not UTF-8 text"),
    ("profile rate 0", "run --hw T/zero.yaml", "must be above 0"),
    ("profile rate inf", "run --hw T/inf.yaml", "finite number"),
    ("profile name with a path", "run --hw T/evil.yaml", "name: String should match pattern"),
    ("imagefolder class with no images", "run --data imagefolder:T/images", "holds no images"),
    ("CIFAR file that asks for code", "run --data cifar10:T/cifar", "which a CIFAR file never holds"),
    ("resume with other objectives", f"run --study-name {STUDY} --objectives accuracy,latency,energy", "was created with"),
    ("resume with other weights", f"run --study-name {STUDY} --checkpoint T/other.pt", "compresses other weights"),
    ("checkpoint not a state dict", "run --checkpoint T/garbage.pt", "cannot be read with weights_only=True"),
    ("checkpoint of another model", "run --model hl_cnn --checkpoint C", "does not fit the model"),
    ("--run-dir is a file", "run --run-dir T/junk.db", "is a file: pass a folder"),
    ("apply: checkpoint missing", "apply P --model small_cnn --out T/x.onnx --checkpoint T/missing.pt", "not found"),
    ("apply: plan not UTF-8", "apply T/latin1_plan.yaml --model small_cnn --out T/x.onnx", "is not UTF-8 text"),
    ("apply: prune_ratio a string", "apply T/string_ratio.yaml --model small_cnn --out T/x.onnx", "is not a number"),
    ("apply: finetune_epochs 1e9", "apply T/epochs.yaml --model small_cnn --out T/x.onnx", "is not a whole number"),
    ("apply: plan input_size unbounded", "apply T/size.yaml --model small_cnn --out T/x.onnx", "input_size 100000"),
    ("apply: plan names data on disk", "apply T/cifar_plan.yaml --model small_cnn --out T/x.onnx", "pass --data yourself"),
    ("apply: plan names a profile file", "apply T/yaml_hw_plan.yaml --model small_cnn --out T/x.onnx", "pass --hw yourself"),
    ("apply: plan of another model", "apply P --model hl_cnn --out T/x.onnx", "was made for model 'small_cnn'"),
    ("apply: input too small", "apply P --model small_cnn --out T/x.onnx --input-size 4", "--input-size must be at least 8"),
    ("apply: --threads 0", "apply P --model small_cnn --out T/x.onnx --threads 0", "--threads must be at least 1"),
    ("compare: no trial left to search", "compare --models small_cnn --trials 3 --out T/cmp", "leaves no trial to search"),
    ("compare: --max-accuracy-drop nan", "compare --models small_cnn --max-accuracy-drop nan --out T/cmp", "finite number"),
    ("compare: --models empty", "compare --models , --out T/cmp", "--models is empty"),
    ("compare: --input-size 4", "compare --models small_cnn --input-size 4 --out T/cmp", "--input-size must be at least 8"),
    ("calibrate: short CSV row", "calibrate --hw pixel7 --measured T/short.csv --out T/p.yaml", "line 2"),
    ("calibrate: latency_ms nan", "calibrate --hw pixel7 --measured T/nan.csv --out T/p.yaml", "must be positive"),
    ("calibrate: CSV not UTF-8", "calibrate --hw pixel7 --measured T/latin1.csv --out T/p.yaml", "is not UTF-8 text"),
    ("calibrate: CSV missing", "calibrate --hw pixel7 --measured T/missing.csv --out T/p.yaml", "not found"),
    ("calibrate: --study unknown", "calibrate --hw pixel7 --measured T/rows.csv --study nosuch --out T/p.yaml", "nosuch"),
    ("calibrate: profile name with a path", "calibrate --hw T/evil.yaml --measured T/rows.csv", "should match pattern"),
    ("calibrate: unknown unit", "calibrate --hw pixel7:npu --measured T/rows.csv --out T/p.yaml", "unknown unit of pixel7"),
    ("studies: database not SQLite", "studies --storage sqlite:///T/junk.db", "not an SQLite database"),
    ("show: unknown column", f"show {STUDY} --sort nosuch", "cannot sort by 'nosuch'"),
    ("show: unknown state", f"show {STUDY} --state exploded", "unknown state 'exploded'"),
    ("pareto: unknown study", "pareto nosuch", "no study 'nosuch'"),
    ("export: unknown trial", f"export {STUDY} --trial 999 --out T/ex", "has no trial 999"),
    ("export: unknown format", f"export {STUDY} --trial 0 --format pdf --out T/ex", "unknown --format 'pdf'"),
    ("rescore onto its own source", f"rescore {STUDY} --hw rpi4 --study-name {STUDY} --replace", "is the study being rescored"),
    ("rescore onto an unknown profile", f"rescore {STUDY} --hw pixel9", "unknown hardware profile 'pixel9'"),
    ("shortlist: --count 1", f"shortlist {STUDY} --count 1 --out T/sl", "--count must be at least 2"),
    ("report: folder missing", f"report {STUDY} --out T/nofolder/r.html", "does not exist"),
    ("estimate: --threads 0", "estimate --hw pixel7 --model resnet18 --threads 0", "--threads must be at least 1"),
    ("sensitivity: --prune-ratio 0", "sensitivity --prune-ratio 0", "is outside (0, 1)"),
    ("hw show: a path", "hw show ../../etc/passwd", "unknown hardware profile"),
]


def _tree(*roots: Path) -> dict[str, str]:
    """Every file under ``roots``: its path and the SHA-256 of its bytes."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=600
    )


class _Planted:
    def __reduce__(self):
        return (os.system, ("true",))


def _bad_inputs(folder: Path, plan: Path) -> None:
    """The files the cases read."""
    import torch
    import yaml

    from hw_profiles import PROFILE_DIR
    from search.models import build_model

    profile = yaml.safe_load((PROFILE_DIR / "pixel7.yaml").read_text())
    (folder / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    zero = {**profile, "name": "zero"}
    zero["units"] = {k: {**u, "dram_gbs": {**u["dram_gbs"], "value": 0}} for k, u in profile["units"].items()}
    (folder / "zero.yaml").write_text(yaml.safe_dump(zero))
    (folder / "inf.yaml").write_text(yaml.safe_dump(zero).replace("value: 0\n", "value: .inf\n", 1))
    (folder / "evil.yaml").write_text(yaml.safe_dump({**profile, "name": "../../evil"}))
    for split in ("train", "val"):
        (folder / "images" / split / "cat").mkdir(parents=True)
        (folder / "images" / split / "dog").mkdir(parents=True)
        (folder / "images" / split / "cat" / "a.png").write_bytes(b"")
    cifar = folder / "cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (cifar / name).write_bytes(pickle.dumps({b"data": _Planted(), b"labels": [0]}))
    torch.save(build_model("small_cnn", 10).state_dict(), folder / "other.pt")
    torch.save(build_model("hl_cnn", 10).state_dict(), folder / "hlcnn.pt")
    (folder / "garbage.pt").write_bytes(b"not a checkpoint")
    (folder / "junk.db").write_text("not a database")
    data = yaml.safe_load(plan.read_text())
    layer = next(iter(data["layers"]))
    (folder / "latin1_plan.yaml").write_bytes("layers: {caf\xe9: {}}\n".encode("latin-1"))
    edits = {
        "string_ratio": lambda d: d["layers"][layer].update(prune_ratio="0.5"),
        "epochs": lambda d: d["recipe"].update(finetune_epochs=1e9),
        "size": lambda d: d["source"].update(input_size=100000),
        "cifar_plan": lambda d: d["source"].update(data="cifar10:/srv/data"),
        "yaml_hw_plan": lambda d: d["source"].update(hw="/srv/profiles/evil.yaml"),
    }
    for name, edit in edits.items():
        copy = yaml.safe_load(plan.read_text())
        edit(copy)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(copy))
    header = "model,precision,unit,threads,input_size,latency_ms\n"
    (folder / "short.csv").write_text(header + "resnet18,fp32,cpu,1\n")
    (folder / "nan.csv").write_text(header + "resnet18,fp32,cpu,1,224,nan\nmobilenetv2_100,fp32,cpu,1,224,20\n")
    (folder / "latin1.csv").write_bytes((header + "r\xe9snet18,fp32,cpu,1,224,3\n").encode("latin-1"))
    (folder / "rows.csv").write_text(header + "resnet18,fp32,cpu,1,224,30\nmobilenetv2_100,fp32,cpu,1,224,20\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A run folder with a small real study, a plan exported from it and a folder of bad inputs."""
    root = tmp_path_factory.mktemp("bad")
    runs, inputs = root / "runs", root / "inputs"
    inputs.mkdir()
    made = _cli(
        "run", "--strategy", "uncompressed,all-int8", "--baseline-epochs", "1", "--study-name", STUDY,
        "--run-dir", str(runs), "--workers", "1", cwd=root,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    exported = _cli("export", STUDY, "--trial", "0", "--run-dir", str(runs), "--out", str(root / "plan"), cwd=root)
    assert exported.returncode == 0, exported.stderr
    plan = next((root / "plan").rglob("plan.yaml"))
    _bad_inputs(inputs, plan)
    checkpoint = next((runs / "baselines").glob("*.pt"))
    return root, runs, inputs, plan, checkpoint


@pytest.mark.slow
def test_bad_input_deep_in_every_command(world):
    root, runs, inputs, plan, checkpoint = world
    rows = []
    failures = []
    for what, line, message in CASES:
        args = line.replace("T/", f"{inputs}/").replace(" P ", f" {plan} ").replace(" C", f" {checkpoint}").split()
        if args[0] in {"run", "show", "pareto", "export", "rescore", "shortlist", "report", "sensitivity"}:
            args += ["--run-dir", str(runs)] if "--run-dir" not in args else []
        if args[0] == "calibrate" and "--study" in args:
            args += ["--run-dir", str(runs)]
        before = _tree(runs, inputs)
        result = _cli(*args, cwd=root)
        after = _tree(runs, inputs)
        lines = [text for text in result.stderr.splitlines() if text.strip()]
        printed = lines[0] if lines else ""
        shown = printed.replace(str(plan), "P").replace(str(inputs), "T").replace(str(runs), "R")
        rows.append((what, f"search {line}", shown, result.returncode))
        problems = []
        if result.returncode != 2:
            problems.append(f"exit {result.returncode}")
        if len(lines) != 1 or "Traceback" in result.stderr:
            problems.append(f"stderr of {len(lines)} lines")
        if message not in printed:
            problems.append(f"no '{message}' in '{printed}'")
        if after != before:
            problems.append(f"files changed: {sorted(set(after.items()) ^ set(before.items()))[:3]}")
        if "secret" in result.stdout + result.stderr:
            problems.append("the password was printed")
        if problems:
            failures.append(f"{what} ({line}): {'; '.join(problems)}")
    if os.environ.get("BAD_INPUT_TABLE"):
        table = ["| # | bad input | command | the one line printed | exit |", "|---:|---|---|---|---:|"]
        table += [f"| {i} | {w} | `{c}` | `{p}` | {rc} |" for i, (w, c, p, rc) in enumerate(rows, 1)]
        Path(os.environ["BAD_INPUT_TABLE"]).write_text("\n".join(table) + "\n")
    assert len(CASES) >= 60
    assert not failures, "\n".join(failures)
    shutil.rmtree(root / "plan", ignore_errors=True)
