"""The bottom layer: the vocabulary every other package shares, and the one error root.

Registries by name (precisions, objectives, samplers, data kinds) live here, so a
new precision or objective is added in one place and every layer above looks it
up. Nothing here imports ``search``, ``spaces``, ``evaluators`` or
``hw_profiles``; heavy libraries (Optuna) are imported inside functions.
"""

from core.errors import UserError

__all__ = ["UserError"]
