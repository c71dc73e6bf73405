"""Peak activation memory: the largest set of tensors alive at once, in execution order."""

from __future__ import annotations

import onnx

from evaluators.graph import read_graph
from evaluators.graph_core import Graph, Op
from evaluators.memory import estimate_memory
from spaces.onnx_export import export_onnx


def _branchy(precision: str = "fp32") -> Graph:
    """input (50) -> conv a (200) -> relu b (in place) -> conv c (50) -> add d (b + c, 50): the output."""
    a = Op("a", "Conv", "conv", precision, output_elems=200, inputs=[-1], input_sizes=[50], readers=1, weight_bytes=100)
    b = Op("b", "Relu", "activation", precision, output_elems=200, inputs=[0], input_sizes=[200], readers=2)
    c = Op("c", "Conv", "conv", precision, output_elems=50, inputs=[1], input_sizes=[200], readers=1, weight_bytes=40)
    d = Op("d", "Add", "eltwise", precision, output_elems=50, inputs=[2, 1], input_sizes=[50, 200])
    return Graph([a, b, c, d], output_ops=[3])


def test_the_peak_is_the_largest_live_set_with_element_wise_ops_in_place():
    memory = estimate_memory(_branchy())
    # at a: input 200 + a 800; at c: a's tensor (b ran in it; d still reads it) 800 + c 200 = 1000; d adds into c
    assert (memory.peak_activation_bytes, memory.peak_op) == (1000, "a")
    assert memory.weight_bytes == 140 and memory.total_bytes == 1140
    assert estimate_memory(_branchy(), count_input=False).peak_op == "c"


def test_int8_activations_take_a_quarter_of_the_bytes():
    memory = estimate_memory(_branchy("int8"), count_input=False)
    assert memory.peak_activation_bytes == 250  # (200 + 50) one byte each


def test_an_activation_whose_input_is_read_elsewhere_writes_its_own_tensor():
    graph = _branchy()
    graph.ops[0].readers = 2  # a is read by b and by c: b cannot overwrite it
    graph.ops[2].inputs = [0]
    memory = estimate_memory(graph)
    assert (memory.peak_activation_bytes, memory.peak_op) == (800 + 800 + 200, "c")  # a, b and c alive at c


def test_an_exported_cnn_peaks_where_its_widest_tensors_meet(tiny_cnn):
    graph = read_graph(onnx.load_from_string(export_onnx(tiny_cnn, 16).SerializeToString()))
    memory = estimate_memory(graph, count_input=False)
    widest = max(op.output_elems for op in graph.ops) * 4
    assert 2 * widest <= memory.peak_activation_bytes <= 3 * widest  # a residual block: its input, then two convs
    assert memory.weight_bytes == graph.size_bytes
