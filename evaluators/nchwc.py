"""onnxruntime's NCHWc-blocked convolutions, read back to the model's own channel counts.

On x86 CPUs, onnxruntime's NchwcTransformer (``onnxruntime/core/optimizer/nchwc_transformer.cc``)
rewrites FP32 convolutions into the domain ``com.microsoft.nchwc`` with channels in blocks of B
(``MlasNchwcGetBlockSize()``: 8 with AVX2, 16 with AVX-512; the graph never names B):

- a blocked ``Conv`` is named after its output tensor plus ``_nchwc``; its output channels are
  padded up to a multiple of B: the weight's first dimension and the bias (zeros) grow;
- a conv with fewer than B input channels (the first conv on an RGB image) reads the NCHW tensor
  and keeps its input channels (filter layout OIHWBo); other convs read blocked input and their
  filter's input channels are padded too (layout OIHWBiBo, ``mlas/lib/reorder.cpp``);
- a depthwise conv's ``group`` becomes the padded channel count; a grouped conv is blocked only
  when its groups are block-aligned; a BatchNormalization on blocked input becomes a 1x1
  depthwise conv named after its output plus ``_bn_nchwc``;
- ``ReorderInput`` (NCHW -> blocked) and ``ReorderOutput`` (blocked -> NCHW, attribute ``channels``:
  the real count) sit where a blocked region meets the rest; pools, element-wise ops and
  concatenations of block-aligned tensors stay blocked between them; an Add may be fused into
  the conv as a fourth input.

In both filter layouts the B output channels of a block are the innermost dimension and the
padded ones are zero. The model's channel count of every blocked tensor is read from the graph:
exactly where the graph states it (a ReorderInput's NCHW input, a ReorderOutput's ``channels``,
carried through channel-preserving ops and depthwise convs), else from the padded conv that
writes it (its trailing zero output channels, bias included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from evaluators.graph_core import Shape, attribute

if TYPE_CHECKING:
    import numpy as np
    import onnx

NCHWC_DOMAIN = "com.microsoft.nchwc"
SAME_CHANNELS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Upsample"}
LARGEST_BLOCK = 64  # no vector ISA has wider float blocks


def is_blocked(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is one of onnxruntime's NCHWc ops (reorders included)."""
    return node.domain == NCHWC_DOMAIN


def from_batch_norm(node: onnx.NodeProto) -> bool:
    """Whether a blocked conv is a BatchNormalization onnxruntime rewrote as a 1x1 depthwise conv (named ``..._bn_nchwc``)."""
    return is_blocked(node) and node.op_type == "Conv" and "_bn_nchwc" in node.name


def reordered_channels(nodes: Iterable[onnx.NodeProto], dims: Mapping[str, Shape]) -> dict[str, int]:
    """Channels (padded) of each ReorderInput output a blocked conv reads: its filter's input channels x group."""
    written_by_reorder = {n.output[0] for n in nodes if is_blocked(n) and n.op_type == "ReorderInput"}
    found: dict[str, int] = {}
    for node in nodes:
        if is_blocked(node) and node.op_type == "Conv" and node.input[0] in written_by_reorder:
            found.setdefault(node.input[0], int(dims[node.input[1]][1]) * int(attribute(node, "group", 1)))
    return found


def padded_tail(weight: np.ndarray, bias: np.ndarray | None) -> int:
    """How many trailing output channels of a blocked filter are padding: zero in the last block, bias too.

    The block size is not in the graph, so each power of two that divides the padded count is tried;
    only the true one finds the zero channels at the end of every row of the last block (a smaller
    one finds fewer or reads only zero rows of padded input channels, a larger one reads real blocks
    and finds none).
    """
    import numpy as np

    padded = weight.shape[0]
    flat = weight.reshape(-1)
    found = 0
    block = 2
    while block <= min(padded, LARGEST_BLOCK) and padded % block == 0:
        tail = flat[flat.size - flat.size // (padded // block) :].reshape(-1, block)
        used = np.flatnonzero(tail.any(axis=0))  # columns of the block with a nonzero weight
        if used.size:  # an all-zero tail is padded input channels of a smaller block: it tells nothing
            found = max(found, block - 1 - int(used[-1]))
        block *= 2
    if bias is not None:
        nonzero = np.flatnonzero(bias)
        found = min(found, padded - 1 - int(nonzero[-1]) if nonzero.size else padded)
    return found


class BlockedChannels:
    """The model's channel count of every blocked tensor of an onnxruntime-optimized graph.

    Args:
        nodes: The graph's nodes, in order.
        shapes: Shapes of the graph's tensors (NCHW ones with their real channels).
        dims: Shapes of its constant tensors.
        array: Loads a constant tensor's values (only padded filters without a stated count are read).
    """

    def __init__(
        self,
        nodes: list[onnx.NodeProto],
        shapes: Mapping[str, Shape],
        dims: Mapping[str, Shape],
        array: Callable[[str], np.ndarray],
    ) -> None:
        self.parent: dict[str, str] = {}
        self.real: dict[str, int] = {}  # class root -> channels
        blocked: set[str] = set()
        stated: dict[str, int] = {}
        writers: dict[str, onnx.NodeProto] = {}  # tensor -> padded conv that sets its channels
        concats: list[tuple[str, list[str]]] = []
        for node in nodes:
            if is_blocked(node):
                if node.op_type == "ReorderOutput":
                    stated[node.input[0]] = int(attribute(node, "channels", 0))
                    continue
                out = node.output[0]
                blocked.add(out)
                if node.op_type == "ReorderInput":
                    stated[out] = int(shapes[node.input[0]][3 if attribute(node, "channels_last", 0) else 1])
                elif node.op_type in SAME_CHANNELS:
                    self._union(out, node.input[0])
                elif node.op_type == "Conv":
                    if _depthwise(node, dims[node.input[1]]):
                        self._union(out, node.input[0])
                    elif len(node.input) > 3 and node.input[3]:  # an Add fused in: same channels as the addend
                        self._union(out, node.input[3])
                    else:
                        writers[out] = node
                continue
            inputs = [t for t in node.input if t in blocked]
            if inputs and node.output:
                blocked.add(node.output[0])
                if node.op_type == "Concat":
                    concats.append((node.output[0], inputs))
                for t in inputs if node.op_type != "Concat" else ():
                    self._union(node.output[0], t)
        self.blocked = blocked
        for tensor, count in stated.items():
            self.real.setdefault(self._find(tensor), count)
        for tensor, conv in writers.items():
            if self._find(tensor) not in self.real:
                bias = array(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
                weight = array(conv.input[1])
                self.real[self._find(tensor)] = weight.shape[0] - padded_tail(weight, bias)
        for out, inputs in concats:
            self.real.setdefault(self._find(out), sum(self.channels(t, shapes) for t in inputs))

    def channels(self, tensor: str, shapes: Mapping[str, Shape]) -> int:
        """The model's channels of ``tensor`` (an NCHW tensor's are its shape's)."""
        if tensor in self.blocked:
            found = self.real.get(self._find(tensor))
            if found is not None:
                return found
        return int(shapes[tensor][1])

    def conv(self, node: onnx.NodeProto, weight_dims: Shape, shapes: Mapping[str, Shape]) -> tuple[int, int]:
        """(input channels per group, output channels) of a blocked conv as the model has them."""
        out = self.channels(node.output[0], shapes)
        if _depthwise(node, weight_dims):
            return 1, out
        if int(attribute(node, "group", 1)) > 1:  # blocked only when block-aligned: nothing padded
            return int(weight_dims[1]), out
        read = node.input[0]
        return (self.channels(read, shapes) if read in self.blocked else int(weight_dims[1])), out

    def _find(self, tensor: str) -> str:
        while tensor in self.parent:
            tensor = self.parent[tensor]
        return tensor

    def _union(self, a: str, b: str) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self.parent[ra] = rb


def _depthwise(node: onnx.NodeProto, weight_dims: Shape) -> bool:
    group = int(attribute(node, "group", 1))
    return group > 1 and weight_dims[1] == 1 and weight_dims[0] == group
