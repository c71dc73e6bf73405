"""Creating a study with its attributes, and refusing to resume one that differs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import UserError
from core.metrics import objective

if TYPE_CHECKING:
    import optuna

    from search.study.info import StudyInfo


def check_same_study(study: optuna.Study, info: StudyInfo) -> None:
    """Refuse to resume ``study`` with a different model, data, profile or objectives than ``info``'s."""
    attrs = study.user_attrs
    for key, value in info.identity().items():
        if key in attrs and attrs[key] != value:
            raise UserError(
                f"study '{study.study_name}' was created with {key}={attrs[key]!r}, this run has {value!r}: "
                f"use another --study-name or the same settings"
            )


def create_study(
    storage: optuna.storages.BaseStorage, name: str, sampler: optuna.samplers.BaseSampler, info: StudyInfo
) -> optuna.Study:
    """Create the study with the directions and metric names of ``info.objectives``, and ``info`` as its attributes."""
    import optuna

    study = optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=sampler,
        directions=[objective(o).direction for o in info.objectives],
    )
    study.set_metric_names([objective(o).label for o in info.objectives])
    info.write(study)
    return study
