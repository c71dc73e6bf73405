"""The options of `search run` as one frozen record, checked before anything runs; the study folder name."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError, check_at_least
from spaces.plan import Recipe


@dataclass(frozen=True)
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
    cost_scale: str = "log"  # how the sampler reads latency, energy, size and memory (core.log_costs)
    seed: int = 0
    sampler_seed: int | None = None
    max_accuracy_drop: float | None = None
    latency_budget_ms: float | None = None
    memory_budget_kb: float | None = None
    finetune_epochs: int = Recipe.finetune_epochs
    finetune_lr: float = Recipe.finetune_lr
    finetune_steps: int = Recipe.finetune_steps
    bn_batches: int = Recipe.bn_batches
    cheap_steps: int = 0  # > 0: searched trials fine-tune this many steps first, the full ones only if promising
    distill: bool = False
    recovery: str = "ptq"
    baseline_epochs: int = 10
    device: str = "auto"  # where baseline training and recovery fine-tunes run: auto, cpu or cuda
    max_prune: float = 0.75
    space: str = "flat"  # "flat": a ratio per group and a precision per layer; "segmented": spaces.segmented
    segments: int = 4  # precision segments of the segmented space
    prune_step: float = 0.125
    calibration_size: int = Recipe.calibration_size
    round_to: int = Recipe.round_to
    strategies: tuple[str, ...] = ()
    search: bool = True
    warm_start: str = "default"
    test_every_trial: bool = False
    litert_host: bool = False
    trial_timeout: float | None = None  # seconds; None: from the recipe (search.driver.run.trial_time_limit)
    task_memory_mb: float = 2048  # memory Ray reserves per trial task (its scheduling, not a hard limit)
    keep_graphs: str = "all"  # "all" trials' ONNX graphs, or only the "front"'s and the fixed recipes'


# The fixed recipes a search enqueues first: the defaults (spaces.strategies.default_strategies), or every one the
# unit runs (seed-hybrid's sensitivity pass included): on both benchmark problems the fixed recipes alone held a
# front with more hypervolume than 200 (100) random trials (docs/benchmarks.md).
WARM_STARTS = ("default", "all")
MAX_INPUT_SIZE = 2048  # pixels: beyond it a single image would not fit a worker's memory
# Which trial graphs a run keeps on disk: every trial's, or only the front's and the fixed recipes' (the others are
# deleted once the study is done; their metrics stay in the study).
KEEP_GRAPHS = ("all", "front")


def safe_name(name: str) -> str:
    """``name`` usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", name)


def study_folder(run_dir: Path, study_name: str) -> Path:
    """The folder of a study's files (trial graphs, front, sensitivity) in the run folder: its name where that is a
    plain folder name, else the name made safe plus a hash of the exact name, so two studies never share a folder
    (``a b`` and ``a_b``) and no name (``..``, ``a/../b``) leads outside the run folder."""
    import hashlib

    safe = safe_name(study_name)
    if safe != study_name or safe.strip(".") == "":
        safe = f"{safe.strip('.') or 'study'}-{hashlib.sha256(study_name.encode()).hexdigest()[:10]}"
    return run_dir / safe


FOLDER_OWNER = ".study"  # in a study folder: the storage and name of the study the folder belongs to


def folder_owner(storage: str, study_name: str) -> str:
    """What a study folder's owner file holds: the storage URL (password hidden by the caller) and the study name."""
    return f"{storage}\n{study_name}\n"


def check_folder_owner(folder: Path, owner: str) -> None:
    """Refuse a study folder that belongs to another study (same name, another storage): its trial graphs would be
    overwritten."""
    marker = folder / FOLDER_OWNER
    if marker.is_file() and marker.read_text(encoding="utf-8", errors="replace") != owner:
        other = marker.read_text(encoding="utf-8", errors="replace").strip().replace("\n", "', study '")
        raise UserError(
            f"folder '{folder}' belongs to another study (storage '{other}'): pass another --run-dir or --study-name "
            f"(or delete {marker} if that study was moved here)"
        )


def claim_folder(folder: Path, owner: str) -> None:
    """Mark ``folder`` as the study's (``check_folder_owner`` first)."""
    check_folder_owner(folder, owner)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / FOLDER_OWNER).is_file():
        (folder / FOLDER_OWNER).write_text(owner, encoding="utf-8")


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
    if config.input_size is not None and config.input_size > MAX_INPUT_SIZE:
        raise UserError(f"--input-size {config.input_size} is above {MAX_INPUT_SIZE} px: pass a smaller one")
    check_at_least("--heartbeat", config.heartbeat, 1, "second")
    check_at_least("--round-to", config.round_to, 1, "channel")
    check_at_least("--calibration-size", config.calibration_size, 1, "image")
    check_at_least("--population", config.population, 2)  # NSGA-II breeds pairs
    check_at_least("--seed", config.seed, 0)
    check_at_least("--sampler-seed", config.sampler_seed, 0)
    check_at_least("--finetune-epochs", config.finetune_epochs, 0)
    check_at_least("--finetune-steps", config.finetune_steps, 0)
    check_at_least("--cheap-steps", config.cheap_steps, 0)
    if config.cheap_steps and config.cheap_steps >= config.finetune_steps:
        raise UserError(f"--cheap-steps {config.cheap_steps} needs --finetune-steps above it (the full fidelity)")
    check_at_least("--segments", config.segments, 1)
    check_at_least("--bn-batches", config.bn_batches, 0)
    check_at_least("--baseline-epochs", config.baseline_epochs, 0)
    check_at_least("--train-size", config.train_size, 1, "image")
    check_at_least("--trial-timeout", config.trial_timeout, 1, "second")
    check_at_least("--task-memory-mb", config.task_memory_mb, 64, "MB")
    if config.keep_graphs not in KEEP_GRAPHS:
        raise UserError(f"--keep-graphs '{config.keep_graphs}' is not one of {', '.join(KEEP_GRAPHS)}")
    for option, value in (
        ("--max-accuracy-drop", config.max_accuracy_drop),
        ("--latency-budget-ms", config.latency_budget_ms),
        ("--memory-budget-kb", config.memory_budget_kb),
        ("--finetune-lr", config.finetune_lr),
    ):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"{option} must be a finite number at least 0 (got {value})")
    if config.warm_start not in WARM_STARTS:
        raise UserError(f"--warm-start '{config.warm_start}' is not one of {', '.join(WARM_STARTS)}")
