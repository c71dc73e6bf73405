"""Memory of a graph on a device: the bytes of its weights and its peak activation memory.

The peak is the largest set of activation tensors alive at once when the ops run in the graph's execution order
(the graph input, each op's output from the op that writes it to the last op that reads it, the graph outputs to
the end), each tensor in its producer's precision (an INT8 layer writes INT8 activations). Two kinds of op write
no new tensor: a reshape is a view of its input, and an element-wise op (an activation, an add) writes into an
input of its own size and precision that nothing else reads (an activation fused into the layer before it, as
XNNPACK and the GPU delegates do; an add in place, as onnxruntime's planner does); the tensor they share lives
until its last reader. This is the memory a runtime that frees each tensor after its last reader needs; runtimes
that plan an arena come close to it (``bench/memory.py`` checks it against onnxruntime's measured peak).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evaluators.graph_core import Graph, element_bytes

GRAPH_INPUT = -1
VIEW_KINDS = {"reshape"}  # ops that only relabel their input's shape
IN_PLACE_KINDS = {"activation", "eltwise"}  # element-wise ops: write into an input nothing else reads


@dataclass(frozen=True)
class MemoryEstimate:
    """Weight bytes (each layer in its precision) and the peak activation bytes, with the op it peaks at."""

    weight_bytes: int
    peak_activation_bytes: int
    peak_op: str

    @property
    def total_bytes(self) -> int:
        """Weights and the activation peak: what the model needs resident while it runs."""
        return self.weight_bytes + self.peak_activation_bytes


def estimate_memory(
    graph: Graph, precisions: Sequence[str] | None = None, input_bytes_per_value: float = 4.0, count_input: bool = True
) -> MemoryEstimate:
    """The memory of ``graph`` (see the module docstring): each op's output in ``precisions`` (where a cost model
    placed it; the op's own by default); the graph input holds FP32 values unless told otherwise, and is left out of
    the peak with ``count_input`` False (a buffer the caller owns, not the runtime)."""
    ops = graph.ops
    precisions = precisions or [op.precision for op in ops]
    storage = list(range(len(ops)))  # op -> the op whose tensor holds its output (itself, or an input's)
    for i, op in enumerate(ops):
        if op.kind in VIEW_KINDS and op.inputs:
            storage[i] = storage[op.inputs[0]] if op.inputs[0] >= 0 else GRAPH_INPUT
        elif op.kind in IN_PLACE_KINDS:
            reusable = [
                source
                for source, elems in zip(op.inputs, op.input_sizes, strict=False)
                if source >= 0 and ops[source].readers == 1 and elems == op.output_elems and precisions[source] == precisions[i]
            ]
            if reusable:
                storage[i] = storage[reusable[0]]
    read = (size for op in ops for source, size in zip(op.inputs, op.input_sizes, strict=False) if source < 0)
    size = {GRAPH_INPUT: round(max(read, default=0) * input_bytes_per_value) if count_input else 0}
    for i, op in enumerate(ops):
        if storage[i] == i:
            size[i] = round(op.output_elems * element_bytes(precisions[i]))
    last = {GRAPH_INPUT: -1}
    first = {GRAPH_INPUT: -1}
    for i, op in enumerate(ops):
        first.setdefault(storage[i], i)
        last[storage[i]] = max(last.get(storage[i], i), i)
        for source in op.inputs:
            held = storage[source] if source >= 0 else GRAPH_INPUT
            last[held] = max(last.get(held, i), i)
    for out in graph.output_ops:
        last[storage[out]] = len(ops)
    peak, peak_at = 0, -1
    for i in range(len(ops)):
        live = sum(size[t] for t in size if first[t] <= i <= last[t])
        if live > peak:
            peak, peak_at = live, i
    return MemoryEstimate(graph.size_bytes, peak, ops[peak_at].name if peak_at >= 0 else "")
