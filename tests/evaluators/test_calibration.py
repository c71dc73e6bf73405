from __future__ import annotations

import pytest
import torch

from evaluators.calibration import Sample, fit, get_value, predict, with_values
from evaluators.cost_model import CostModel
from evaluators.graph import read_graph
from hw_profiles import load_profile
from spaces.fp16 import convert_layers_fp16
from spaces.onnx_export import compute_node_names, export_onnx


def _graphs():
    """Graphs of different balance: compute-heavy convs, a thin stack (overhead-heavy), a wide one."""
    shapes = [(3, 64, 32), (3, 16, 16), (3, 128, 24), (3, 8, 8)]
    out = []
    for cin, width, size in shapes:
        model = torch.nn.Sequential(
            torch.nn.Conv2d(cin, width, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1, groups=width),
            torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 1),
        ).eval()
        out.append(read_graph(export_onnx(model, size)))
    return out


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_recovers_known_parameters(threads):
    _, unit, _ = load_profile("pixel7")
    truth = with_values(unit, {"gmacs.fp32": 30.0, "overhead_us": 6.0, "kind_efficiency.depthwise": 0.3}, "truth")
    samples = [Sample(g, predict(truth, Sample(g, 1.0, threads)), threads) for g in _graphs()]
    start = with_values(unit, {"gmacs.fp32": 12.0, "overhead_us": 1.0, "kind_efficiency.depthwise": 0.8}, "start")
    result = fit(start, samples, ["gmacs.fp32", "overhead_us", "kind_efficiency.depthwise"], "fit")
    assert get_value(result.unit, "gmacs.fp32") == pytest.approx(30.0, rel=0.01)
    assert get_value(result.unit, "overhead_us") == pytest.approx(6.0, rel=0.01)
    assert get_value(result.unit, "kind_efficiency.depthwise") == pytest.approx(0.3, rel=0.01)
    assert result.error_after["median_abs_pct"] < 0.5 < result.error_before["median_abs_pct"]
    assert result.unit.gmacs["fp32"].source == "fit"


def test_per_op_fit_recovers_known_parameters():
    _, unit, _ = load_profile("pixel7")
    truth = with_values(unit, {"gmacs.fp32": 25.0, "vector_gops.fp32": 10.0}, "truth")
    samples = []
    for g in _graphs():
        rows = {row.name: row.ms for row in CostModel(truth).estimate(g).layers}
        samples.append(Sample(g, sum(rows.values()), 1, op_ms=rows))
    start = with_values(unit, {"gmacs.fp32": 5.0, "vector_gops.fp32": 40.0}, "start")
    result = fit(start, samples, ["gmacs.fp32", "vector_gops.fp32"], "fit", per_op=True)
    assert get_value(result.unit, "gmacs.fp32") == pytest.approx(25.0, rel=0.01)


def test_fit_recovers_memory_overlap_from_the_shipped_gpu_profile():
    _, shipped, _ = load_profile("pixel7:gpu")  # ships memory_overlap 0: the fit starts at its lower bound
    unit = with_values(shipped, {"overhead_us": 5.0, "inference_overhead_us": 10.0}, "small overheads")
    assert get_value(unit, "memory_overlap") == 0.0
    truth = with_values(unit, {"gmacs.fp16": 40.0, "memory_overlap": 0.3}, "truth")
    graphs = []
    for width, size in [(8, 256), (16, 192), (4, 320), (32, 128)]:  # large tensors, few MACs: memory matters
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 1), torch.nn.Conv2d(width, width, 1), torch.nn.Conv2d(width, width, 1)
        ).eval()
        onnx_model = export_onnx(model, size)
        graphs.append(read_graph(convert_layers_fp16(onnx_model, compute_node_names(onnx_model))))
    samples = [Sample(g, predict(truth, Sample(g, 1.0))) for g in graphs]
    added, hidden = with_values(truth, {"memory_overlap": 0.0}, "x"), with_values(truth, {"memory_overlap": 1.0}, "x")
    apart = [predict(added, s) / predict(hidden, s) for s in samples]
    assert min(apart) > 1.1  # whether memory time hides or adds moves each of these latencies by more than 10%
    result = fit(unit, samples, ["gmacs.fp16", "memory_overlap"], "fit")
    assert get_value(result.unit, "gmacs.fp16") == pytest.approx(40.0, rel=0.01)
    assert get_value(result.unit, "memory_overlap") == pytest.approx(0.3, abs=0.01)


def test_unknown_parameter_is_refused():
    _, unit, _ = load_profile("pixel7")
    with pytest.raises(ValueError, match=r"cannot fit gmacs\.int4"):
        fit(unit, [], ["gmacs.int4"], "fit")


def test_a_parameter_the_rows_push_to_a_bound_is_flagged_and_each_value_has_its_leave_one_out_range():
    from evaluators.calibration import with_spread

    _, unit, _ = load_profile("pixel7")
    graphs = _graphs()
    fast = [Sample(g, predict(unit, Sample(g, 1.0)) / 50, 1) for g in graphs]  # 50x faster than any share allows
    pinned = fit(unit, fast, ["kind_efficiency.depthwise"], "fit")
    assert pinned.pinned == ("kind_efficiency.depthwise",)
    truth = with_values(unit, {"gmacs.fp32": 30.0}, "truth")
    noisy = [Sample(g, predict(truth, Sample(g, 1.0)) * f, 1) for g, f in zip(graphs, (1.1, 0.9, 1.05, 0.95), strict=True)]
    result = with_spread(fit(unit, noisy, ["gmacs.fp32"], "fit"), unit, noisy, "fit")
    low, high = result.spread["gmacs.fp32"]
    assert low < result.params["gmacs.fp32"] < high and not result.pinned
    two = with_spread(fit(unit, noisy[:2], ["gmacs.fp32"], "fit"), unit, noisy[:2], "fit")
    assert two.spread == {}  # a fit without one of two rows would match the other exactly: no range
