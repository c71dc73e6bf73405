"""Opening the study of a run: resume or create it, and enqueue the fixed recipes (strategies) it lacks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from core.errors import UserError
from core.samplers import default_population, make_sampler, read_scale
from search.driver.inputs import Inputs, check_same_weights
from search.driver.prepare import Prepared
from search.study import StudyInfo, records
from spaces.segmented import SegmentedSpace

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from search.config import RunConfig
    from spaces.plan import CompressionPlan
    from spaces.space import SearchSpace


@dataclass(frozen=True)
class OpenStudy:
    """The study a run works on, and what the run derives from it.

    Attributes:
        study: The Optuna study.
        heartbeat_s: Seconds between heartbeats: the study's own (every driver must judge abandoned trials alike).
        target: Finished trials to reach: ``--trials``, or with fixed recipes alone the ones finished and queued.
    """

    study: optuna.Study
    heartbeat_s: int
    target: int


def study_info(inputs: Inputs, prepared: Prepared) -> StudyInfo:
    """What a new study of this run records about itself."""
    config, space = inputs.config, prepared.space
    return inputs.identity.with_(
        checkpoint=prepared.weights.source,
        checkpoint_sha256=prepared.weights.sha256,
        num_classes=prepared.splits.num_classes,
        profile_version=inputs.profile.version,
        space_signature=space.signature(),
        heartbeat_s=config.heartbeat,
        recipe=asdict(space.recipe),
        sampler=config.sampler,
        cost_scale=read_scale(config.sampler, config.cost_scale),
        reference_val_top1=prepared.reference["val_top1"],
        reference_test_top1=prepared.reference["test_top1"],
        data_spec=asdict(inputs.data),
    )


def open_study(inputs: Inputs, prepared: Prepared, existing: optuna.Study | None, console: Console) -> OpenStudy:
    """Resume ``existing`` (same space required) or create the study; enqueue every named fixed recipe it lacks."""
    import optuna

    from search.study import create_study, finished_trials, open_storage, queued_recipes

    config, space = inputs.config, prepared.space
    population = config.population or default_population(config.trials)
    seed = config.seed if config.sampler_seed is None else config.sampler_seed
    key = space.plan_key if isinstance(space, SegmentedSpace) else None  # flat: each grid point is its own plan
    sampler = make_sampler(config.sampler, seed, population, config.cost_scale, key)
    heartbeat_s = config.heartbeat
    if existing is not None:
        info = StudyInfo.of(existing)
        heartbeat_s = info.heartbeat_s or heartbeat_s
        if info.space_signature != space.signature():
            raise UserError(
                f"study '{inputs.study_name}' searched another space (different layers or choices): use another --study-name"
            )
        check_same_weights(existing, prepared.weights.sha256)
        if info.data_spec is None:  # a study made before test scoring was held out: rescore needs it
            existing.set_user_attr("data_spec", asdict(inputs.data))
    present = recipes_in(existing) if existing is not None else set()
    plans = strategy_plans_for(inputs, prepared, present, console)  # before the study exists: nothing half-made if it fails
    storage = open_storage(inputs.storage_url, heartbeat_s)
    if existing is not None:
        study = optuna.load_study(study_name=inputs.study_name, storage=storage, sampler=sampler)
        note_cost_scale(study, inputs.study_name, read_scale(config.sampler, config.cost_scale), console)
    else:
        try:
            study = create_study(storage, inputs.study_name, sampler, study_info(inputs, prepared))
        except optuna.exceptions.DuplicatedStudyError:
            raise UserError(
                f"study '{inputs.study_name}' was created by another driver while this one prepared: "
                "start this one again to join it"
            ) from None
    enqueue_recipes(study, space, plans)
    # only the fixed recipes run: stop once none is left waiting
    target = config.trials if config.search else finished_trials(study) + queued_recipes(study)
    return OpenStudy(study, heartbeat_s, target)


def note_cost_scale(study: optuna.Study, name: str, cost_scale: str, console: Console) -> None:
    """Say so, and record ``cost_scale``, when a resumed study's sampler reads its costs on another scale than before."""
    before = StudyInfo.of(study).cost_scale or "linear"  # a study made before the log scale read its costs as stored
    if before != cost_scale:
        console.print(
            f"study '{name}': its earlier trials were proposed reading costs on a {before} scale, "
            f"the next ones on a {cost_scale} scale (--cost-scale)"
        )
        study.set_user_attr("cost_scale", cost_scale)


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
    from search.study.records import LEGACY_NAMES

    return {LEGACY_NAMES.get(r.strategy, r.strategy) for r in records(study) if r.strategy}


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
        from search.driver.sensitivity import int8_sensitivity

        sensitivity = int8_sensitivity(inputs, prepared, console)
    plans = strategy_plans(prepared.space, names, sensitivity)
    skipped = [name for name in names if name not in plans]
    if skipped and not inputs.config.search:
        raise UserError(f"{', '.join(skipped)} cannot run on {inputs.hw} (a precision it lacks, or beyond --max-prune)")
    if skipped:
        console.print(f"not on {inputs.hw} (a precision it lacks, or beyond --max-prune): {', '.join(skipped)}")
    return plans


def enqueue_recipes(study: optuna.Study, space: SearchSpace, plans: dict[str, CompressionPlan]) -> None:
    """Enqueue each fixed recipe's plan, with the recipe changes it needs (another quantizer) as a trial attribute;
    a plan the space has no point for (a per-layer recipe in the segmented space) is enqueued at its nearest point
    and carries its own layers."""
    from search.study.records import strategy_attrs
    from spaces.segmented import represents

    base = asdict(space.recipe)
    for name, plan in plans.items():
        changes = {key: value for key, value in asdict(plan.recipe).items() if base[key] != value}
        layers = None if represents(space, plan) else plan.to_dict()["layers"]
        study.enqueue_trial(space.params(plan), user_attrs=strategy_attrs(name, changes, layers))
