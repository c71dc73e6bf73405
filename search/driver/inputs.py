"""The inputs of a run resolved and checked (profile, data, model, storage) before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError
from search.config import RunConfig, check_folder_owner, check_numbers, folder_owner, study_folder
from search.study import StudyInfo

if TYPE_CHECKING:
    import optuna

    from hw_profiles.schema import Profile, Unit
    from search.data import DataSpec


@dataclass(frozen=True)
class Inputs:
    """Validated inputs of a run; resolving them writes nothing.

    ``litert_host``: every candidate is also timed in LiteRT on this host (``--litert-host``, or a LiteRT unit of
    this machine).
    """

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
    litert_host: bool = False
    device: str = "cpu"

    @property
    def identity(self) -> StudyInfo:
        """What a resumed study must share with this run."""
        return StudyInfo(
            model=self.config.model,
            data=self.data.label,
            train_size=self.data.train_size,
            input_size=self.data.input_size,
            hw=self.hw,
            objectives=tuple(self.objectives),
        )


def resolve_inputs(config: RunConfig) -> Inputs:
    """Check every user input (profile, objectives, model, data, checkpoint, storage); raise UserError on the first problem."""
    from core.samplers import SAMPLERS, check_cost_scale
    from hw_profiles import load_profile
    from search.data import parse_data
    from search.models import check_model_name, check_pretrained
    from search.study import check_storage, default_storage, parse_objectives, redact
    from spaces.finetune import resolve_device
    from spaces.litert import require_litert
    from spaces.strategies import STRATEGIES

    check_numbers(config)
    device = resolve_device(config.device)
    SAMPLERS.get(config.sampler)
    try:
        check_cost_scale(config.cost_scale)
    except ValueError as error:
        raise UserError(f"{error}: pass --cost-scale log or --cost-scale linear") from None
    for name in config.strategies:
        STRATEGIES.get(name)
    first, *more = [spec.strip() for spec in config.hw.split(",")]
    profile, unit, unit_name = load_profile(first)
    litert_host = config.litert_host or unit.host_runtime == "litert"  # a LiteRT unit of this machine
    if litert_host:
        require_litert()
    for spec in more:  # each further device checked now; kept as given (a YAML path works too)
        load_profile(spec)
    objectives = parse_objectives(config.objectives)
    check_model_name(config.model)
    if config.pretrained:
        check_pretrained(config.model)
    data = parse_data(config.data, config.input_size, config.seed, config.train_size)
    if config.checkpoint and not Path(config.checkpoint).is_file():
        raise UserError(f"checkpoint '{config.checkpoint}' not found: pass the path of a saved state_dict")
    run_dir = Path(config.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir '{run_dir}' is a file: pass a folder")
    if config.storage:
        check_storage(config.storage)
    if config.ray_address:
        from search.driver.cluster import check_ray_address

        check_ray_address(config.ray_address)
    study_name = config.study_name or f"{config.model}-{data.kind}-{profile.name}-{unit_name}"
    storage_url = config.storage or default_storage(run_dir)
    check_folder_owner(study_folder(run_dir, study_name), folder_owner(redact(storage_url), study_name))
    return Inputs(
        config,
        profile,
        unit,
        unit_name,
        f"{profile.name}:{unit_name}",
        objectives,
        data,
        run_dir,
        storage_url,
        study_name,
        tuple(more),
        litert_host,
        device,
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
    info = StudyInfo.of(study)
    recorded = info.checkpoint_sha256
    if recorded and recorded != sha256:
        raise UserError(
            f"study '{study.study_name}' compresses other weights (checkpoint sha256 {recorded[:12]}..., this run "
            f"{sha256[:12]}...): pass --checkpoint {info.checkpoint} (a copy of it on this machine)"
        )
