"""`search apply`: rebuild a candidate from an exported plan and score it as a trial is scored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError, check_at_least
from core.files import atomic_target, check_out_file

if TYPE_CHECKING:
    from torch import nn

    from search.data import DataSpec, Splits
    from spaces.plan import CompressionPlan


@dataclass
class ApplyConfig:
    """Every option of `search apply`; unset ones come from the plan's ``source`` (what it was made for)."""

    plan: str
    model: str
    out: str
    checkpoint: str | None = None
    data: str | None = None
    train_size: int | None = None
    input_size: int | None = None
    hw: str | None = None
    threads: int = 1


def read_plan(path: str) -> tuple[CompressionPlan, dict[str, Any]]:
    """The plan in ``path`` and its ``source`` section; one-line errors for a missing file or a malformed plan."""
    from spaces.plan import CompressionPlan, PlanError

    if not Path(path).is_file():
        raise UserError(f"plan '{path}' not found: pass a plan.yaml written by `search export` or `search run`")
    try:
        return CompressionPlan.read_yaml(path)
    except PlanError as exc:
        raise UserError(f"plan '{path}': {exc}: fix the file or export it again") from None


def load_uncompressed(model_name: str, checkpoint: str | None, data: DataSpec) -> tuple[nn.Module, Splits]:
    """The uncompressed model with its checkpoint's weights, and the data's splits; one-line errors for a missing
    checkpoint."""
    from search.data import load_splits
    from search.models import load_model

    if not checkpoint:
        raise UserError("no checkpoint: pass --checkpoint of the uncompressed model's weights")
    if not Path(checkpoint).is_file():
        raise UserError(f"checkpoint '{checkpoint}' not found: pass --checkpoint with a copy of the weights on this machine")
    splits = load_splits(data)
    return load_model(model_name, splits.num_classes, checkpoint), splits


def from_plan(source: dict[str, Any], key: str, flag: str) -> str | None:
    """The plan's ``source[key]`` (a profile or data set name), refused when it names a file or folder: a plan is
    data a user may have been handed, and only the user's own flags say where files are read from."""
    value = source.get(key)
    if value is None:
        return None
    text = str(value)
    if (":" in text and key == "data") or Path(text.partition(":")[0]).suffix in (".yaml", ".yml"):
        raise UserError(f"plan names {key} '{text}' on disk: pass {flag} yourself (files are read only where you say)")
    return text


def plan_input_size(source: dict[str, Any]) -> int | None:
    """The plan's input size, checked to be a whole number of pixels in [8, MAX_INPUT_SIZE]."""
    from search.config import MAX_INPUT_SIZE

    size = source.get("input_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_INPUT_SIZE:
        raise UserError(f"plan's input_size {size!r} is not a whole number of pixels in [8, {MAX_INPUT_SIZE}]: pass --input-size")
    return size


def apply_plan(config: ApplyConfig) -> dict[str, Any]:
    """Rebuild the plan's candidate from the uncompressed weights, write its ONNX graph, return its metrics.

    Runs on ``config.threads`` threads like a search worker (1 by default), so
    the fine-tune and the calibration repeat the trial's exactly.
    """
    from hw_profiles import load_profile
    from search.config import RunConfig
    from search.data import parse_data
    from search.models import check_input_size, check_model_name, file_sha256
    from search.worker import limit_threads, score_graph
    from spaces.apply import realise
    from spaces.plan import PlanError

    plan, source = read_plan(config.plan)
    check_model_name(config.model)
    if source.get("model") and source["model"] != config.model:
        raise UserError(
            f"plan '{config.plan}' was made for model '{source['model']}', not '{config.model}': pass --model {source['model']}"
        )
    check_at_least("--threads", config.threads, 1)
    check_at_least("--input-size", config.input_size, 8)
    out = check_out_file(config.out, "model.onnx")
    profile, _, unit_name = load_profile(config.hw or from_plan(source, "hw", "--hw") or RunConfig.hw)
    data = parse_data(
        config.data or from_plan(source, "data", "--data") or RunConfig.data,
        config.input_size or plan_input_size(source),
        plan.recipe.seed,
        config.train_size or (None if config.data else source.get("train_size")),
    )
    checkpoint = config.checkpoint or source.get("checkpoint")
    limit_threads(config.threads)
    model, splits = load_uncompressed(config.model, checkpoint, data)
    check_input_size(model, config.model, data.input_size)
    try:
        graph = realise(plan, model, splits.train, data.input_size).graph
    except PlanError as exc:
        raise UserError(f"plan '{config.plan}' does not fit model '{config.model}': {exc}") from None
    graph_bytes = graph.SerializeToString()
    with atomic_target(out) as temporary:
        temporary.write_bytes(graph_bytes)
    metrics, _ = score_graph(graph_bytes, profile, unit_name, splits, data.input_size, config.threads)
    sha = file_sha256(Path(str(checkpoint)))  # load_uncompressed refused a missing one
    return {
        **metrics,
        "hw": f"{profile.name}:{unit_name}",
        "profile_version": profile.version,
        "checkpoint_matches_plan": sha == source.get("checkpoint_sha256") if source.get("checkpoint_sha256") else None,
    }
