"""Facts about ONNX operators that both the compression steps (``spaces``) and the graph readers (``evaluators``) rely on."""

from __future__ import annotations

# Ops that pass a tensor on unchanged in value, or only mark its precision (quantize/dequantize, casts).
TRANSPARENT = frozenset({"QuantizeLinear", "DequantizeLinear", "Cast", "Identity", "Dropout"})
# Ops that move or select values without arithmetic: a quantized (INT8) input stays quantized through them.
MOVES_VALUES = frozenset(
    {
        *("Reshape", "Flatten", "Squeeze", "Unsqueeze"),
        *("Concat", "Split", "Slice", "Pad", "Transpose", "Tile", "Expand", "Gather", "DepthToSpace", "SpaceToDepth"),
        *("MaxPool", "GlobalMaxPool"),
    }
)
