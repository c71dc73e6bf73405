"""A resumed study says when its sampler reads the costs on another scale than before, and records the new one."""

from __future__ import annotations

import optuna
from rich.console import Console

from core.samplers import read_scale
from search.driver.setup import note_cost_scale
from search.study import StudyInfo


def test_a_study_resumed_on_another_cost_scale_says_so_and_records_it(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'studies.db'}", study_name="s", directions=["maximize", "minimize"]
    )
    console = Console(record=True, width=200)
    note_cost_scale(study, "s", "log", console)  # no record: a study made before the log scale read them as stored
    assert "linear scale, the next ones on a log scale" in console.export_text()
    assert StudyInfo.of(study).cost_scale == "log"
    note_cost_scale(study, "s", "log", console)
    assert console.export_text() == ""  # the same scale again: nothing to say


def test_only_the_samplers_that_read_distances_take_the_log_scale():
    assert [read_scale(name, "log") for name in ("gp", "nsga2", "tpe", "random")] == ["log", "log", "linear", "linear"]
    assert read_scale("gp", "linear") == "linear"
