"""`search report`: the HTML page of a real SQLite study, opened in a real headless Chromium."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import optuna
import pytest

from tests.search.test_cli import run_cli

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAYERS = ("stem", "stage1.conv", "stage2.conv", "fc")
STUDY_ATTRS = {
    "model": "small_cnn",
    "data": "digits",
    "input_size": 32,
    "hw": "pixel7:cpu",
    "objectives": ["accuracy", "latency"],
    "profile_version": 3,
    "checkpoint": "runs/baselines/small_cnn-digits.pt",
    "checkpoint_sha256": "ab" * 32,
    "reference_val_top1": 0.99,
    "reference_test_top1": 0.985,
}
# (baseline, accuracy %, latency ms, size bytes, prune ratio, precisions per layer)
TRIALS = [
    ("uncompressed", 99.0, 1.00, 400_000, 0.0, ("fp32", "fp32", "fp32", "fp32")),
    ("all-int8", 98.5, 0.50, 100_000, 0.0, ("int8", "int8", "int8", "int8")),
    ("", 97.0, 0.80, 200_000, 0.5, ("fp16", "int8", "fp16", "fp32")),  # dominated by all-int8
    ("", 96.0, 0.25, 50_000, 0.5, ("int8", "int8", "int8", "int8")),
    ("", 93.0, 0.20, 40_000, 0.625, ("int8", "fp16", "int8", "int8")),
    ("", 90.0, 0.30, 45_000, 0.75, ("int8", "int8", "fp16", "fp32")),  # dominated
    ("", 85.0, 0.15, 30_000, 0.75, ("int8", "int8", "int8", "int8")),
]
FRONT = 5  # uncompressed, all-int8, 96.0, 93.0, 85.0


def _attrs(baseline: str, accuracy: float, latency: float, size: int, ratio: float, precisions: tuple[str, ...]) -> dict:
    plan = {"layers": {name: {"prune_ratio": ratio, "precision": p} for name, p in zip(LAYERS, precisions, strict=True)}}
    attrs = {
        "plan": plan,
        "precisions": dict(zip(LAYERS, precisions, strict=True)),
        "val_top1": accuracy / 100,
        "test_top1": (accuracy - 0.5) / 100,
        "size_bytes": size,
        "macs": 2e6 * (1 - ratio),
        "latency_ms": latency,
        "energy_mj": 2 * latency,
        "host_latency_ms": 3 * latency,
        "seconds": 4.0,
    }
    return attrs | ({"baseline": baseline} if baseline else {})


def _new_study(path: Path, name: str = "s1") -> tuple[str, optuna.Study]:
    url = f"sqlite:///{path}"
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "latency_ms"])
    for key, value in STUDY_ATTRS.items():
        study.set_user_attr(key, value)
    return url, study


def _failed(reason: str) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"fail_reason": reason})


@pytest.fixture()
def storage(tmp_path) -> str:
    url, study = _new_study(tmp_path / "studies.db")
    for row in TRIALS:
        study.add_trial(optuna.trial.create_trial(values=[row[1], row[2]], user_attrs=_attrs(*row)))
    study.add_trial(_failed("RuntimeError: NaN loss <in fine-tune>"))
    return url


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _report(url: str, out: Path, study: str = "s1") -> Path:
    result = run_cli("report", study, "--storage", url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.is_file() and str(out) in result.stdout
    return out


def test_cli_writes_one_self_contained_page_atomically(storage, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("an older report")
    page = _report(storage, out).read_text()
    assert page.startswith("<!DOCTYPE html>") and "plotly.js v" in page
    assert page.count("Plotly.newPlot") == 3
    for text in ("s1", "small_cnn", "pixel7:cpu (profile version 3)", "accuracy (maximize)", "latency_ms (minimize)"):
        assert text in page
    assert "7 complete, 1 fail" in page
    assert "RuntimeError: NaN loss &lt;in fine-tune&gt;" in page  # the table is escaped
    assert "<td>None</td>" not in page  # a missing value is a blank cell
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "studies.db"]  # no temporary file left


def test_reference_point_is_beyond_the_worst_trial(storage):
    from search.analysis.report import reference_point
    from search.study import load_existing_study, open_existing_storage

    study = load_existing_study(open_existing_storage(storage), "s1")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert reference_point(study, complete) == pytest.approx([0.0, 1.1])


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright; skipped where it is missing, except on CI (which installs it)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    if reason is None and not CHROMIUM.is_file():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser test")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser, path: Path):
    """The loaded page and its console errors, uncaught exceptions and requests that left the file (it must open offline)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("request", lambda request: None if request.url.startswith(("file:", "data:")) else errors.append(request.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_timeout(300)  # let plotly finish drawing
    return page, errors


def test_page_draws_front_hypervolume_plans_and_table_in_chromium(storage, tmp_path, browser):
    page, errors = _open(browser, _report(storage, tmp_path / "report.html"))
    try:
        assert page.locator(".js-plotly-plot .main-svg").count() >= 3
        assert page.locator("#front .scatterlayer .point").count() == len(TRIALS)
        assert page.locator("#front .textpoint").count() == 2  # the two baselines are labelled
        traces = page.evaluate("document.getElementById('front').data.map(t => [t.name, t.x.length])")
        assert ["Pareto front", FRONT] in traces and ["baseline", 2] in traces
        assert page.locator("#hypervolume .scatterlayer .point").count() == len(TRIALS)
        assert page.locator("#plans .heatmaplayer text").count() == FRONT * len(LAYERS)
        assert page.locator("table#trials tbody tr").count() == len(TRIALS) + 1
        assert "NaN loss <in fine-tune>" in page.inner_text("table#trials")
        assert page.locator("p.empty").count() == 0
    finally:
        page.close()
    assert errors == []


def _only_failed(path: Path) -> str:
    url, study = _new_study(path)
    for reason in ("RuntimeError: CUDA error", "ValueError: bad plan"):
        study.add_trial(_failed(reason))
    return url


def _all_infeasible(path: Path) -> str:
    url, study = _new_study(path)
    for row in TRIALS[:3]:
        trial = optuna.trial.create_trial(values=[row[1], row[2]], user_attrs=_attrs(*row), constraints={"latency_ms": 1.0})
        study.add_trial(trial)
    return url


def _no_trials(path: Path) -> str:
    return _new_study(path)[0]


@pytest.mark.parametrize(
    "make, plots, messages, rows",
    [(_only_failed, 0, 3, 2), (_all_infeasible, 1, 2, 3), (_no_trials, 0, 4, 0)],
    ids=["only-failed", "empty-front", "no-trials"],
)
def test_page_without_a_front_shows_messages_and_no_errors(tmp_path, browser, make, plots, messages, rows):
    page, errors = _open(browser, _report(make(tmp_path / "studies.db"), tmp_path / "report.html"))
    try:
        assert page.locator(".js-plotly-plot").count() == plots
        assert page.locator("p.empty").count() == messages
        assert page.locator("table#trials tbody tr").count() == rows
    finally:
        page.close()
    assert errors == []


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown-study", "no study 'nope' in this storage; its studies: s1"),
        ("missing-database", "no study database at"),
        ("missing-folder", "does not exist: create it"),
        ("out-is-folder", "is a folder"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(storage, tmp_path, case, message):
    database = tmp_path / "studies.db"
    before = _digest(database)
    study, url, out = "s1", storage, tmp_path / "report.html"
    if case == "unknown-study":
        study = "nope"
    elif case == "missing-database":
        url = f"sqlite:///{tmp_path / 'none.db'}"
    elif case == "missing-folder":
        out = tmp_path / "no" / "such" / "report.html"
    else:
        out = tmp_path / "a-folder"
        out.mkdir()
    result = run_cli("report", study, "--storage", url, "--out", str(out))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (out.is_file() or (out.is_dir() and any(out.iterdir())))
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "no").exists()
    assert _digest(database) == before
    expected = {"studies.db"} | ({"a-folder"} if case == "out-is-folder" else set())
    assert {p.name for p in tmp_path.iterdir()} == expected
