"""Model analysis, search spaces, compression plans and their realisation into ONNX graphs.

Heavy dependencies (torch, Torch-Pruning, NNCF) are imported inside functions.
"""

from spaces.plan import CompressionPlan, LayerPlan, PlanError, Recipe

__all__ = ["CompressionPlan", "LayerPlan", "PlanError", "Recipe"]
