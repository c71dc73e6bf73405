"""The vocabulary lives in one place: registering a precision or an objective is all it takes to see it offered."""

from __future__ import annotations

import pytest
import yaml

from core.errors import UserError
from core.metrics import OBJECTIVES, Objective
from core.precisions import PRECISIONS, Precision, Realisation, by_precision
from core.samplers import SAMPLERS, make_sampler


@pytest.fixture()
def int4_weights():
    """A toy precision, registered only for the test: INT4 weight-only (half a byte per weight)."""
    entry = PRECISIONS.register(Precision("int4w", 0.5, 4, 4, Realisation.NONE, description="toy: INT4 weight-only"))
    yield entry
    PRECISIONS.unregister(entry.name)


@pytest.fixture()
def arena():
    """A toy objective, registered only for the test."""
    entry = OBJECTIVES.register(Objective("arena", "minimize", "arena_kb", 1.0, "arena_kb", "KB", "toy"))
    yield entry
    OBJECTIVES.unregister(entry.name)


def test_a_registered_precision_is_offered_by_the_space(int4_weights, tiny_cnn):
    import torch

    from spaces.analysis import analyse
    from spaces.space import SearchSpace

    space = SearchSpace.build(analyse(tiny_cnn, torch.zeros(1, 3, 16, 16)), ["int4w", "fp32", "int8"], set())
    assert set(space.precisions.values()) == {("fp32", "int4w")}  # INT8 only where NNCF quantizes: nowhere here
    assert space.reference_precision == "fp32"
    assert by_precision(["int4w", "int8", "fp32", "fp16"]) == ["fp32", "fp16", "int8", "int4w"]
    assert int4_weights.stored_bytes(1000, 10) == 540


def test_a_registered_precision_is_listed_by_the_cli_and_profiles(int4_weights, tmp_path, capsys):
    from hw_profiles import PROFILE_DIR
    from search.cli import main

    with pytest.raises(SystemExit):
        main(["estimate", "--help"])
    assert "int4w" in capsys.readouterr().out
    data = yaml.safe_load((PROFILE_DIR / "pixel7.yaml").read_text())
    cpu = data["units"]["cpu"]
    cpu["precisions"].append("int4w")
    for table in (cpu["gmacs"], cpu["vector_gops"], cpu["energy"]["pj_per_mac"]):
        table["int4w"] = table["int8"]
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(data))
    assert main(["hw", "show", str(tmp_path / "toy.yaml")]) == 0
    assert "int4w" in capsys.readouterr().out


def test_a_profile_naming_an_unregistered_precision_is_refused(tmp_path, capsys):
    from hw_profiles import PROFILE_DIR
    from search.cli import main

    data = yaml.safe_load((PROFILE_DIR / "pixel7.yaml").read_text())
    data["units"]["cpu"]["precisions"].append("int4w")
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(data))
    assert main(["hw", "show", str(tmp_path / "toy.yaml")]) == 2
    assert "unknown precision 'int4w'" in capsys.readouterr().err


def test_a_registered_objective_is_offered_by_run_and_scored(arena, capsys):
    from search.cli import main
    from search.study import objective_values, parse_objectives

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "arena (minimize, toy)" in capsys.readouterr().out
    assert parse_objectives("accuracy,arena") == ["accuracy", "arena"]
    assert objective_values(["accuracy", "arena"], {"val_top1": 0.9, "arena_kb": 12.0}) == [90.0, 12.0]


def test_unknown_names_name_the_closest():
    with pytest.raises(UserError, match="unknown objective 'latncy': did you mean latency"):
        OBJECTIVES.get("latncy")
    with pytest.raises(UserError, match="unknown sampler 'nsga': did you mean nsga2"):
        SAMPLERS.get("nsga")
    with pytest.raises(ValueError, match="registered already"):
        PRECISIONS.register(PRECISIONS.get("int8"))


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_builds_a_seeded_multi_objective_sampler(name):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(name, 0, 8))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=12)
    assert len(study.best_trials) >= 1


def test_log_cost_sampler_shows_the_sampler_log_costs_and_leaves_the_study_as_measured():
    import math

    import optuna

    from core.log_costs import LogCostSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seen: list[list[float]] = []

    class Recording(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):
            seen[:] = [list(t.values) for t in study._get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
            return super().sample_independent(study, trial, name, distribution)

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=LogCostSampler(Recording(seed=0)))
    study.enqueue_trial({"x": 0.5})
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 4.0), n_trials=2)
    assert seen == [[0.5, math.log(4.0)]]  # the sampler read log(4 ms)...
    assert [t.values for t in study.trials] == [[0.5, 4.0], [study.trials[1].params["x"], 4.0]]  # ...the study keeps 4
    assert not isinstance(make_sampler("gp", 0, 8, "linear"), LogCostSampler)


@pytest.mark.parametrize("name", ["gp", "nsga2", "tpe", "random"])
def test_the_samplers_that_read_distances_read_costs_through_the_log_view(name, monkeypatch):
    import optuna

    from core.log_costs import LogCostSampler, _LogView

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    viewed: list[float] = []
    view = _LogView._view
    monkeypatch.setattr(_LogView, "_view", lambda self, trial: viewed.append(1) or view(self, trial))
    sampler = make_sampler(name, 0, 4)
    assert isinstance(sampler, LogCostSampler) == SAMPLERS.get(name).scaled == (name in ("gp", "nsga2"))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0 + t.suggest_float("y", 0, 1)), n_trials=6)
    assert bool(viewed) == (name in ("gp", "nsga2"))  # the real sampler read the trials through the view
    assert all(t.values[1] >= 1.0 for t in study.trials)  # the study keeps the costs as measured
