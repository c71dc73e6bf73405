"""`search run`: validate inputs, prepare the uncompressed model and the space, run the study, report the front."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from search.config import RunConfig, claim_folder, folder_owner, study_folder
from search.driver.inputs import Inputs, check_same_weights, find_existing_study, resolve_inputs
from search.driver.prepare import Prepared, prepare
from search.driver.setup import OpenStudy, open_study

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from search.driver.loop import TrialLoop
    from spaces.plan import Recipe


def trial_loop(inputs: Inputs, prepared: Prepared, opened: OpenStudy) -> TrialLoop:
    """The loop that runs the study's trials as Ray tasks, each job built from the run's inputs."""
    from dataclasses import replace

    from search.driver.cluster import usable_cpus
    from search.driver.fidelity import Fidelity
    from search.driver.loop import TrialLoop
    from search.study import Budgets
    from search.worker import ModelSpec, TrialJob

    config = inputs.config
    model_spec = ModelSpec(config.model, prepared.splits.num_classes, inputs.data.input_size)

    def make_job(plan: dict, test: bool) -> TrialJob:
        job = TrialJob(plan, model_spec, inputs.data, inputs.profile, inputs.unit_name, test=test)
        return replace(job, litert_host=inputs.litert_host, device=inputs.device)

    budgets = Budgets(prepared.reference["val_top1"], config.max_accuracy_drop, config.latency_budget_ms, config.memory_budget_kb)
    return TrialLoop(
        opened.study,
        prepared.space,
        make_job,
        prepared.weights.model.state_dict(),
        inputs.objectives,
        budgets,
        study_folder(inputs.run_dir, inputs.study_name) / "trials",
        config.workers or usable_cpus(),
        opened.heartbeat_s,
        config.test_every_trial,
        config.trial_timeout or trial_time_limit(prepared.space.recipe),
        task_memory_mb=config.task_memory_mb,
        gpus_per_task=1.0 if inputs.device == "cuda" else 0.0,
        fidelity=Fidelity(config.cheap_steps) if config.cheap_steps else None,
    )


def trial_time_limit(recipe: Recipe) -> float:
    """Seconds a trial's task may run before it is cancelled and failed (``--trial-timeout`` unset): ten minutes,
    and five more per recovery fine-tune epoch, or two seconds per fine-tune step; a trial of the default study
    takes seconds."""
    if recipe.finetune_steps:
        return 600.0 + 2.0 * recipe.finetune_steps
    return 600.0 + 300.0 * recipe.finetune_epochs


def run_trials(inputs: Inputs, prepared: Prepared, opened: OpenStudy, console: Console) -> None:
    """Run trials as Ray tasks until the study has its target of finished ones, with a progress bar."""
    from optuna.trial import TrialState
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search.driver.cluster import ray_session

    study, target = opened.study, opened.target
    loop = trial_loop(inputs, prepared, opened)
    if loop.finished() >= target:
        return
    columns = (
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("front {task.fields[front]}"),
        TimeElapsedColumn(),
    )
    with ray_session(loop.workers, inputs.config.ray_address), Progress(*columns, console=console) as progress:
        task = progress.add_task("search", total=target, failed=0, front=0)

        def update() -> None:
            failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
            finished, front = loop.finished(), len(study.best_trials)
            progress.update(task, completed=finished, failed=failed, front=front)
            if not console.is_terminal:  # a log file gets one line per finished trial instead of a live bar
                console.print(f"trials {finished}/{target} failed {failed} front {front}")

        update()
        loop.run(target, update)


def report_other_devices(inputs: Inputs, study: optuna.Study, console: Console) -> None:
    """The study's trials re-priced on each further ``--hw`` device (``search rescore``): one front per device."""
    from search.analysis.rescore import rescore
    from search.artifacts.export import report_rescored
    from search.study import open_storage

    storage = open_storage(inputs.storage_url)
    for spec in inputs.more_hw:
        report_rescored(study.study_name, rescore(study, storage, spec, replace=True), inputs.run_dir, console)


def run_search(config: RunConfig, console: Console) -> int:
    """Run (or resume) a study as configured, print and export its front (one per ``--hw`` device); returns the
    exit code."""
    from search.artifacts.export import report_front
    from search.study import redact

    started = time.time()
    inputs = resolve_inputs(config)
    existing = find_existing_study(inputs)
    if existing is not None and config.checkpoint:  # before minutes of preparation
        from search.models import file_sha256

        check_same_weights(existing, file_sha256(Path(config.checkpoint)))
    prepared = prepare(inputs, console)
    opened = open_study(inputs, prepared, existing, console)
    claim_folder(study_folder(inputs.run_dir, inputs.study_name), folder_owner(redact(inputs.storage_url), inputs.study_name))
    console.print(f"study '{inputs.study_name}' in {redact(inputs.storage_url)}")
    run_trials(inputs, prepared, opened, console)
    report_front(opened.study, inputs.hw, inputs.run_dir, console)
    report_other_devices(inputs, opened.study, console)
    if config.keep_graphs == "front":
        dropped = drop_graphs(opened.study, study_folder(inputs.run_dir, inputs.study_name) / "trials")
        console.print(f"--keep-graphs front: deleted {dropped} graphs of trials off the front")
    console.print(f"done in {time.time() - started:.0f} s; inspect with: {inspect_command(inputs)}")
    return 0


def drop_graphs(study: optuna.Study, folder: Path) -> int:
    """Delete the ONNX graphs in ``folder`` of trials neither on the front nor fixed recipes; returns how many."""
    from search.study import front_records, records

    keep = {r.number for r in front_records(study)} | {r.number for r in records(study) if r.strategy}
    dropped = 0
    for record in records(study, ("COMPLETE",)):
        path = Path(record.onnx)
        if record.number not in keep and path.parent == folder.resolve() and path.is_file():
            path.unlink()
            dropped += 1
    return dropped


def inspect_command(inputs: Inputs) -> str:
    """The `optuna best-trials` command line of the run's study, shell-quoted, its storage password hidden."""
    import shlex

    from search.study import redact

    return shlex.join(["optuna", "best-trials", "--study-name", inputs.study_name, "--storage", redact(inputs.storage_url)])
