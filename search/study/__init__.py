"""The study database: storages, trial records, the study's own attributes, objectives, reruns and the front.

Everything here runs on the driver's side (and in inspection commands); nothing imports a worker or the CLI.
"""

from search.study.create import check_same_study, create_study
from search.study.front import dominates, front_records, front_rows, metric_names, non_dominated, pareto_front
from search.study.info import StudyInfo
from search.study.objectives import Budgets, constraint_values, objective_values, parse_objectives, set_constraints
from search.study.records import INTERRUPTED, TrialRecord, mean_prune, records, state_counts, uncompressed
from search.study.reruns import fail_silent_trials, finished_trials, grace_period, queued_recipes, rerun_interrupted, rerun_of
from search.study.storage import (
    check_storage,
    default_storage,
    find_study,
    load_existing_study,
    open_existing_storage,
    open_storage,
    redact,
    swap_study,
)

__all__ = [
    "INTERRUPTED",
    "Budgets",
    "StudyInfo",
    "TrialRecord",
    "check_same_study",
    "check_storage",
    "constraint_values",
    "create_study",
    "default_storage",
    "dominates",
    "fail_silent_trials",
    "find_study",
    "finished_trials",
    "front_records",
    "front_rows",
    "grace_period",
    "load_existing_study",
    "mean_prune",
    "metric_names",
    "non_dominated",
    "objective_values",
    "open_existing_storage",
    "open_storage",
    "pareto_front",
    "parse_objectives",
    "queued_recipes",
    "records",
    "redact",
    "rerun_interrupted",
    "rerun_of",
    "set_constraints",
    "state_counts",
    "swap_study",
    "uncompressed",
]
