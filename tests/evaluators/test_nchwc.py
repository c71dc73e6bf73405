"""NCHWc-blocked graphs built by hand, as onnxruntime's NchwcTransformer writes them, for blocks of 8 (AVX2) and 16 (AVX-512).

The executed view must report the model's parameters, MACs and bytes whatever block the
host's onnxruntime uses; the padded work it really runs grows with the block.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from evaluators.graph import read_graph
from evaluators.nchwc import padded_tail
from evaluators.runtime_graph import onnxruntime_graph, read_executed_graph

SIZE = 16
# (name, input channels, output channels, kernel, group); then GlobalAveragePool, Flatten and a 10 -> 5 linear layer.
CONVS = [
    ("conv1", 3, 12, 3, 1),  # the first conv, on RGB: fewer input channels than a block, reads NCHW
    ("conv2", 12, 20, 1, 1),  # 12 inputs: blocked input with a block of 8, NCHW input with 16
    ("dw", 20, 20, 3, 20),  # depthwise on 20 channels, padded to 24 / 32
    ("conv3", 20, 10, 1, 1),  # 10 outputs, padded to 16 with either block
]
CLASSES = 5


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    found = {}
    for name, cin, cout, k, group in CONVS:
        found[f"{name}.weight"] = rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
        found[f"{name}.bias"] = rng.standard_normal(cout).astype(np.float32)
    found["fc.weight"] = rng.standard_normal((CLASSES, CONVS[-1][2])).astype(np.float32)
    found["fc.bias"] = rng.standard_normal(CLASSES).astype(np.float32)
    return found


def _conv_attrs(k: int, group: int) -> dict:
    return {"kernel_shape": [k, k], "pads": [k // 2] * 4, "strides": [1, 1], "dilations": [1, 1], "group": group}


def _model(nodes: list, initializers: dict[str, np.ndarray], nchwc: bool = False):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    opsets = [helper.make_opsetid("", 17)]
    if nchwc:
        opsets += [helper.make_opsetid("com.microsoft.nchwc", 1), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _head(source: str) -> list:
    return [
        helper.make_node("GlobalAveragePool", [source], ["pooled"], name="/GlobalAveragePool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="/Flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]


def unblocked_model(weights: dict[str, np.ndarray]):
    """The model as exported: Conv, Relu, Conv, depthwise Conv, Conv, GlobalAveragePool, Flatten, Gemm."""
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", **_conv_attrs(3, 1)),
        helper.make_node("Relu", ["c1"], ["r1"], name="/Relu"),
    ]
    source = "r1"
    for name, _, _, k, group in CONVS[1:]:
        nodes.append(
            helper.make_node("Conv", [source, f"{name}.weight", f"{name}.bias"], [name], name=name, **_conv_attrs(k, group))
        )
        source = name
    return _model([*nodes, *_head(source)], weights)


def reorder_filter(weight: np.ndarray, block: int, blocked_input: bool) -> np.ndarray:
    """MLAS's filter reorder: OIHW to OIHWBiBo (blocked input) or OIHWBo, zero-padded, with the padded dims."""
    cout, cin, kh, kw = weight.shape
    pout, pin = _round_up(cout, block), _round_up(cin, block) if blocked_input else cin
    padded = np.zeros((pout, pin, kh * kw), np.float32)
    padded[:cout, :cin] = weight.reshape(cout, cin, kh * kw)
    if blocked_input:  # [O/B][I/B][kH*kW][Bi][Bo]
        data = padded.reshape(pout // block, block, pin // block, block, kh * kw).transpose(0, 2, 4, 3, 1)
    else:  # [O/B][I][kH*kW][Bo]
        data = padded.reshape(pout // block, block, pin, kh * kw).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(data).reshape(pout, pin, kh, kw)


def blocked_model(weights: dict[str, np.ndarray], block: int):
    """The model as onnxruntime's NchwcTransformer writes it for NCHWc blocks of ``block`` channels."""
    inits: dict[str, np.ndarray] = {"fc.weight": weights["fc.weight"], "fc.bias": weights["fc.bias"]}
    nodes = []
    source, blocked, channels = "input", False, 3
    for name, cin, cout, k, group in CONVS:
        weight, bias = weights[f"{name}.weight"], weights[f"{name}.bias"]
        depthwise = group > 1
        reads_blocked = depthwise or cin >= block
        if reads_blocked and not blocked:
            nodes.append(
                helper.make_node("ReorderInput", [source], [f"{source}_b"], domain="com.microsoft.nchwc", channels_last=0)
            )
            source = f"{source}_b"
        elif blocked and not reads_blocked:
            nodes.append(
                helper.make_node(
                    "ReorderOutput",
                    [source],
                    [f"{source}_nchw"],
                    domain="com.microsoft.nchwc",
                    channels=channels,
                    channels_last=0,
                )
            )
            source = f"{source}_nchw"
        inits[f"{name}.w_nchwc"] = reorder_filter(weight, block, reads_blocked and not depthwise)
        inits[f"{name}.b_nchwc"] = np.concatenate([bias, np.zeros(_round_up(cout, block) - cout, np.float32)])
        attrs = _conv_attrs(k, _round_up(group, block) if depthwise else group)
        if name == "conv1":
            attrs["activation"] = "Relu"  # the Relu fused in
        output = "r1" if name == "conv1" else name
        nodes.append(
            helper.make_node(
                "Conv",
                [source, f"{name}.w_nchwc", f"{name}.b_nchwc"],
                [f"{output}_b"],
                name=f"{output}_nchwc",
                domain="com.microsoft.nchwc",
                **attrs,
            )
        )
        source, blocked, channels = f"{output}_b", True, cout
    nodes.append(
        helper.make_node("ReorderOutput", [source], ["conv3"], domain="com.microsoft.nchwc", channels=channels, channels_last=0)
    )
    return _model([*nodes, *_head("conv3")], inits, nchwc=True)


def _blocked_convs(graph) -> list:
    return [op for op in graph.ops if op.name.endswith("_nchwc")]


@pytest.mark.parametrize("block", [8, 16])
def test_executed_view_of_a_blocked_graph_counts_the_models_channels(block):
    weights = _weights()
    device = read_graph(unblocked_model(weights))
    executed = read_executed_graph(blocked_model(weights, block))
    assert (executed.params, executed.macs, executed.size_bytes) == (device.params, device.macs, device.size_bytes)
    expected = sum(w.size for w in weights.values())
    assert device.params == expected
    real = sorted(op.macs for op in device.ops if op.op_type == "Conv")
    assert sorted(op.macs for op in _blocked_convs(executed)) == real
    assert [op.op_type for op in executed.ops].count("ReorderOutput") == (1 if block == 8 else 2)
    assert executed.work_macs > executed.macs  # the kernels run the padded channels too


def test_padded_work_grows_with_the_block():
    weights = _weights()
    work = {block: read_executed_graph(blocked_model(weights, block)).work_macs for block in (8, 16)}
    pixels = SIZE * SIZE
    # conv1 3x3x3 -> 16; conv2 16 -> 24 (block 8) or 12 -> 32 (16); dw 24 or 32 x 9; conv3 24 or 32 -> 16
    assert work[8] == pixels * (16 * 27 + 24 * 16 + 24 * 9 + 16 * 24) + CLASSES * 10
    assert work[16] == pixels * (16 * 27 + 32 * 12 + 32 * 9 + 16 * 32) + CLASSES * 10
    assert work[16] > work[8] > read_graph(unblocked_model(weights)).macs


@pytest.mark.parametrize("block", [8, 16])
def test_trailing_padding_is_found_only_at_the_true_block(block):
    rng = np.random.default_rng(1)
    for cout, cin in [(12, 3), (20, 12), (20, 20), (10, 20), (24, 24), (16, 32)]:
        weight = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
        for blocked_input in (False, True):
            filt = reorder_filter(weight, block, blocked_input)
            bias = np.concatenate([rng.standard_normal(cout), np.zeros(filt.shape[0] - cout)])
            assert padded_tail(filt, bias) == filt.shape[0] - cout
            assert padded_tail(filt, None) == filt.shape[0] - cout


def _host_block() -> int | None:
    """The NCHWc block onnxruntime uses on this machine (None without NCHWc kernels): a 3 -> 1 conv is padded to one block."""
    probe = _model(
        [helper.make_node("Conv", ["input", "w"], ["y"], name="c", **_conv_attrs(1, 1))],
        {"w": np.ones((1, 3, 1, 1), np.float32)},
    )
    probe.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, SIZE, SIZE]))
    optimized = onnxruntime_graph(probe)
    conv = [n for n in optimized.graph.node if n.domain == "com.microsoft.nchwc" and n.op_type == "Conv"]
    if not conv:
        return None
    weight = next(i for i in optimized.graph.initializer if i.name == conv[0].input[1])
    return int(weight.dims[0])


def _signature(model) -> list[tuple]:
    """Each node's type, domain, attributes that count and constant inputs (values), names left out."""
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    keep = ("group", "activation", "channels", "channels_last", "kernel_shape", "strides", "pads")
    found = []
    for node in model.graph.node:
        attrs = tuple(sorted((a.name, str(helper.get_attribute_value(a))) for a in node.attribute if a.name in keep))
        constants = tuple((values[i].shape, values[i].tobytes()) for i in node.input if i in values)
        found.append((node.op_type, node.domain, attrs, constants))
    return found


def test_hand_built_blocks_are_what_onnxruntime_writes_on_this_host():
    block = _host_block()
    if block is None:
        pytest.skip("onnxruntime has no NCHWc kernels on this CPU")
    weights = _weights()
    optimized = onnxruntime_graph(unblocked_model(weights))
    assert _signature(optimized) == _signature(blocked_model(weights, block))
    executed = read_executed_graph(optimized)
    device = read_graph(unblocked_model(weights))
    assert (executed.params, executed.macs, executed.size_bytes) == (device.params, device.macs, device.size_bytes)
    assert math.isclose(executed.work_macs, read_executed_graph(blocked_model(weights, block)).work_macs)
