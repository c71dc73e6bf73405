"""Export trials of a study: per trial its plan (YAML), its ONNX graph and/or LiteRT .tflite, and a model card.

A folder is built beside its destination and swapped in at the end, so a crash
never leaves a half-written export.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.files import replace_folder
from core.metrics import METRICS
from search.analysis.bands import unit_band
from search.analysis.console import energy_text, slower_than_fp32_line
from search.config import study_folder
from search.study import StudyInfo
from search.study.front import front_records
from search.study.records import TrialRecord, uncompressed

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from evaluators.cost_model import Estimate
    from search.analysis.rescore import Rescored

CARD = "MODEL_CARD.md"
FORMATS = ("onnx", "tflite")


def parse_formats(text: str) -> tuple[str, ...]:
    """``onnx,tflite`` as a tuple of known formats; a UserError naming the known ones otherwise (and the install
    command when ``tflite`` is asked for without the ``[litert]`` extra)."""
    formats = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"unknown --format '{text}': use onnx, tflite or onnx,tflite")
    if "tflite" in formats:
        from spaces.litert import require_litert

        require_litert()
    return formats


def plan_source(study: optuna.Study, trial: TrialRecord) -> dict[str, Any]:
    """What a plan was made for: model, checkpoint and its hash, data, input size, profile and version, study, trial."""
    info = StudyInfo.of(study)
    return {
        "model": info.model or None,
        "checkpoint": info.checkpoint,
        "checkpoint_sha256": info.checkpoint_sha256,
        "data": info.data or None,
        "train_size": info.train_size,
        "input_size": info.input_size,
        "hw": info.hw or None,
        "profile_version": info.profile_version,
        "study": study.study_name,
        "trial": trial.number,
    }


def choose_trials(study: optuna.Study, numbers: list[int] | None) -> list[TrialRecord]:
    """The front (``numbers`` None) or the named trials, each completed and with its graph on this machine."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    chosen = front_records(study) if numbers is None else []
    for number in numbers or []:
        if number not in trials:
            raise UserError(
                f"study '{study.study_name}' has no trial {number} (trials 0 to {len(trials) - 1}): see `search show`"
            )
        trial = TrialRecord.of(trials[number])
        if trial.state != "COMPLETE":
            reason = trial.fail_reason
            raise UserError(f"trial {number} is {trial.state}{f' ({reason})' if reason else ''}: export a completed trial")
        chosen.append(trial)
    if not chosen:
        raise UserError(f"study '{study.study_name}' has no feasible Pareto front yet: export a trial with --trial N")
    for trial in chosen:
        if not Path(trial.onnx).is_file():
            raise UserError(
                f"trial {trial.number}'s graph '{trial.onnx}' is not on this machine "
                f"(it ran on {trial.driver or '?'}): export it there, or rebuild it with `search apply`"
            )
    return chosen


def write_trial(study: optuna.Study, trial: TrialRecord, folder: Path, formats: tuple[str, ...] = ("onnx",)) -> list[str]:
    """``plan.yaml``, the artifacts of ``formats`` (``model.onnx``, ``model.tflite``) and ``MODEL_CARD.md`` of
    ``trial`` in ``folder`` (created); returns the names of the files written."""
    from spaces.plan import CompressionPlan

    folder.mkdir(parents=True)
    source = plan_source(study, trial)
    CompressionPlan.from_dict(trial.plan).to_yaml(folder / "plan.yaml", source=source)
    written = ["plan.yaml"]
    if "onnx" in formats:
        shutil.copyfile(trial.onnx, folder / "model.onnx")
        written.append("model.onnx")
    card = model_card(study, trial, source)
    if "tflite" in formats:
        from search.artifacts.litert import TFLITE, card_section, write_tflite

        card += "\n" + "\n".join(card_section(write_tflite(trial, source, folder)))
        written.append(TFLITE)
    (folder / CARD).write_text(card)
    return [*written, CARD]


def export_trials(
    study: optuna.Study, trials: list[TrialRecord], out_dir: Path, formats: tuple[str, ...] = ("onnx",)
) -> list[tuple[Path, list[str]]]:
    """Write each trial under ``out_dir/trial_NNNNN`` (replacing an earlier export of it); returns each folder and
    the files in it. A trial that fails leaves nothing of itself behind."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out '{out_dir}' is a file: pass a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for trial in trials:
        final = out_dir / f"trial_{trial.number:05d}"
        staging = out_dir / f".{final.name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            files = write_trial(study, trial, staging, formats)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        replace_folder(staging, final)
        written.append((final, files))
    return written


def export_front(study: optuna.Study, out_dir: Path) -> tuple[list[Path], list[int]]:
    """Replace ``out_dir`` with the current front (one folder per member whose graph is on this machine).

    Returns the folders written and the numbers of front trials whose graph is
    on another machine (they ran there).
    """
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    front, elsewhere = [], []
    for member in front_records(study):
        if Path(member.onnx).is_file():
            front.append(member)
        else:
            elsewhere.append(member.number)
    for trial in front:
        write_trial(study, trial, staging / f"trial_{trial.number:05d}")
    if staging.exists():
        replace_folder(staging, out_dir)
    else:
        shutil.rmtree(out_dir, ignore_errors=True)
    return [out_dir / f"trial_{t.number:05d}" for t in front], elsewhere


def _train_size(source: dict[str, Any]) -> str:
    """`` (N training images)`` for a study trained on a ``--train-size`` subset, else nothing."""
    return f" ({source['train_size']} training images, validation carved from them)" if source.get("train_size") else ""


def reproduce_command(source: dict[str, Any]) -> str:
    """The `search apply` command that rebuilds the candidate from its exported plan."""
    args = ["search", "apply", "plan.yaml", "--model", str(source["model"])]
    if source.get("checkpoint"):
        args += ["--checkpoint", str(source["checkpoint"])]
    args += ["--data", str(source["data"])]
    if source.get("train_size"):
        args += ["--train-size", str(source["train_size"])]
    args += ["--input-size", str(source["input_size"]), "--hw", str(source["hw"])]
    return shlex.join([*args, "--out", "rebuilt.onnx"])


def layer_estimate(graph_path: str, hw: str) -> tuple[Estimate, int]:
    """The per-layer estimate of a trial's graph on the profile unit it was searched for, and the profile's version now."""
    import onnx

    from evaluators.estimate import estimate_model
    from hw_profiles import load_profile

    profile, _, unit_name = load_profile(hw)
    return estimate_model(onnx.load(graph_path), profile, unit_name), profile.version


def model_card(study: optuna.Study, trial: TrialRecord, source: dict[str, Any]) -> str:
    """The Markdown model card of a trial: source, data, profile, test metrics, per-layer table, reproduce command."""
    m = trial.metrics
    size = source["input_size"]
    reference = uncompressed(study)
    estimate, version_now = layer_estimate(trial.onnx, source["hw"])
    lines = [
        f"# {source['model']} compressed for {source['hw']}: trial {trial.number} of study '{study.study_name}'",
        "",
        f"- Source model: `{source['model']}`, checkpoint `{source['checkpoint']}` (sha256 `{source['checkpoint_sha256']}`)",
        f"- Data: `{source['data']}`{_train_size(source)} at {size}x{size} px, split seed {trial.recipe['seed']}",
        f"- Hardware profile: `{source['hw']}`, version {source['profile_version']} when searched",
        f"- Precisions: {trial.precision_mix}; recipe: {trial.recipe}",
        "",
        "## Metrics",
        "",
        "Accuracy is the shipped ONNX graph's, in onnxruntime; latency and energy are predicted on the profile; "
        "host latency is measured in onnxruntime on the machine that ran the trial.",
        "",
        "| metric | this model | uncompressed |",
        "|---|---:|---:|",
    ]
    band, energy_band = unit_band(source["hw"]), unit_band(source["hw"], "energy")
    for metric in METRICS:
        key, scale, digits = metric.name, metric.scale, metric.digits
        ref = f"{reference.metrics[key] * scale:.{digits}f}" if reference and key in reference.metrics else ""
        ours = f"{m[key] * scale:.{digits}f}" if key in m else ""
        if not ours and key.startswith("test_"):
            ours = "not scored (held out: never a front candidate; `search run --test-every-trial` scores every trial)"
        if ours and key == "latency_ms" and band is not None:
            ours += " ({}: {:.4f}-{:.4f})".format(band.describe(), *band.around(m[key]))
        if ours and key == "energy_mj":
            ours = energy_text(m[key], energy_band)
        lines.append(f"| {metric.label} | {ours} | {ref} |")
    lines += ["", "## Layers", ""]
    if version_now != source["profile_version"]:
        lines += [
            f"Per-layer times below use the profile as it is now (version {version_now}): "
            f"{estimate.latency_ms:.4f} ms in all, against {m['latency_ms']:.4f} ms with version {source['profile_version']}.",
            "",
        ]
    lines += layer_table(trial.plan["layers"], estimate)
    slower = slower_than_fp32_line(estimate)
    if slower:
        lines += ["", slower.replace("on this unit", f"on {source['hw']}") + "."]
    lines += ["", "## Reproduce", "", "```bash", reproduce_command(source), "```", ""]
    return "\n".join(lines)


def layer_table(layers: dict[str, dict[str, Any]], estimate: Estimate) -> list[str]:
    """Markdown rows: layer, prune ratio, precision, MACs, predicted ms (its input conversion included); then the rest."""
    rows = {row.name: row for row in estimate.layers}
    lines = ["| layer | prune ratio | precision | MACs | predicted ms |", "|---|---:|---|---:|---:|"]
    counted = 0.0
    for name, layer in layers.items():
        row = rows.get(name)
        ms = (row.ms if row else 0.0) + sum(r.ms for r in estimate.layers if r.name == f"{name}/input")
        counted += ms
        macs = f"{row.macs:,}" if row else ""
        lines.append(f"| {name} | {layer['prune_ratio']:.3f} | {layer['precision']} | {macs} | {ms:.4f} |")
    lines.append(f"| other ops (adds, pooling, reshapes, conversions) | | | | {estimate.latency_ms - counted:.4f} |")
    lines.append(f"| **total** | | | {estimate.macs:,} | {estimate.latency_ms:.4f} |")
    return lines


def report_front(study: optuna.Study, hw: str, run_dir: Path, console: Console) -> None:
    """Print ``study``'s front as predicted on ``hw`` and export its members into the study's ``front`` folder."""
    from search.analysis.console import print_front
    from search.study import pareto_front

    print_front(console, study, hw)
    folder = study_folder(run_dir, study.study_name) / "front"
    written, elsewhere = export_front(study, folder)
    if elsewhere:
        console.print(f"front trials {elsewhere} ran on other machines: export them there (`search export --trial N`)")
    if not pareto_front(study):
        console.print(
            "no candidate meets the budgets (--max-accuracy-drop / --latency-budget-ms / --memory-budget-kb); "
            "every trial is kept in the study"
        )
    else:
        console.print(f"front: plan.yaml, model.onnx and MODEL_CARD.md for {len(written)} points in {folder}")


def report_rescored(source: str, done: Rescored, run_dir: Path, console: Console) -> None:
    """What ``search rescore`` made of study ``source``: counts, the trials that cannot run, then the new front."""
    hw = StudyInfo.of(done.study).hw
    console.print(
        f"rescored '{source}' onto {hw} in {done.seconds:.1f} s: {done.rescored} trials re-priced, "
        f"{len(done.cannot_run)} cannot run there; study '{done.study.study_name}'"
    )
    for number, reason in done.cannot_run.items():
        console.print(f"  trial {number}: {reason}")
    if done.untested:
        console.print(f"front members without a test score: {done.untested}")
    report_front(done.study, hw, run_dir, console)
