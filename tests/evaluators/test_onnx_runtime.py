from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluators.onnx_runtime import classification_metrics, measure_latency, session
from spaces.onnx_export import export_onnx


def test_metrics_by_hand():
    logits = np.array([[9, 1, 0, 0, 0, 0], [0, 9, 1, 0, 0, 0], [1, 9, 0, 0, 0, 0], [0, 0, 9, 1, 0, 0]], dtype=np.float32)
    labels = np.array([0, 1, 0, 2])
    m = classification_metrics(logits, labels)
    assert m["top1"] == pytest.approx(0.75)
    assert m["top5"] == pytest.approx(1.0)
    # class 0: tp 1, pred 1, true 2 -> 2/3; class 1: tp 1, pred 2, true 1 -> 2/3; class 2: 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert "top5" not in classification_metrics(logits[:, :5], labels)


def test_nan_logits_raise():
    with pytest.raises(FloatingPointError):
        classification_metrics(np.full((2, 3), np.nan, dtype=np.float32), np.array([0, 1]))


def test_measured_latency_is_positive_and_ordered(tiny_cnn):
    small = session(export_onnx(tiny_cnn, 16).SerializeToString())
    big = session(
        export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 128, 3), torch.nn.Conv2d(128, 128, 3)).eval(), 64).SerializeToString()
    )
    a = measure_latency(small, (1, 3, 16, 16), repeats=20)
    b = measure_latency(big, (1, 3, 64, 64), repeats=10)
    assert 0 < a < b
