"""`search run`: validate inputs, prepare the baseline and the space, run the study, report the front."""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search.errors import UserError
from spaces.plan import Recipe

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class RunConfig:
    """Every option of `search run`."""

    hw: str = "pixel7"
    model: str = "small_cnn"
    checkpoint: str | None = None
    pretrained: bool = False
    data: str = "digits"
    input_size: int | None = None
    trials: int = 24
    workers: int | None = None
    ray_address: str | None = None
    storage: str | None = None
    study_name: str | None = None
    run_dir: str = "runs"
    objectives: str = "accuracy,latency"
    sampler: str = "nsga2"
    population: int | None = None
    seed: int = 0
    max_accuracy_drop: float | None = None
    latency_budget_ms: float | None = None
    finetune_epochs: int = Recipe.finetune_epochs
    finetune_lr: float = Recipe.finetune_lr
    distill: bool = False
    baseline_epochs: int = 10
    max_prune: float = 0.75
    prune_step: float = 0.125
    calibration_size: int = Recipe.calibration_size
    round_to: int = Recipe.round_to


def safe_name(name: str) -> str:
    """``name`` usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def check_numbers(config: RunConfig) -> None:
    """Reject option values that cannot work, before anything runs."""
    if config.trials < 1:
        raise UserError("--trials must be at least 1")
    if config.workers is not None and config.workers < 1:
        raise UserError("--workers must be at least 1")
    if not 0 < config.prune_step <= config.max_prune < 1:
        raise UserError("need 0 < --prune-step <= --max-prune < 1")
    if config.input_size is not None and config.input_size < 8:
        raise UserError("--input-size must be at least 8")


def run_search(config: RunConfig, console: Console) -> int:
    """Run (or resume) a study as configured; returns the process exit code."""
    from hw_profiles import load_profile
    from search.data import parse_data
    from search.models import check_model_name
    from search.study import check_storage, default_storage, parse_objectives

    started = time.time()
    check_numbers(config)
    profile, unit, unit_name = load_profile(config.hw)
    hw = f"{profile.name}:{unit_name}"
    objectives = parse_objectives(config.objectives)
    check_model_name(config.model)
    data = parse_data(config.data, config.input_size, config.seed)
    if config.checkpoint and not Path(config.checkpoint).is_file():
        raise UserError(f"checkpoint '{config.checkpoint}' not found: pass the path of a saved state_dict")
    run_dir = Path(config.run_dir)
    storage_url = config.storage or default_storage(run_dir)
    if config.storage:
        check_storage(storage_url)
    elif run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir '{run_dir}' is a file: pass a folder")
    study_name = config.study_name or f"{config.model}-{data.kind}-{profile.name}-{unit_name}"
    identity = {"model": config.model, "data": data.label, "input_size": data.input_size, "hw": hw, "objectives": objectives}
    existing = _existing_study(storage_url, study_name, identity) if config.storage or run_dir.is_dir() else None

    from search.baseline import prepare_baseline
    from search.data import load_splits
    from search.models import load_checkpoint

    splits = load_splits(data)
    if config.checkpoint:  # fail on a checkpoint that does not fit before anything is written
        from search.models import build_model

        load_checkpoint(build_model(config.model, splits.num_classes), config.checkpoint)
    run_dir.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    baseline = prepare_baseline(config.model, splits, data, run_dir / "baselines", config.baseline_epochs,
                                config.checkpoint, config.pretrained, log=console.print)
    space, reference = _space_and_reference(config, baseline.model, splits, data.input_size, unit)
    console.print(
        f"space: {len(space.analysis.groups)} prune groups, {len(space.analysis.layers)} layers "
        f"({', '.join(unit.precisions)}); uncompressed FP32 ONNX: val {100 * reference['val_top1']:.2f}%, "
        f"test {100 * reference['test_top1']:.2f}%"
    )
    setup_details = {
        "checkpoint": baseline.source, "checkpoint_sha256": baseline.sha256, "num_classes": splits.num_classes,
        "profile_version": profile.version, "space_signature": space.signature(),
        "recipe": asdict(space.recipe), "reference_val_top1": reference["val_top1"],
        "reference_test_top1": reference["test_top1"], "sampler": config.sampler,
    }
    if existing is not None and existing.user_attrs.get("space_signature") not in (None, space.signature()):
        raise UserError(f"study '{study_name}' searched another space (different layers or choices): use another --study-name")
    return _search(config, console, storage_url, study_name, identity, setup_details, space, unit, hw, data,
                   splits.num_classes, baseline.model, objectives, reference, run_dir, started)


def _existing_study(storage_url: str, study_name: str, identity: dict):  # noqa: ANN202 (optuna type)
    """The existing study of that name, checked to be the same kind of study; None if there is none."""
    from search.study import check_same_study, find_study, open_storage

    if storage_url.startswith("sqlite:///") and not Path(storage_url[len("sqlite:///"):]).is_file():
        return None
    study = find_study(open_storage(storage_url), study_name)
    if study is not None:
        check_same_study(study, identity)
    return study


def _space_and_reference(config: RunConfig, model, splits, input_size: int, unit):  # noqa: ANN001, ANN202
    """The search space (INT8 only where NNCF quantizes) and the uncompressed model's ONNX accuracy."""
    import torch

    from evaluators.onnx_runtime import evaluate, session
    from spaces.analysis import analyse
    from spaces.apply import quantizable_layers
    from spaces.onnx_export import export_onnx
    from spaces.plan import Recipe
    from spaces.space import SearchSpace

    analysis = analyse(model, torch.zeros(1, 3, input_size, input_size))
    int8 = quantizable_layers(model, splits.train, input_size) if "int8" in unit.precisions else set()
    recipe = Recipe(finetune_epochs=config.finetune_epochs, finetune_lr=config.finetune_lr, distill=config.distill,
                    calibration_size=config.calibration_size, round_to=config.round_to, seed=config.seed)
    space = SearchSpace.build(analysis, list(unit.precisions), int8, config.max_prune, config.prune_step, recipe)
    sess = session(export_onnx(model, input_size).SerializeToString(), threads=os.cpu_count() or 1)
    reference = {"val_top1": evaluate(sess, splits.val)["top1"], "test_top1": evaluate(sess, splits.test)["top1"]}
    return space, reference


def _search(config, console, storage_url, study_name, identity, details, space, unit, hw, data, num_classes,  # noqa: ANN001, PLR0913
            model, objectives, reference, run_dir, started) -> int:
    """Create or resume the study, run the trials on Ray, print and export the front."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search.execution import Budgets, TrialLoop, start_ray
    from search.report import export_front, print_front
    from search.study import StudySetup, create_study, find_study, make_sampler, open_storage, pareto_front
    from search.trial import ModelSpec, TrialJob

    workers = config.workers or os.cpu_count() or 1
    population = config.population or max(8, min(50, config.trials // 3))
    sampler = make_sampler(config.sampler, config.seed, population)
    storage = open_storage(storage_url)
    study = find_study(storage, study_name)
    if study is None:
        study = create_study(storage, study_name, objectives, sampler, StudySetup(identity, details))
        for name, plan in space.baselines().items():
            study.enqueue_trial(space.params(plan), user_attrs={"baseline": name})
    else:
        import optuna

        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    console.print(f"study '{study_name}' in {storage_url}")
    model_spec = ModelSpec(config.model, num_classes, data.input_size)

    def make_job(plan: dict) -> TrialJob:
        return TrialJob(plan=plan, model=model_spec, data=data, unit=unit)

    artifacts = run_dir / safe_name(study_name)
    loop = TrialLoop(study, space, make_job, model.state_dict(), objectives,
                     Budgets(reference["val_top1"], config.max_accuracy_drop, config.latency_budget_ms),
                     artifacts / "trials", workers)
    already = loop.finished()
    if already < config.trials:
        started_ray = start_ray(workers, config.ray_address)
        columns = (TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TextColumn("failed {task.fields[failed]}"),
                   TextColumn("front {task.fields[front]}"), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("search", total=config.trials, completed=already, failed=0, front=0)

            def update() -> None:
                from optuna.trial import TrialState

                failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
                progress.update(task, completed=loop.finished(), failed=failed, front=len(study.best_trials))

            update()
            loop.run(config.trials, update)
        if started_ray:
            import ray

            ray.shutdown()
    rows = print_front(console, study, hw)
    source = {"model": config.model, "checkpoint": details["checkpoint"], "data": data.label, "hw": hw}
    written = export_front(study, artifacts / "front", source) if rows else []
    if not pareto_front(study):
        console.print("no candidate meets the budgets (--max-accuracy-drop / --latency-budget-ms); every trial is kept in the study")
    elif written:
        console.print(f"front: plan.yaml + model.onnx for {len(written)} points in {artifacts / 'front'}")
    console.print(f"done in {time.time() - started:.0f} s; inspect with: optuna best-trials --study-name {study_name} --storage {storage_url}")
    return 0
