from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from evaluators.graph import read_graph
from evaluators.onnx_runtime import session
from spaces.analysis import compute_layers
from spaces.apply import calibration_images
from spaces.fp16 import convert_layers_fp16
from spaces.onnx_export import compute_node_names, export_onnx
from spaces.quantize import QUANTIZERS, quantize_int8, quantized_nodes
from tests.conftest import randomise_batchnorm


def _run(graph: onnx.ModelProto, x: torch.Tensor) -> np.ndarray:
    return session(graph.SerializeToString()).run(None, {"input": x.numpy()})[0]


def test_export_folds_batchnorm_names_layers_and_matches_torch(tiny_hlcnn):
    randomise_batchnorm(tiny_hlcnn)
    x = torch.randn(4, 3, 16, 16)
    graph = export_onnx(tiny_hlcnn, 16)
    onnx.checker.check_model(graph)
    assert not [n for n in graph.graph.node if n.op_type == "BatchNormalization"]
    assert sorted(compute_node_names(graph)) == sorted(compute_layers(tiny_hlcnn))
    with torch.no_grad():
        expected = tiny_hlcnn(x).numpy()
    np.testing.assert_allclose(_run(graph, x), expected, atol=1e-4)


def test_mixed_int8_fp16_fp32_graph(tiny_cnn, digits):
    randomise_batchnorm(tiny_cnn)
    graph = export_onnx(tiny_cnn, 16)
    int8 = ["stage1.conv1.0", "stage2.conv1.0", "down2.0"]
    fp16 = ["stage1.conv2.0", "fc"]
    graph = quantize_int8(graph, calibration_images(digits.train, 32, 0), int8)
    graph = convert_layers_fp16(graph, fp16)
    onnx.checker.check_model(graph)
    precisions = {op.name: op.precision for op in read_graph(graph).ops if op.op_type in ("Conv", "Gemm")}
    assert {n for n, p in precisions.items() if p == "int8"} == set(int8)
    assert {n for n, p in precisions.items() if p == "fp16"} == set(fp16)
    assert precisions["stem.0"] == "fp32"
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Cast"} <= ops
    x = digits.val[0][0].unsqueeze(0).repeat(8, 1, 1, 1)
    with torch.no_grad():
        expected = tiny_cnn(x).numpy()
    out = _run(graph, x)
    assert np.corrcoef(out.ravel(), expected.ravel())[0, 1] > 0.99


def test_adjacent_fp16_layers_share_one_cast():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)
    ).eval()
    graph = convert_layers_fp16(export_onnx(model, 8), ["0", "1", "3"])
    onnx.checker.check_model(graph)
    casts = [n for n in graph.graph.node if n.op_type == "Cast"]
    # 0 -> 1 are adjacent: their fp32 round trip is removed; the ReLU between 1 and 3 keeps its casts
    assert len(casts) == 4
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_run(graph, x), expected, atol=2e-2)


@pytest.mark.parametrize("quantizer", sorted(QUANTIZERS))
def test_every_quantizer_quantizes_exactly_the_chosen_layers_and_keeps_the_outputs(quantizer, tiny_cnn, digits):
    """nncf (the tool's), nncf-default and ort (onnxruntime's quantize_static): the layers asked for run INT8 in the
    device view, the others FP32, and the logits stay close to the FP32 graph's."""
    randomise_batchnorm(tiny_cnn)
    fp32 = export_onnx(tiny_cnn, 16)
    int8 = ["stem.0", "stage1.conv1.0", "down2.0"]
    graph = quantize_int8(fp32, calibration_images(digits.train, 32, 0), int8, quantizer=quantizer)
    onnx.checker.check_model(graph)
    precisions = {op.name: op.precision for op in read_graph(graph).ops if op.op_type in ("Conv", "Gemm")}
    assert {n for n, p in precisions.items() if p == "int8"} == set(int8)
    assert quantized_nodes(graph) & set(compute_node_names(fp32)) == set(int8)
    x = torch.stack([digits.test[i][0] for i in range(64)])
    reference, quantized = _run(fp32, x), _run(graph, x)
    assert np.abs(quantized - reference).max() < 0.25 * np.abs(reference).max()
    assert (quantized.argmax(1) == reference.argmax(1)).mean() > 0.8
