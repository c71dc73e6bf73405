"""Every subcommand, given bad input as a user would type it: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import pytest

from search.cli import build_parser
from tests.search.test_cli import run_cli


def _subcommands() -> set[str]:
    """Every leaf subcommand of the parser, e.g. ``run``, ``hw show``."""
    import argparse

    def walk(parser: argparse.ArgumentParser, prefix: str) -> set[str]:
        found: set[str] = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found |= walk(child, f"{prefix} {name}".strip()) or {f"{prefix} {name}".strip()}
        return found

    return walk(build_parser(), "")


def _uncovered_onnx(path) -> None:
    """An image model whose only op (CumSum) no latency model covers."""
    import onnx
    from onnx import TensorProto, helper

    axis = helper.make_tensor("axis", TensorProto.INT64, [], [1])
    node = helper.make_node("CumSum", ["input", "axis"], ["output"], name="sum")
    graph = helper.make_graph(
        [node],
        "uncovered",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])],
        [axis],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


MISSING_DB = "sqlite:///TMP/missing.db"
CASES = {
    "run": (["run", "--hw", "pixel8", "--run-dir", "TMP/runs"], "unknown hardware profile 'pixel8'"),
    "compare": (["compare", "--models", "hl_cnn,resnet19", "--out", "TMP/runs"], "unknown model 'resnet19'"),
    "train": (["train", "--model", "resnet19", "--run-dir", "TMP/runs"], "unknown model 'resnet19'"),
    "sensitivity": (["sensitivity", "--changes", "int4", "--run-dir", "TMP/runs"], "'int4' is not one of fp16, int8, prune"),
    "studies": (["studies", "--storage", MISSING_DB], "no study database"),
    "show": (["show", "s", "--storage", "bogus"], "is malformed"),
    "pareto": (["pareto", "s", "--storage", MISSING_DB], "no study database"),
    "report": (["report", "s", "--storage", MISSING_DB, "--out", "TMP/r.html"], "no study database"),
    "export": (["export", "s", "--trial", "1", "--storage", MISSING_DB, "--out", "TMP/out"], "no study database"),
    "rescore": (["rescore", "s", "--hw", "rpi4", "--storage", MISSING_DB], "no study database"),
    "shortlist": (["shortlist", "s", "--storage", MISSING_DB, "--out", "TMP/list"], "no study database"),
    "apply": (["apply", "TMP/missing.yaml", "--model", "small_cnn", "--out", "TMP/m.onnx"], "plan 'TMP/missing.yaml' not found"),
    "hw list": (["hw", "list", "--all"], "unrecognized arguments: --all"),
    "hw show": (["hw", "show", "pixel8"], "unknown hardware profile 'pixel8'"),
    "estimate": (["estimate", "--hw", "pixel7", "--model", "TMP/uncovered.onnx", "--input-size", "8"], "op 'CumSum'"),
    "calibrate": (["calibrate", "--hw", "pixel7", "--measurements", "TMP/rows.csv", "--out", "TMP/p.yaml"], "op 'CumSum'"),
}
MORE = [
    (["run", "--sampler", "annealing", "--run-dir", "TMP/runs"], "invalid choice: 'annealing'"),
    (["run", "--strategy", "int8-tflite", "--run-dir", "TMP/runs"], "unknown strategy 'int8-tflite'"),
    (["compare", "--data", "fashion-mnist:TMP/nowhere", "--out", "TMP/runs"], "TMP/nowhere"),
    (["compare", "--trials", "8", "--out", "TMP/runs"], "--trials 8 leaves no trial to search"),
    (["sensitivity", "--prune-ratio", "1.5", "--run-dir", "TMP/runs"], "--prune-ratio 1.5 is outside (0, 1)"),
    (["run", "--objectives", "accuracy,latncy", "--run-dir", "TMP/runs"], "unknown objective 'latncy': did you mean latency"),
    (["estimate", "--hw", "pixel7", "--model", "resnet18", "--precision", "int4"], "invalid choice: 'int4'"),
    (["calibrate", "--hw", "pixel7"], "is a device profile: pass --measurements"),
    (["run", "--hw", "pixel7,pixel9", "--run-dir", "TMP/runs"], "unknown hardware profile 'pixel9'"),
    (["compare", "--hw", "pixel7,rpi4", "--out", "TMP/runs"], "search compare takes one --hw device"),
    (["sensitivity", "--hw", "pixel7,rpi4", "--run-dir", "TMP/runs"], "search sensitivity takes one --hw device"),
]


def test_every_subcommand_has_a_bad_input_case():
    assert _subcommands() == set(CASES), "add a bad-input case for each new subcommand"


@pytest.mark.parametrize("args, message", [*CASES.values(), *MORE], ids=[*CASES, *(" ".join(a[:2]) for a, _ in MORE)])
def test_bad_input_is_one_line_without_traceback(tmp_path, args, message):
    _uncovered_onnx(tmp_path / "uncovered.onnx")
    (tmp_path / "rows.csv").write_text(
        f"model,precision,unit,threads,input_size,latency_ms\n{tmp_path / 'uncovered.onnx'},fp32,cpu,1,8,1.0\n"
        f"{tmp_path / 'uncovered.onnx'},fp32,cpu,1,16,2.0\n"
    )
    args = [a.replace("TMP", str(tmp_path)) for a in args]
    result = run_cli(*args, cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and message.replace("TMP", str(tmp_path)) in lines[0], result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_subcommand_prints_its_help(command):
    """Help texts are built from the registries (a '%' in a description once broke `search run --help`)."""
    result = run_cli(*command.split(), "--help")
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
