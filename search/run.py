"""`search run`: validate inputs, prepare the baseline and the space, run the study, report the front."""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError, check_at_least
from search.records import DATA_SPEC, records
from spaces.plan import Recipe

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from hw_profiles.schema import Profile, Unit
    from search.baseline import Baseline
    from search.data import DataSpec, Splits
    from spaces.plan import CompressionPlan
    from spaces.space import SearchSpace


@dataclass
class RunConfig:
    """Every option of `search run`.

    ``strategies`` are fixed recipes (``spaces.strategies``) enqueued besides the default ones; with ``search``
    False only they run (and the uncompressed reference), no searched trial. ``warm_start`` (one of
    ``WARM_STARTS``) picks the fixed recipes a search starts from.
    """

    hw: str = "pixel7"
    model: str = "small_cnn"
    checkpoint: str | None = None
    pretrained: bool = False
    data: str = "digits"
    train_size: int | None = None
    input_size: int | None = None
    trials: int = 24
    workers: int | None = None
    ray_address: str | None = None
    heartbeat: int = 10
    storage: str | None = None
    study_name: str | None = None
    run_dir: str = "runs"
    objectives: str = "accuracy,latency"
    sampler: str = "gp"  # the best hypervolume per trial on the default problem (docs/benchmarks.md)
    population: int | None = None
    seed: int = 0
    sampler_seed: int | None = None
    max_accuracy_drop: float | None = None
    latency_budget_ms: float | None = None
    memory_budget_kb: float | None = None
    finetune_epochs: int = Recipe.finetune_epochs
    finetune_lr: float = Recipe.finetune_lr
    distill: bool = False
    recovery: str = "ptq"
    baseline_epochs: int = 10
    max_prune: float = 0.75
    prune_step: float = 0.125
    calibration_size: int = Recipe.calibration_size
    round_to: int = Recipe.round_to
    strategies: tuple[str, ...] = ()
    search: bool = True
    warm_start: str = "default"
    test_every_trial: bool = False
    litert_host: bool = False


# The fixed recipes a search enqueues first: the defaults (spaces.strategies.default_strategies), or every one the
# unit runs (seed-hybrid's sensitivity pass included): on both benchmark problems the fixed recipes alone held a
# front with more hypervolume than 200 (100) random trials (docs/benchmarks.md).
WARM_STARTS = ("default", "all")


def safe_name(name: str) -> str:
    """``name`` usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def check_one_device(config: RunConfig, command: str) -> None:
    """Refuse a comma list of devices where ``command`` takes one."""
    if "," in config.hw:
        raise UserError(f"{command} takes one --hw device (got '{config.hw}'): run it per device, or use `search rescore`")


def check_numbers(config: RunConfig) -> None:
    """Reject option values that cannot work, before anything runs."""
    check_at_least("--trials", config.trials, 1)
    check_at_least("--workers", config.workers, 1)
    if not 0 < config.prune_step <= config.max_prune < 1:
        raise UserError("need 0 < --prune-step <= --max-prune < 1")
    check_at_least("--input-size", config.input_size, 8)
    check_at_least("--heartbeat", config.heartbeat, 1, "second")
    if config.warm_start not in WARM_STARTS:
        raise UserError(f"--warm-start '{config.warm_start}' is not one of {', '.join(WARM_STARTS)}")


@dataclass
class Inputs:
    """Validated inputs of a run; resolving them writes nothing."""

    config: RunConfig
    profile: Profile
    unit: Unit
    unit_name: str
    hw: str
    objectives: list[str]
    data: DataSpec
    run_dir: Path
    storage_url: str
    study_name: str
    more_hw: tuple[str, ...] = ()

    @property
    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with this run."""
        return {
            "model": self.config.model,
            "data": self.data.label,
            "train_size": self.data.train_size,
            "input_size": self.data.input_size,
            "hw": self.hw,
            "objectives": self.objectives,
        }


@dataclass
class Prepared:
    """The uncompressed model, its data, its search space and its accuracy as an FP32 ONNX graph."""

    baseline: Baseline
    splits: Splits
    space: SearchSpace
    reference: dict[str, float]


def resolve_inputs(config: RunConfig) -> Inputs:
    """Check every user input (profile, objectives, model, data, checkpoint, storage); raise UserError on the first problem."""
    from core.samplers import SAMPLERS
    from hw_profiles import load_profile
    from search.data import parse_data
    from search.models import check_model_name
    from search.study import check_storage, default_storage, parse_objectives
    from spaces.litert import require_litert
    from spaces.strategies import STRATEGIES

    check_numbers(config)
    SAMPLERS.get(config.sampler)
    for name in config.strategies:
        STRATEGIES.get(name)
    first, *more = [spec.strip() for spec in config.hw.split(",")]
    profile, unit, unit_name = load_profile(first)
    if unit.host_runtime == "litert":  # a LiteRT unit of this machine: every candidate is also timed in LiteRT
        config = replace(config, litert_host=True)
    if config.litert_host:
        require_litert()
    for spec in more:  # each further device checked now; kept as given (a YAML path works too)
        load_profile(spec)
    objectives = parse_objectives(config.objectives)
    check_model_name(config.model)
    data = parse_data(config.data, config.input_size, config.seed, config.train_size)
    if config.checkpoint and not Path(config.checkpoint).is_file():
        raise UserError(f"checkpoint '{config.checkpoint}' not found: pass the path of a saved state_dict")
    run_dir = Path(config.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir '{run_dir}' is a file: pass a folder")
    if config.storage:
        check_storage(config.storage)
    study_name = config.study_name or f"{config.model}-{data.kind}-{profile.name}-{unit_name}"
    return Inputs(
        config,
        profile,
        unit,
        unit_name,
        f"{profile.name}:{unit_name}",
        objectives,
        data,
        run_dir,
        config.storage or default_storage(run_dir),
        study_name,
        tuple(more),
    )


def find_existing_study(inputs: Inputs) -> optuna.Study | None:
    """The study this run would resume, checked to be the same kind of study; None if there is none yet."""
    from search.study import check_same_study, find_study, open_storage

    url = inputs.storage_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        return None  # opening it would create the database before the inputs are known to be good
    study = find_study(open_storage(url), inputs.study_name)
    if study is not None:
        check_same_study(study, inputs.identity)
    return study


def check_same_weights(study: optuna.Study, sha256: str) -> None:
    """Refuse to add trials of other uncompressed weights to ``study``."""
    recorded = study.user_attrs.get("checkpoint_sha256")
    if recorded and recorded != sha256:
        raise UserError(
            f"study '{study.study_name}' compresses other weights (checkpoint sha256 {recorded[:12]}..., this run "
            f"{sha256[:12]}...): pass --checkpoint {study.user_attrs.get('checkpoint')} (a copy of it on this machine)"
        )


def prepare(inputs: Inputs, console: Console) -> Prepared:
    """Load or train the baseline, analyse the model into a space, measure its FP32 ONNX accuracy."""
    import torch

    from core.precisions import precision
    from evaluators.onnx_runtime import evaluate, session
    from search.baseline import prepare_baseline
    from search.data import load_splits
    from search.models import build_model, load_checkpoint
    from spaces.analysis import analyse
    from spaces.apply import quantizable_layers
    from spaces.onnx_export import export_onnx
    from spaces.plan import Recipe
    from spaces.space import SearchSpace

    config, data = inputs.config, inputs.data
    splits = load_splits(data)
    if config.checkpoint:  # a checkpoint that does not fit fails before anything is written
        load_checkpoint(build_model(config.model, splits.num_classes), config.checkpoint)
    inputs.run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    baseline = prepare_baseline(
        config.model,
        splits,
        data,
        inputs.run_dir / "baselines",
        config.baseline_epochs,
        config.checkpoint,
        config.pretrained,
        log=console.print,
    )
    model, size = baseline.model, data.input_size
    probe = any(precision(p).per_layer_support for p in inputs.unit.precisions)
    quantizable = quantizable_layers(model, splits.train, size) if probe else set()
    recipe = Recipe(
        finetune_epochs=config.finetune_epochs,
        finetune_lr=config.finetune_lr,
        distill=config.distill,
        recovery=config.recovery,
        calibration_size=config.calibration_size,
        round_to=config.round_to,
        seed=config.seed,
    )
    space = SearchSpace.build(
        analyse(model, torch.zeros(1, 3, size, size)),
        list(inputs.unit.precisions),
        quantizable,
        config.max_prune,
        config.prune_step,
        recipe,
    )
    sess = session(export_onnx(model, size).SerializeToString(), threads=os.cpu_count() or 1)
    reference = {"val_top1": evaluate(sess, splits.val)["top1"], "test_top1": evaluate(sess, splits.test)["top1"]}
    chance = 1 / splits.num_classes
    if reference["val_top1"] <= 1.5 * chance:
        console.print(
            f"warning: the uncompressed model is at chance level (val {100 * reference['val_top1']:.2f}%, chance "
            f"{100 * chance:.0f}%): every comparison below is noise; train it longer or pass a --checkpoint"
        )
    console.print(
        f"space: {len(space.analysis.groups)} prune groups, {len(space.analysis.layers)} layers "
        f"({', '.join(inputs.unit.precisions)}); uncompressed FP32 ONNX: val {100 * reference['val_top1']:.2f}%, "
        f"test {100 * reference['test_top1']:.2f}%"
    )
    return Prepared(baseline, splits, space, reference)


def open_study(inputs: Inputs, prepared: Prepared, existing: optuna.Study | None, console: Console) -> optuna.Study:
    """Resume ``existing`` (same space required) or create the study; enqueue every named fixed recipe it lacks."""
    import optuna

    from core.samplers import make_sampler
    from search.study import StudySetup, create_study, finished_trials, open_storage, queued_recipes

    config, space = inputs.config, prepared.space
    population = config.population or max(8, min(50, config.trials // 3))
    sampler = make_sampler(config.sampler, config.seed if config.sampler_seed is None else config.sampler_seed, population)
    if existing is not None:  # one heartbeat per study: every driver must judge abandoned trials alike
        config.heartbeat = existing.user_attrs.get("heartbeat_s", config.heartbeat)
    storage = open_storage(inputs.storage_url, config.heartbeat)
    if existing is not None:
        if existing.user_attrs.get("space_signature") != space.signature():
            raise UserError(
                f"study '{inputs.study_name}' searched another space (different layers or choices): use another --study-name"
            )
        check_same_weights(existing, prepared.baseline.sha256)
        if DATA_SPEC not in existing.user_attrs:  # a study made before test scoring was held out: rescore needs it
            existing.set_user_attr(DATA_SPEC, asdict(inputs.data))
    present = recipes_in(existing) if existing is not None else set()
    plans = strategy_plans_for(inputs, prepared, present, console)  # before the study exists: nothing half-made if it fails
    if existing is not None:
        study = optuna.load_study(study_name=inputs.study_name, storage=storage, sampler=sampler)
    else:
        details = {
            "checkpoint": prepared.baseline.source,
            "checkpoint_sha256": prepared.baseline.sha256,
            "num_classes": prepared.splits.num_classes,
            "profile_version": inputs.profile.version,
            "space_signature": space.signature(),
            "heartbeat_s": config.heartbeat,
            "recipe": asdict(space.recipe),
            "sampler": config.sampler,
            "reference_val_top1": prepared.reference["val_top1"],
            "reference_test_top1": prepared.reference["test_top1"],
            DATA_SPEC: asdict(inputs.data),
        }
        try:
            study = create_study(storage, inputs.study_name, inputs.objectives, sampler, StudySetup(inputs.identity, details))
        except optuna.exceptions.DuplicatedStudyError:
            raise UserError(
                f"study '{inputs.study_name}' was created by another driver while this one prepared: "
                "start this one again to join it"
            ) from None
    enqueue_recipes(study, space, plans)
    if not config.search:  # only the fixed recipes run: stop once none is left waiting
        config.trials = finished_trials(study) + queued_recipes(study)
    return study


def strategy_names(config: RunConfig, space: SearchSpace) -> list[str]:
    """The fixed recipes a study runs: the uncompressed reference, the warm start when searching (the defaults, or
    every strategy with ``--warm-start all``), then the chosen ones."""
    from spaces.strategies import STRATEGIES, default_strategies

    if not config.search:
        names = ["uncompressed"]
    elif config.warm_start == "all":
        names = ["uncompressed", *STRATEGIES.names()]
    else:
        names = default_strategies(space)
    return list(dict.fromkeys([*names, *config.strategies]))


def recipes_in(study: optuna.Study) -> set[str]:
    """Names of the fixed recipes ``study`` has a trial of (older names read as today's)."""
    from search.records import LEGACY_NAMES

    return {LEGACY_NAMES.get(r.baseline, r.baseline) for r in records(study) if r.baseline}


def strategy_plans_for(inputs: Inputs, prepared: Prepared, present: set[str], console: Console) -> dict[str, CompressionPlan]:
    """The plan of every fixed recipe the study runs and does not have yet (``present``), measuring or reading the
    per-layer sensitivity if one of them needs it.

    Raises:
        UserError: a recipe chosen with ``--strategy`` cannot run on this unit.
    """
    from spaces.strategies import STRATEGIES, strategy_plans

    names = [name for name in strategy_names(inputs.config, prepared.space) if name not in present]
    sensitivity = None
    if any(STRATEGIES.get(name).needs_sensitivity for name in names):
        from search.sensitivity import int8_sensitivity

        sensitivity = int8_sensitivity(inputs, prepared, console)
    plans = strategy_plans(prepared.space, names, sensitivity)
    skipped = [name for name in names if name not in plans]
    if skipped and not inputs.config.search:
        raise UserError(f"{', '.join(skipped)} cannot run on {inputs.hw} (a precision it lacks, or beyond --max-prune)")
    if skipped:
        console.print(f"not on {inputs.hw} (a precision it lacks, or beyond --max-prune): {', '.join(skipped)}")
    return plans


def enqueue_recipes(study: optuna.Study, space: SearchSpace, plans: dict[str, CompressionPlan]) -> None:
    """Enqueue each fixed recipe's plan, with the recipe changes it needs (another quantizer) as a trial attribute."""
    from search.records import baseline_attrs

    base = asdict(space.recipe)
    for name, plan in plans.items():
        changes = {key: value for key, value in asdict(plan.recipe).items() if base[key] != value}
        study.enqueue_trial(space.params(plan), user_attrs=baseline_attrs(name, changes))


def run_trials(inputs: Inputs, prepared: Prepared, study: optuna.Study, console: Console) -> None:
    """Run trials as Ray tasks until the study has ``--trials`` finished ones, with a progress bar."""
    from optuna.trial import TrialState
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search.execution import TrialLoop, start_ray
    from search.study import Budgets
    from search.trial import ModelSpec, TrialJob

    config = inputs.config
    workers = config.workers or os.cpu_count() or 1
    model_spec = ModelSpec(config.model, prepared.splits.num_classes, inputs.data.input_size)

    def make_job(plan: dict, test: bool) -> TrialJob:
        job = TrialJob(plan, model_spec, inputs.data, inputs.profile, inputs.unit_name, test=test)
        return replace(job, litert_host=config.litert_host)

    budgets = Budgets(prepared.reference["val_top1"], config.max_accuracy_drop, config.latency_budget_ms, config.memory_budget_kb)
    loop = TrialLoop(
        study,
        prepared.space,
        make_job,
        prepared.baseline.model.state_dict(),
        inputs.objectives,
        budgets,
        inputs.run_dir / safe_name(inputs.study_name) / "trials",
        workers,
        config.heartbeat,
        config.test_every_trial,
    )
    if loop.finished() >= config.trials:
        return
    started_ray = start_ray(workers, config.ray_address)
    columns = (
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("front {task.fields[front]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("search", total=config.trials, failed=0, front=0)

            def update() -> None:
                failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
                finished, front = loop.finished(), len(study.best_trials)
                progress.update(task, completed=finished, failed=failed, front=front)
                if not console.is_terminal:  # a log file gets one line per finished trial instead of a live bar
                    console.print(f"trials {finished}/{config.trials} failed {failed} front {front}")

            update()
            loop.run(config.trials, update)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def report_front(study: optuna.Study, hw: str, run_dir: Path, console: Console) -> None:
    """Print ``study``'s front as predicted on ``hw`` and export its members into the study's ``front`` folder."""
    from search.console import print_front
    from search.export import export_front
    from search.study import pareto_front

    print_front(console, study, hw)
    folder = run_dir / safe_name(study.study_name) / "front"
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


def report_other_devices(inputs: Inputs, study: optuna.Study, console: Console) -> None:
    """The study's trials re-priced on each further ``--hw`` device (``search rescore``): one front per device."""
    from search.rescore import rescore
    from search.study import open_storage

    storage = open_storage(inputs.storage_url)
    for spec in inputs.more_hw:
        done = rescore(study, storage, spec, replace=True)
        hw = done.study.user_attrs["hw"]
        console.print(
            f"rescored onto {hw} in {done.seconds:.1f} s: {done.rescored} trials re-priced, "
            f"{len(done.cannot_run)} cannot run there (study '{done.study.study_name}')"
        )
        if done.untested:
            console.print(f"front members without a test score: {done.untested}")
        report_front(done.study, hw, inputs.run_dir, console)


def run_search(config: RunConfig, console: Console) -> int:
    """Run (or resume) a study as configured, print and export its front (one per ``--hw`` device); returns the
    exit code."""

    started = time.time()
    inputs = resolve_inputs(config)
    existing = find_existing_study(inputs)
    if existing is not None and config.checkpoint:  # before minutes of preparation
        from search.baseline import file_sha256

        check_same_weights(existing, file_sha256(Path(config.checkpoint)))
    prepared = prepare(inputs, console)
    study = open_study(inputs, prepared, existing, console)
    console.print(f"study '{inputs.study_name}' in {inputs.storage_url}")
    run_trials(inputs, prepared, study, console)
    report_front(study, inputs.hw, inputs.run_dir, console)
    report_other_devices(inputs, study, console)
    console.print(
        f"done in {time.time() - started:.0f} s; inspect with: "
        f"optuna best-trials --study-name {inputs.study_name} --storage {inputs.storage_url}"
    )
    return 0
