"""optuna-dashboard's own server code reads a study as `search run` writes it (SQLite, two objectives, nested user attrs).

The app is built the way ``optuna-dashboard sqlite:///...`` builds it (``get_storage`` from the URL, then
``create_app``) and its JSON API is called in-process through WSGI: no port, no browser.
"""

from __future__ import annotations

import csv
import io
import json
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from optuna.trial import TrialState

from search.study import INTERRUPTED, Budgets, objective_values, rerun_interrupted, set_constraints
from spaces.plan import CompressionPlan, LayerPlan, Recipe
from spaces.space import PRECISION_PREFIX, PRUNE_PREFIX
from tests.search.test_report import FRONT, LAYERS, STUDY_ATTRS, TRIALS, _attrs, _failed, _new_study

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (pip install -e '.[test]')")

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

NAN_LOSS = "RuntimeError: NaN loss <in fine-tune>"  # the failed trial test_report adds
RERUN_PARAMS = {"stem": (0.25, "int8"), "stage1.conv": (0.25, "int8"), "stage2.conv": (0.375, "fp16"), "fc": (0.0, "fp32")}
RERUN_METRICS = {"val_top1": 0.975, "latency_ms": 0.4, "energy_mj": 0.8, "size_bytes": 90_000}  # on the front


def _suggest(trial: optuna.Trial) -> CompressionPlan:
    """What ``SearchSpace.suggest`` asks of a trial (prefixed parameter names), without a model to analyse."""
    layers = {}
    for layer in LAYERS:
        ratio = trial.suggest_float(PRUNE_PREFIX + layer, 0.0, 0.75, step=0.125)
        precision = trial.suggest_categorical(PRECISION_PREFIX + layer, ["fp32", "fp16", "int8"])
        layers[layer] = LayerPlan(prune_ratio=ratio, precision=precision)
    return CompressionPlan(layers=layers, recipe=Recipe(finetune_epochs=2, distill=True))


@pytest.fixture(scope="module")
def study_url(tmp_path_factory) -> str:
    """test_report's study, from its helpers as its ``storage`` fixture builds it (once per module: the requests only
    read it), plus a trial interrupted (its driver stopped) and its rerun, recorded as ``search.driver.loop`` does."""
    storage, study = _new_study(tmp_path_factory.mktemp("dashboard") / "studies.db")
    for row in TRIALS:
        study.add_trial(optuna.trial.create_trial(values=[row[1], row[2]], user_attrs=_attrs(*row)))
    study.add_trial(_failed(NAN_LOSS))

    params: dict[str, float | str] = {PRUNE_PREFIX + layer: ratio for layer, (ratio, _) in RERUN_PARAMS.items()}
    params |= {PRECISION_PREFIX + layer: precision for layer, (_, precision) in RERUN_PARAMS.items()}
    study.enqueue_trial(params)  # as a baseline is; the sampler's own choices would do as well
    trial = study.ask()
    trial.set_user_attr("plan", _suggest(trial).to_dict())
    trial.set_user_attr("driver", "node-a pid 4242")
    trial.set_user_attr("fail_reason", INTERRUPTED)
    rerun_interrupted(study, study.tell(trial, state=TrialState.FAIL))

    rerun = study.ask()  # the WAITING rerun, with the interrupted trial's parameters
    plan = _suggest(rerun)
    rerun.set_user_attr("plan", plan.to_dict())
    rerun.set_user_attr("driver", "node-b pid 777")
    rerun.set_user_attr("precisions", {name: layer.precision for name, layer in plan.layers.items()})
    for key, value in RERUN_METRICS.items():
        rerun.set_user_attr(key, value)
    set_constraints(rerun, RERUN_METRICS, Budgets(reference_top1=0.99, max_accuracy_drop=3.0, latency_budget_ms=1.0))
    frozen = study.tell(rerun, objective_values(["accuracy", "latency"], RERUN_METRICS))
    assert frozen.system_attrs["failed_trial"] == trial.number and frozen.system_attrs["retry_history"] == [trial.number]
    return storage


@pytest.fixture(scope="module")
def app(study_url: str):
    """The WSGI app ``optuna-dashboard <url>`` serves (optuna_dashboard._cli.main, without a config file or artifacts)."""
    from optuna_dashboard._app import create_app
    from optuna_dashboard._storage_url import get_storage

    dashboard_storage = get_storage(study_url, storage_class=None)
    assert isinstance(dashboard_storage, optuna.storages.RDBStorage)
    yield create_app(dashboard_storage, artifact_store=None, llm_provider=None, debug=False, allow_unsafe=False)
    dashboard_storage.engine.dispose()


def _get(app, path: str, query: str = "") -> tuple[str, dict[str, str], bytes]:
    """A GET request straight into the WSGI app: status line, headers, body."""
    environ: dict = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query}
    setup_testing_defaults(environ)
    started: dict = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=dict(headers))

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return started["status"], started["headers"], body


def _json(app, path: str, query: str = "") -> dict:
    status, headers, body = _get(app, path, query)
    assert status == "200 OK", (status, body[:500])  # a view that raised is a 500 with {"reason": ...}
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(body)


def _served(attrs: list[dict]) -> dict[str, str]:
    """The dashboard's ``[{"key", "value"}]`` attributes as a dict (values are strings: JSON for lists and dicts)."""
    return {a["key"]: a["value"] for a in attrs}


def _study_id(app) -> int:
    (study,) = _json(app, "/api/studies")["study_summaries"]
    return study["study_id"]


def test_study_is_listed_with_directions_and_user_attrs(app):
    (study,) = _json(app, "/api/studies")["study_summaries"]
    assert study["study_name"] == "s1"
    assert study["directions"] == ["maximize", "minimize"]
    assert study["is_preferential"] is False
    attrs = _served(study["user_attrs"])
    assert attrs.keys() == STUDY_ATTRS.keys()
    assert attrs["model"] == "small_cnn" and attrs["hw"] == "pixel7:cpu"
    assert json.loads(attrs["objectives"]) == ["accuracy", "latency"]
    assert attrs["profile_version"] == "3" and float(attrs["reference_val_top1"]) == 0.99


def test_detail_serves_metric_names_trials_front_and_attrs(app, study_url):
    detail = _json(app, f"/api/studies/{_study_id(app)}")
    assert detail["name"] == "s1" and detail["directions"] == ["maximize", "minimize"]
    assert detail["objective_names"] == ["accuracy", "latency_ms"]

    trials = {t["number"]: t for t in detail["trials"]}
    n = len(TRIALS)  # 0..n-1 complete, n failed, n+1 interrupted, n+2 its rerun
    assert sorted(trials) == list(range(n + 3))
    assert [trials[i]["state"] for i in range(n + 3)] == ["Complete"] * n + ["Fail", "Fail", "Complete"]
    for number, row in enumerate(TRIALS):
        assert trials[number]["values"] == [row[1], row[2]]
    assert "values" not in trials[n] and "values" not in trials[n + 1]

    # the front: the dashboard's own Pareto computation agrees with Optuna's (the rerun is on it, the failures are not)
    study = optuna.load_study(study_name="s1", storage=study_url)
    front = sorted(t["number"] for t in detail["best_trials"])
    assert front == sorted(t.number for t in study.best_trials)
    assert len(front) == FRONT + 1 and n + 2 in front and n not in front and n + 1 not in front

    failed = _served(trials[n]["user_attrs"])
    assert failed == {"fail_reason": NAN_LOSS}  # served as is: the frontend escapes
    assert _served(trials[n + 1]["user_attrs"])["fail_reason"] == INTERRUPTED

    first = _served(trials[0]["user_attrs"])
    assert json.loads(first["plan"]) == study.trials[0].user_attrs["plan"]  # nested dicts come through as JSON
    assert json.loads(first["precisions"]) == dict.fromkeys(LAYERS, "fp32")
    assert first["baseline"] == "uncompressed" and float(first["val_top1"]) == 0.99 and int(first["size_bytes"]) == 400_000

    rerun = trials[n + 2]
    attrs = _served(rerun["user_attrs"])
    plan = json.loads(attrs["plan"])
    assert plan["recipe"]["distill"] is True and plan["layers"]["stage2.conv"] == {"prune_ratio": 0.375, "precision": "fp16"}
    assert "fail_reason" not in attrs and attrs["driver"] == "node-b pid 777"
    assert rerun["values"] == pytest.approx([97.5, 0.4])
    params = {p["name"]: p["param_external_value"] for p in rerun["params"]}
    expected = {PRUNE_PREFIX + layer: str(ratio) for layer, (ratio, _) in RERUN_PARAMS.items()}
    assert params == expected | {PRECISION_PREFIX + layer: precision for layer, (_, precision) in RERUN_PARAMS.items()}

    columns = {a["key"]: a["sortable"] for a in detail["union_user_attrs"]}
    assert columns["val_top1"] is True and columns["latency_ms"] is True
    assert columns["plan"] is False and columns["precisions"] is False and columns["fail_reason"] is False
    assert {s["name"] for s in detail["union_search_space"]} == set(params)


def test_detail_after_serves_only_newer_trials(app):
    """The frontend polls with ``?after=<count it has>``; the front stays whole."""
    detail = _json(app, f"/api/studies/{_study_id(app)}", f"after={len(TRIALS) + 1}")
    assert [t["number"] for t in detail["trials"]] == [len(TRIALS) + 1, len(TRIALS) + 2]
    assert len(detail["best_trials"]) == FRONT + 1


def test_csv_export_names_the_metrics(app):
    status, headers, body = _get(app, f"/csv/{_study_id(app)}")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/csv")
    header, *rows = list(csv.reader(io.StringIO(body.decode())))
    assert header[:4] == ["Number", "State", "accuracy", "latency_ms"]
    assert len(rows) == len(TRIALS) + 3
    assert [r[1] for r in rows].count("FAIL") == 2
    fail_reason = header.index("UserAttribute fail_reason")
    assert rows[len(TRIALS)][fail_reason] == NAN_LOSS
