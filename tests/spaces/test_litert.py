"""LiteRT export of a candidate: litert-torch conversion, per-layer precisions by ai-edge-quantizer, read back."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from core.errors import UserError
from spaces.plan import PlanError
from tests.conftest import randomise_batchnorm


def _images(digits, count: int = 16) -> np.ndarray:
    return torch.stack([digits.train[i][0] for i in range(count)]).numpy()


@pytest.fixture()
def float_tflite(tiny_cnn, tmp_path):
    from spaces.litert import convert

    randomise_batchnorm(tiny_cnn)
    path = tmp_path / "fp32.tflite"
    convert(tiny_cnn, 16, path)
    return tiny_cnn, path


def test_the_fp32_tflite_computes_what_the_torch_model_does(float_tflite, digits):
    from evaluators.litert_runtime import interpreter

    model, path = float_tflite
    runner = interpreter(path)
    images = _images(digits, 4)
    source, target = runner.get_input_details()[0]["index"], runner.get_output_details()[0]["index"]
    for image in images:
        runner.set_tensor(source, image[None])
        runner.invoke()
        expected = model(torch.from_numpy(image[None])).detach().numpy()
        np.testing.assert_allclose(runner.get_tensor(target), expected, rtol=1e-4, atol=1e-4)


def test_each_layer_gets_its_plans_precision_read_back_from_the_file(float_tflite, digits, tmp_path):
    from evaluators.litert_runtime import interpreter, op_types
    from spaces.litert import set_precisions

    _, path = float_tflite
    layers = {"int8": ["stage1.conv1.0", "down2.0"], "fp16": ["stem.0", "fc"], "fp32": ["stage3.conv2.0"]}
    written = set_precisions(path, layers, _images(digits), tmp_path / "mixed.tflite")
    types = {layer: op.weight_type for layer, op in written.items()}
    expected = {"stage1.conv1.0": "int8", "down2.0": "int8", "stem.0": "float16", "fc": "float16", "stage3.conv2.0": "float32"}
    assert types == expected
    ops = op_types(interpreter(tmp_path / "mixed.tflite"))
    assert ops["QUANTIZE"] >= 2 and ops["DEQUANTIZE"] >= 4  # into and out of each INT8 layer; FP16 weights widened
    assert ops["FULLY_CONNECTED"] == 1


def test_an_all_fp32_plan_is_the_converted_file(float_tflite, digits, tmp_path):
    from spaces.litert import set_precisions

    _, path = float_tflite
    written = set_precisions(path, {"fp32": ["stem.0", "fc"], "int8": []}, _images(digits), tmp_path / "out.tflite")
    assert {op.weight_type for op in written.values()} == {"float32"}
    assert (tmp_path / "out.tflite").read_bytes() == path.read_bytes()


def test_a_layer_the_file_does_not_have_is_an_error(float_tflite):
    from spaces.litert import layer_ops

    _, path = float_tflite
    with pytest.raises(PlanError, match=r"exactly one op for layer stage9\.conv1\.0 \(0 ops\)"):
        layer_ops(path, ["stage1.conv1.0", "stage9.conv1.0"])


def test_timm_module_paths_map_to_depthwise_and_pointwise_ops(tmp_path):
    from search.models import build_model
    from spaces.litert import convert, layer_ops

    torch.manual_seed(0)
    model = build_model("mobilenetv2_050", 10).eval()
    path = tmp_path / "mnv2.tflite"
    convert(model, 32, path)
    ops = layer_ops(path, ["conv_stem", "blocks.1.0.conv_dw", "blocks.1.0.conv_pwl", "classifier"])
    assert [op.op_type for op in ops.values()] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "FULLY_CONNECTED"]


def test_a_top_level_layer_is_not_matched_inside_the_blocks_with_a_layer_of_its_name(tmp_path):
    """ResNet's stem ``conv1`` beside every block's ``conv1``: each layer path maps to its own op only."""
    from search.models import build_model
    from spaces.litert import convert, layer_ops

    torch.manual_seed(0)
    model = build_model("resnet18", 10).eval()
    randomise_batchnorm(model)  # timm zeroes each block's last BatchNorm: the converter would fold conv2 away
    path = tmp_path / "resnet18.tflite"
    convert(model, 32, path)
    layers = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.downsample.0", "fc"]
    ops = layer_ops(path, layers)
    assert len({op.index for op in ops.values()}) == len(layers)
    assert [op.op_type for op in ops.values()] == ["CONV_2D"] * 4 + ["FULLY_CONNECTED"]


def test_without_the_extra_the_error_names_the_install_command(monkeypatch):
    from spaces import litert

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "litert_torch" else real(name))
    with pytest.raises(UserError, match=r"needs litert_torch \(the \[litert\] extra\): pip install .*\[litert\]"):
        litert.require_litert()


def test_nncfs_bias_corrections_are_carried_into_the_model_the_tflite_is_converted_from(tiny_cnn, digits):
    from spaces.litert import carry_bias_corrections, compute_biases
    from spaces.onnx_export import batchnorm_of_layers, compute_node_names, export_onnx
    from spaces.quantize import quantize_int8

    randomise_batchnorm(tiny_cnn)
    fp32 = export_onnx(tiny_cnn, 16)
    quantized = quantize_int8(fp32, _images(digits, 32), compute_node_names(fp32))
    folds = batchnorm_of_layers(tiny_cnn, 16)
    assert folds["stage1.conv1.0"] == "stage1.conv1.1"  # the conv and the BatchNorm after it
    changed = carry_bias_corrections(tiny_cnn, fp32, quantized, folds)
    assert changed  # NNCF's fast bias correction moved some biases
    after, wanted = compute_biases(export_onnx(tiny_cnn, 16)), compute_biases(quantized)
    for layer in changed:
        np.testing.assert_allclose(after[layer], wanted[layer], rtol=1e-5, atol=1e-6)
