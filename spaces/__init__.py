"""Model analysis, search spaces, compression plans and their realisation into ONNX graphs.

Heavy dependencies (torch, Torch-Pruning, NNCF) are imported inside functions.
"""

from spaces.plan import PRECISIONS, CompressionPlan, LayerPlan, PlanError, Recipe

__all__ = ["PRECISIONS", "CompressionPlan", "LayerPlan", "PlanError", "Recipe"]
