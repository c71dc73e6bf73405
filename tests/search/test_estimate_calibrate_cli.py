from __future__ import annotations

import csv
import json

import yaml

from hw_profiles import PROFILE_DIR, load_profile_file
from tests.search.test_cli import run_cli


def test_estimate_json_and_by_layer(tmp_path):
    result = run_cli("estimate", "--hw", "pixel7:gpu", "--model", "small_cnn", "--input-size", "32", "--json", "--by-layer")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"latency_ms", "energy_mj", "params", "macs"} <= set(data)
    assert data["hw"] == "pixel7:gpu" and data["macs"] > 1e6 and data["layers"]
    low, high = data["latency_band_ms"]  # from the profile's out-of-sample residuals; energy has none
    assert low < data["latency_ms"] < high and "out-of-sample rows" in data["latency_band"] and not data["energy_checked"]
    assert data["energy_band_mj"] is None
    rpi4 = run_cli("estimate", "--hw", "rpi4", "--model", "small_cnn", "--input-size", "32", "--json")
    checked = json.loads(rpi4.stdout)  # rpi4:cpu's energy was checked against published board measurements
    low, high = checked["energy_band_mj"]
    band = load_profile_file(PROFILE_DIR / "rpi4.yaml").units["cpu"].energy_band
    assert checked["energy_checked"] and band is not None and low < high
    assert abs(low - checked["energy_mj"] * band.low) < 1e-9 * low
    text = run_cli("estimate", "--hw", "rpi4", "--model", "small_cnn", "--input-size", "32").stdout
    assert "published rows" in text and "unchecked" not in text
    assert "unchecked" in run_cli("estimate", "--hw", "pixel7", "--model", "small_cnn", "--input-size", "32").stdout
    host = json.loads(run_cli("estimate", "--hw", "host", "--model", "small_cnn", "--input-size", "32", "--json").stdout)
    assert host["latency_band_ms"] is None and host["latency_band"] == "no out-of-sample check"
    int8 = json.loads(
        run_cli(
            "estimate", "--hw", "pixel7", "--model", "small_cnn", "--input-size", "32", "--precision", "int8", "--json"
        ).stdout
    )
    fp32 = json.loads(run_cli("estimate", "--hw", "pixel7", "--model", "small_cnn", "--input-size", "32", "--json").stdout)
    assert int8["latency_ms"] < fp32["latency_ms"] and int8["size_bytes"] < fp32["size_bytes"] / 3
    table = run_cli("estimate", "--hw", "pixel7", "--model", "small_cnn", "--input-size", "32", "--by-layer")
    assert "stage1.conv1.0" in table.stdout and "compute" in table.stdout


def test_estimate_reads_an_onnx_file_and_refuses_bad_input(tmp_path):
    from search.models import build_model
    from spaces.onnx_export import export_onnx

    path = tmp_path / "m.onnx"
    path.write_bytes(export_onnx(build_model("hl_cnn", 10), 32).SerializeToString())
    result = run_cli("estimate", "--hw", "rpi4", "--model", str(path), "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["latency_ms"] > 0
    (tmp_path / "bad.onnx").write_text("nope")
    (tmp_path / "cumsum.onnx").write_bytes(_cumsum_graph().SerializeToString())
    for args, message in [
        (["--model", str(tmp_path / "bad.onnx")], "is not a valid ONNX model"),
        (["--model", str(tmp_path / "missing.onnx")], "not found"),
        (["--model", "resnet1888"], "unknown model"),
        (["--hw", "pixel7:npu", "--model", "small_cnn"], "unknown unit of pixel7"),
        (["--hw", "rpi4", "--model", "small_cnn", "--precision", "fp16"], "rpi4:cpu does not run fp16"),
        (["--hw", "rpi4", "--model", "small_cnn", "--threads", "8"], "runs at most 4 thread(s)"),
        (["--model", "small_cnn", "--input-size", "0"], "--input-size must be at least 1"),
        (["--model", str(tmp_path / "cumsum.onnx")], "op 'CumSum' (node 'sum') is not covered"),
    ]:
        hw = [] if "--hw" in args else ["--hw", "pixel7"]
        bad = run_cli("estimate", *hw, *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_estimate_fixes_a_files_dynamic_size_and_quantizes_its_own_input(tmp_path):
    import torch

    path = tmp_path / "dynamic.onnx"
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 16, 16),),
        str(path),
        input_names=["pixels"],
        dynamic_axes={"pixels": {2: "h", 3: "w"}},
        dynamo=False,
    )
    at = {
        size: json.loads(run_cli("estimate", "--hw", "pixel7", "--model", str(path), "--input-size", size, "--json").stdout)
        for size in ("16", "32")
    }
    assert at["32"]["macs"] == 4 * at["16"]["macs"] == 4 * 16 * 16 * 8 * 27 and at["32"]["input_size"] == 32
    int8 = run_cli("estimate", "--hw", "pixel7", "--model", str(path), "--input-size", "16", "--precision", "int8", "--json")
    assert int8.returncode == 0, int8.stderr
    assert json.loads(int8.stdout)["size_bytes"] < at["16"]["size_bytes"]


def _cumsum_graph():
    from onnx import TensorProto, helper

    axis = helper.make_tensor("axis", TensorProto.INT64, [], [1])
    node = helper.make_node("CumSum", ["input", "axis"], ["output"], name="sum")
    graph = helper.make_graph(
        [node],
        "cumsum",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])],
        [axis],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_calibrate_recovers_a_known_profile_from_measurements(tmp_path):
    """Rows generated by a known profile (MAC rate x3, overhead 8 us) are fitted back from the shipped one."""
    from evaluators.calibration import with_values
    from evaluators.estimate import cost_model
    from evaluators.graph import read_graph
    from hw_profiles import load_profile
    from search.models import model_graph

    profile, unit, _ = load_profile("pixel7")
    truth = profile.model_copy(
        update={
            "units": {
                **profile.units,
                "cpu": with_values(unit, {"gmacs.fp32": 3 * unit.gmacs["fp32"].value, "overhead_us": 8.0}, "truth"),
            }
        }
    )
    rows = []
    for model, size in [("small_cnn", 32), ("hl_cnn", 32), ("small_cnn", 64), ("hl_cnn", 96), ("small_cnn", 128)]:
        latency = cost_model(truth, "cpu").estimate(read_graph(model_graph(model, "fp32", size))).latency_ms
        rows.append(
            {
                "model": model,
                "precision": "fp32",
                "unit": "cpu",
                "threads": 1,
                "input_size": size,
                "latency_ms": latency,
                "source": "synthetic",
            }
        )
    csv_path = tmp_path / "rows.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "pixel7.yaml"
    result = run_cli("calibrate", "--hw", "pixel7", "--measurements", str(csv_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "leave-one-row-out range" in result.stdout  # 5 rows, 2 parameters: each fit without one row still determined
    fitted = load_profile_file(out)
    assert fitted.version == profile.version + 1
    assert abs(fitted.units["cpu"].gmacs["fp32"].value / (3 * unit.gmacs["fp32"].value) - 1) < 0.01
    assert abs(fitted.units["cpu"].overhead_us.value - 8.0) < 0.1
    assert fitted.units["cpu"].gmacs["fp32"].source.startswith("calibration-")
    assert fitted.units["gpu"] == profile.units["gpu"]
    assert (
        "fitted gmacs.fp32, overhead_us" in yaml.safe_load(out.read_text())["sources"][fitted.units["cpu"].gmacs["fp32"].source]
    )


def test_calibrate_bad_measurements(tmp_path):
    cases = {
        "missing.csv": (None, "not found"),
        "cols.csv": ("model,precision\nx,fp32\n", "lacks column(s) unit"),
        "unit.csv": (
            "model,precision,unit,threads,input_size,latency_ms\nsmall_cnn,fp32,npu,1,32,1.0\n",
            "unit 'npu' is not one of",
        ),
        "prec.csv": ("model,precision,unit,threads,input_size,latency_ms\nsmall_cnn,int8,gpu,1,32,1.0\n", "does not run int8"),
        "num.csv": ("model,precision,unit,threads,input_size,latency_ms\nsmall_cnn,fp32,cpu,one,32,1.0\n", "must be integers"),
        "thr.csv": ("model,precision,unit,threads,input_size,latency_ms\nsmall_cnn,fp32,cpu,16,32,1.0\n", "line 2: threads 16"),
        "zero.csv": ("model,precision,unit,threads,input_size,latency_ms\nsmall_cnn,fp32,cpu,1,32,0\n", "must be positive"),
        "name.csv": (
            "model,precision,unit,threads,input_size,latency_ms\nsmall_cnn,fp32,cpu,1,32,1\nsmal_cnn,fp32,cpu,1,32,1\n",
            "line 3: unknown model 'smal_cnn'",
        ),
        "dup.csv": (  # the same measurement twice is one row of evidence: one unknown from one row proves nothing
            "model,precision,unit,threads,input_size,latency_ms\nsmall_cnn,fp32,cpu,1,32,1.0\nsmall_cnn,fp32,cpu,1,32,1.1\n",
            "cpu: 1 parameter(s) (gmacs.fp32) from 1 distinct row(s) would fit them exactly and prove nothing",
        ),
        "protocol.csv": (  # pixel7:cpu models XNNPACK: a row of TFLite's built-in kernels is no evidence about it
            "model,precision,unit,threads,input_size,latency_ms,protocol\nsmall_cnn,fp32,cpu,1,32,1.0,tflite-cpu@2019/big/invoke\n",
            "line 2: measured under tflite-cpu@2019/big/invoke, but pixel7:cpu models xnnpack@2024/prime/invoke",
        ),
        "badprotocol.csv": (
            "model,precision,unit,threads,input_size,latency_ms,protocol\nsmall_cnn,fp32,cpu,1,32,1.0,xnnpack-2024\n",
            "line 2: protocol 'xnnpack-2024' is not KERNELS@YEAR/CORES/TIMED",
        ),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        result = run_cli("calibrate", "--hw", "pixel7", "--measurements", str(path), "--out", str(tmp_path / "out.yaml"))
        assert result.returncode == 2 and message in result.stderr, (name, result.stderr)
        assert not (tmp_path / "out.yaml").exists()
    good = tmp_path / "good.csv"
    good.write_text(
        "\ufeffmodel, precision, unit, threads, input_size, latency_ms\nsmall_cnn, fp32, cpu, 1, 32, 1.0\n"
        "small_cnn, fp32, cpu, 1, 64, 3.0\n"
    )
    for args, message in [
        (["--params", "gmacs.fp99", "--out", str(tmp_path / "p.yaml")], "--params: cannot fit gmacs.fp99"),
        (["--out", str(tmp_path)], "is a folder"),
    ]:
        result = run_cli("calibrate", "--hw", "pixel7", "--measurements", str(good), *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    spreadsheet = run_cli("calibrate", "--hw", "pixel7", "--measurements", str(good), "--out", str(tmp_path / "out.yaml"))
    assert spreadsheet.returncode == 0, spreadsheet.stderr  # a byte-order mark and spaces after commas are read
    device = run_cli("calibrate", "--hw", "pixel7", "--out", str(tmp_path / "out.yaml"))
    assert device.returncode == 2 and "pass --measurements" in device.stderr


def test_estimate_names_the_layers_predicted_slower_than_fp32(tmp_path):
    """A unit whose INT8 runs at a tenth of its FP32 rate: `search estimate` says which layers lose, in text and JSON."""
    data = yaml.safe_load((PROFILE_DIR / "pixel7.yaml").read_text())
    data["units"]["cpu"]["gmacs"]["int8"]["value"] = data["units"]["cpu"]["gmacs"]["fp32"]["value"] / 10
    path = tmp_path / "slow-int8.yaml"
    path.write_text(yaml.safe_dump(data))
    args = ["estimate", "--hw", str(path), "--model", "small_cnn", "--input-size", "32", "--precision", "int8"]
    text = run_cli(*args)
    assert text.returncode == 0, text.stderr
    assert "layers predicted slower than in FP32 on this unit" in text.stdout.replace("\n", " ")
    slower = json.loads(run_cli(*args, "--json").stdout)["slower_than_fp32"]
    assert slower and all(layer["precision"] == "int8" and layer["ms"] > layer["fp32_ms"] for layer in slower)
    fast = json.loads(run_cli("estimate", "--hw", "pixel7", "--model", "small_cnn", "--input-size", "32", "--json").stdout)
    assert fast["slower_than_fp32"] == []
