from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import UserError
from evaluators.cost_model import CostModel, LayerCost, UnsupportedPrecisionError
from evaluators.graph import read_graph
from hw_profiles import load_profile, load_profile_file
from hw_profiles.host import TEMPLATE
from hw_profiles.schema import Sourced
from spaces.fp16 import convert_layers_fp16
from spaces.onnx_export import compute_node_names, export_onnx
from spaces.quantize import quantize_int8


@pytest.fixture(scope="module")
def pixel7_cpu():
    return load_profile("pixel7")[1]


def _graphs(model: torch.nn.Module, size: int):
    fp32 = export_onnx(model, size)
    calib = np.random.default_rng(0).standard_normal((8, 3, size, size)).astype(np.float32)
    int8 = quantize_int8(export_onnx(model, size), calib, compute_node_names(fp32))
    fp16 = convert_layers_fp16(export_onnx(model, size), compute_node_names(fp32))
    return fp32, fp16, int8


def test_lower_precision_is_faster_on_a_compute_bound_model(pixel7_cpu):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1)
    ).eval()
    fp32, fp16, int8 = (CostModel(pixel7_cpu).estimate(read_graph(g)) for g in _graphs(model, 32))
    assert int8.latency_ms < fp16.latency_ms < fp32.latency_ms
    assert int8.energy_mj < fp32.energy_mj
    assert fp32.size_bytes == 2 * fp16.size_bytes
    assert all(row.bound == "compute" for row in fp32.layers if row.op_type == "Conv")


def test_fused_activation_costs_nothing_and_switches_cost_something(pixel7_cpu, tiny_cnn):
    graph = read_graph(convert_layers_fp16(export_onnx(tiny_cnn, 16), ["stage1.conv1.0"]))
    estimate = CostModel(pixel7_cpu).estimate(graph)
    names = {row.name for row in estimate.layers}
    stem = next(i for i, op in enumerate(graph.ops) if op.name == "stem.0")
    stem_relu = next(op for op in graph.ops if op.op_type == "Relu" and op.inputs == [stem])
    assert stem_relu.name not in names  # fused into the stem conv on XNNPACK-style runtimes
    residual_relu = next(op for op in graph.ops if op.op_type == "Relu" and graph.ops[op.inputs[0]].op_type == "Add")
    assert residual_relu.name not in names  # fused into the residual Add
    switches = [row for row in estimate.layers if row.op_type == "Convert"]
    assert {row.kind for row in switches} == {"fp32->fp16", "fp16->fp32"}
    assert all(row.ms > 0 for row in switches)
    assert estimate.latency_ms == pytest.approx(sum(row.ms for row in estimate.layers))


def test_gelu_links_into_its_conv_on_the_gpu_delegate_not_on_xnnpack():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(8, 8, 1)).eval()
    graph = read_graph(export_onnx(model, 8))
    profile = load_profile("pixel7")[0]
    on_gpu, on_cpu = (
        [row.op_type for row in CostModel(profile.units[unit]).estimate(graph).layers if row.op_type != "Invoke"]
        for unit in ("gpu", "cpu")
    )
    assert on_gpu == ["Conv", "Conv"]
    assert on_cpu == ["Conv", "Gelu", "Conv"]


def test_memory_bound_when_bytes_dominate(pixel7_cpu):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4096, 4096)).eval()
    estimate = CostModel(pixel7_cpu).estimate(read_graph(export_onnx(model, 8, in_chans=64)))
    gemm = next(row for row in estimate.layers if row.op_type == "Gemm")
    assert gemm.bound == "memory"


def test_threads_speed_up_compute(pixel7_cpu):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.Conv2d(64, 64, 3, padding=1)).eval()
    graph = read_graph(export_onnx(model, 32))
    one, two = CostModel(pixel7_cpu, threads=1).estimate(graph), CostModel(pixel7_cpu, threads=2).estimate(graph)
    assert 1.5 < one.latency_ms / two.latency_ms < 2.0


def test_unsupported_precision_raises(pixel7_cpu):
    unit = pixel7_cpu.model_copy(update={"precisions": ["fp32"]})
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)).eval()
    assert CostModel(unit).estimate(read_graph(export_onnx(model, 8))).latency_ms > 0
    fp16 = read_graph(convert_layers_fp16(export_onnx(model, 8), ["0"]))
    with pytest.raises(UnsupportedPrecisionError, match="does not support") as raised:
        CostModel(unit).estimate(fp16)
    assert isinstance(raised.value, UserError) and "\n" not in str(raised.value)
    assert str(raised.value).endswith("convert that layer to fp32, or pick a unit that runs fp16")


def test_memory_overlap_chooses_between_roofline_max_and_sum(pixel7_cpu):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.Conv2d(64, 64, 3, padding=1)).eval()
    graph = read_graph(export_onnx(model, 32))

    def conv_rows(overlap: float | None) -> list[LayerCost]:
        update = {"memory_overlap": None if overlap is None else Sourced(value=overlap, source="test")}
        return [row for row in CostModel(pixel7_cpu.model_copy(update=update)).estimate(graph).layers if row.op_type == "Conv"]

    roofline, hidden, added, half = conv_rows(None), conv_rows(1.0), conv_rows(0.0), conv_rows(0.5)
    assert [r.ms for r in hidden] == [r.ms for r in roofline]  # absent: the roofline's max(compute, memory)
    for max_row, sum_row, half_row in zip(roofline, added, half, strict=True):
        assert max_row.bound == "compute" and max_row.bytes <= pixel7_cpu.cache_kb.value * 1024
        memory_ms = max_row.bytes / (pixel7_cpu.cache_gbs.value * 1e9) * 1e3
        assert sum_row.ms == pytest.approx(max_row.ms + memory_ms)  # overlap 0: memory time adds to compute
        assert half_row.ms == pytest.approx(max_row.ms + memory_ms / 2)
        assert sum_row.mj == pytest.approx(max_row.mj + pixel7_cpu.energy.static_w.value * memory_ms)  # busy power


def test_a_gpu_kernel_too_small_to_fill_its_lanes_runs_at_the_share_it_fills(pixel7_cpu):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 1), torch.nn.Conv2d(64, 64, 3, padding=1)).eval()
    graph = read_graph(export_onnx(model, 8))
    items = 64 * 8 * 8 // 4  # one work item per 4-channel output slice

    def conv_ms(occupancy_items: float | None) -> float:
        update = {"occupancy_items": None if occupancy_items is None else Sourced(value=occupancy_items, source="test")}
        row = max(CostModel(pixel7_cpu.model_copy(update=update)).estimate(graph).layers, key=lambda r: r.macs)
        assert row.bound == "compute"
        return row.ms

    full = conv_ms(None)
    assert conv_ms(items) == pytest.approx(full)  # enough outputs to fill every lane
    half, quarter = conv_ms(2 * items), conv_ms(4 * items)
    assert half > full
    assert quarter - half == pytest.approx(2 * (half - full))  # compute time x 1 / share filled


def test_winograd_only_for_the_3x3_stride_1_convs_the_gpu_delegate_runs_so():
    """The TFLite GPU delegate runs F(4x4,3x3) Winograd for 3x3, stride-1, ungrouped convs with enough channels and
    tiles (on Mali: 64 channels, 32 tiles); every other conv is a direct convolution. XNNPACK (the CPU) never does."""
    profile, _, _ = load_profile("pixel7")
    convs = {
        "large": torch.nn.Conv2d(64, 64, 3, padding=1),  # 32x32 output: 64 tiles
        "strided": torch.nn.Conv2d(64, 64, 3, stride=2, padding=1),
        "narrow": torch.nn.Conv2d(64, 32, 3, padding=1),  # 32 output channels: too few on Mali
        "wide_kernel": torch.nn.Conv2d(32, 64, 5, padding=2),
    }
    model = torch.nn.Sequential(convs["large"], convs["strided"], torch.nn.Upsample(scale_factor=2), convs["narrow"])
    model = torch.nn.Sequential(model, convs["wide_kernel"]).eval()
    graph = read_graph(export_onnx(model, 32, in_chans=64))
    gpu = CostModel(profile.units["gpu"]).estimate(graph)
    kinds = [row.kind for row in gpu.layers if row.op_type == "Conv"]
    assert kinds == ["winograd", "conv", "conv", "conv"]
    cpu = CostModel(profile.units["cpu"]).estimate(graph)
    assert "winograd" not in {row.kind for row in cpu.layers}


def test_a_precision_predicted_slower_than_fp32_is_named_per_layer(pixel7_cpu, tiny_cnn):
    """On a unit whose INT8 kernels are slow (INT8 at a tenth of the FP32 rate), every INT8 layer is named as slower
    than it would be in FP32; on pixel7's CPU (fast INT8 dot products) none is."""
    from evaluators.calibration import with_values

    _, _, int8 = _graphs(tiny_cnn, 32)
    graph = read_graph(int8)
    assert CostModel(pixel7_cpu).estimate(graph).slower_than_fp32() == []
    slow_int8 = with_values(pixel7_cpu, {"gmacs.int8": pixel7_cpu.gmacs["fp32"].value / 10}, "test")
    estimate = CostModel(slow_int8).estimate(graph)
    slower = estimate.slower_than_fp32()
    int8_layers = {row.name for row in estimate.layers if row.precision == "int8" and row.op_type == "Conv"}
    assert int8_layers and int8_layers <= {s.name for s in slower}
    assert all(s.precision == "int8" and s.ms > s.fp32_ms > 0 for s in slower)


def test_int8_depthwise_channels_off_the_depthwise_block_take_the_slow_kernel():
    unit = load_profile_file(TEMPLATE).units["cpu"]  # INT8 depthwise block 16 (onnxruntime's symmetric kernel)
    penalty = unit.depthwise_unaligned_efficiency["int8"].value
    assert unit.alignment_factor("int8", (96,), "depthwise") == 1.0
    assert unit.alignment_factor("int8", (72,), "depthwise") == pytest.approx(penalty)
    assert unit.alignment_factor("int8", (72, 72), "conv") == 1.0  # other kinds keep the shared block of 8
    assert unit.alignment_factor("fp32", (72,), "depthwise") == 1.0  # no depthwise block for FP32: the shared one


def test_the_depthwise_block_shows_in_int8_depthwise_costs():
    unit = load_profile_file(TEMPLATE).units["cpu"]

    def depthwise_ms(channels: int) -> float:
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, channels, 1), torch.nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        ).eval()
        int8 = _graphs(model, 28)[2]
        rows = CostModel(unit).estimate(read_graph(int8)).layers
        return next(r.ms for r in rows if r.kind == "depthwise")

    per_channel_aligned, per_channel_unaligned = depthwise_ms(96) / 96, depthwise_ms(88) / 88
    assert per_channel_unaligned > 1.5 * per_channel_aligned


def test_a_runtime_that_widens_fp16_weights_runs_an_fp16_layer_as_an_fp32_one(tiny_cnn):
    """The host's LiteRT unit: XNNPACK stores float16 weights but computes in FP32 (``runs_as``)."""
    from evaluators.estimate import graph_for_unit

    unit = load_profile_file(TEMPLATE).units["xnnpack"]
    fp32, fp16, _ = _graphs(tiny_cnn, 32)
    as_fp32, as_fp16 = (CostModel(unit).estimate(graph_for_unit(g, unit)) for g in (fp32, fp16))
    assert as_fp16.latency_ms == pytest.approx(as_fp32.latency_ms, rel=0.02)
    assert {row.precision for row in as_fp16.layers if row.op_type == "Conv"} == {"fp32"}
    plain = unit.model_copy(update={"runs_as": {}})
    assert {row.precision for row in CostModel(plain).estimate(graph_for_unit(fp16, plain)).layers if row.op_type == "Conv"} == {
        "fp16"
    }
