"""`search run --space segmented`: the fixed recipes run as themselves (a per-layer one carries its own layers),
and the sampler then proposes points of the segmented space (one precision per segment: tests/spaces/test_segmented.py)."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from spaces.segmented import GLOBAL_PRUNE, SEGMENT_PREFIX

pytestmark = pytest.mark.slow


def test_a_segmented_search_runs_recipes_then_its_own_points(tmp_path):
    args = ["run", "--hw", "pixel7", "--space", "segmented", "--segments", "3", "--strategy", "prune-uniform-25-int8"]
    args += ["--input-size", "16", "--baseline-epochs", "2", "--finetune-epochs", "1", "--workers", "1"]
    fixed = subprocess.run([sys.executable, "-m", "search.cli", *args, "--run-dir", str(tmp_path)], capture_output=True,
                           text=True, check=False)  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    searched = [sys.executable, "-m", "search.cli", "run", *args[1:7], "--input-size", "16", "--baseline-epochs", "2"]
    searched += ["--finetune-epochs", "1", "--workers", "1", "--trials", "8", "--run-dir", str(tmp_path)]
    done = subprocess.run(searched, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="small_cnn-digits-pixel7-cpu", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 8
    recipe = next(t for t in complete if t.user_attrs.get("baseline") == "prune-uniform-25-int8")
    assert recipe.params[GLOBAL_PRUNE] == 0.25 and set(recipe.user_attrs["precisions"].values()) == {"int8"}
    own = [t for t in complete if not t.user_attrs.get("baseline")]
    assert own and all(GLOBAL_PRUNE in t.params and SEGMENT_PREFIX + "2" in t.params for t in own)
