"""`search calibrate`: fit a profile's free parameters to measured latencies and write a new profile version."""

from __future__ import annotations

import csv
import datetime
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError

if TYPE_CHECKING:
    from evaluators.calibration import FitResult, Sample
    from hw_profiles.schema import Profile, Unit

COLUMNS = ("model", "precision", "unit", "threads", "input_size", "latency_ms")
AS_GIVEN = "as-given"  # precision of a measured ONNX file: its layers' own, not converted (search.calibration.shortlist)
# A LiteRT unit is also fitted on graphs at this input size, as small as the studies' images: at one size, per-op
# and per-inference overheads are confounded with the per-pixel work every graph at that size shares.
SMALL_INPUT = 32


@dataclass(frozen=True)
class Measurement:
    """One measured row: a model at a precision on a unit, with threads and input size."""

    model: str
    precision: str
    unit: str
    threads: int
    input_size: int
    latency_ms: float


def source_key(profile: Profile, unit_name: str) -> str:
    """A new key for the calibration of one unit: ``calibration-DATE-UNIT``, numbered if the day has one already."""
    from hw_profiles.schema import CALIBRATION_PREFIX

    base = f"{CALIBRATION_PREFIX}{datetime.date.today().isoformat()}-{unit_name}"
    key, n = base, 1
    while key in profile.sources:
        n += 1
        key = f"{base}-{n}"
    return key


def check_measurement(row: Measurement, profile: Profile) -> None:
    """Reject a row that ``profile`` cannot have measured, with one line naming why.

    Unknown model or unit, a precision or thread count the unit does not run, a size or latency that is not positive.
    """
    from search.models import check_model_name

    if row.unit not in profile.units:
        raise UserError(f"unit '{row.unit}' is not one of {profile.name}'s units ({', '.join(profile.units)})")
    unit = profile.units[row.unit]
    if row.precision == AS_GIVEN and not row.model.endswith(".onnx"):
        raise UserError(f"precision {AS_GIVEN} is for an ONNX file measured as it is, not for model '{row.model}'")
    if row.precision != AS_GIVEN and row.precision not in unit.precisions:
        raise UserError(f"unit '{row.unit}' does not run {row.precision}")
    if not 1 <= row.threads <= unit.max_threads:
        raise UserError(f"threads {row.threads}: unit '{row.unit}' runs 1 to {unit.max_threads}")
    if not 1 <= row.input_size <= 4096 or not (math.isfinite(row.latency_ms) and row.latency_ms > 0):
        raise UserError("input_size and latency_ms must be positive (input_size at most 4096 px, latency_ms finite)")
    if not row.model.endswith(".onnx"):
        check_model_name(row.model)


def read_measurements(path: str | Path, profile: Profile) -> list[Measurement]:
    """Rows of a measurements CSV (columns: model, precision, unit, threads, input_size, latency_ms; an optional
    ``protocol`` column, KERNELS@YEAR/CORES/TIMED, maps a row to its unit's protocol by the unit's sourced factor or
    refuses it; more columns are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"measurements file '{path}' not found: pass a CSV with columns {', '.join(COLUMNS)}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark is not a column
    except UnicodeDecodeError:
        raise UserError(f"measurements file '{path}' is not UTF-8 text: save it as UTF-8 CSV") from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in COLUMNS if c not in reader.fieldnames]
        if missing:
            raise UserError(f"'{path}' lacks column(s) {', '.join(missing)}: the header must name {', '.join(COLUMNS)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                model = row["model"].strip()
                beside = path.parent / model
                if model.endswith(".onnx") and not Path(model).is_file() and beside.is_file():
                    model = str(beside)  # a graph next to the CSV (`search shortlist` writes it so)
                rows.append(
                    Measurement(
                        model,
                        row["precision"].strip().lower(),
                        row["unit"].strip(),
                        int(row["threads"]),
                        int(row["input_size"]),
                        float(row["latency_ms"]),
                    )
                )
            except (TypeError, ValueError):
                raise UserError(f"'{path}' line {line}: threads and input_size must be integers, latency_ms a number") from None
            try:
                check_measurement(rows[-1], profile)
                if (row.get("protocol") or "").strip():
                    rows[-1] = under_unit_protocol(rows[-1], row["protocol"].strip(), profile)
            except UserError as exc:
                raise UserError(f"'{path}' line {line}: {exc}") from None
    if not rows:
        raise UserError(f"'{path}' has no measurement rows")
    return rows


def under_unit_protocol(row: Measurement, protocol: str, profile: Profile) -> Measurement:
    """``row``, measured under ``protocol``, as its unit's protocol would measure it (the unit's sourced factor), or
    refused in one line when the unit has no factor for that protocol."""
    from hw_profiles.protocol import Protocol

    Protocol.parse(protocol)  # a malformed protocol is one line naming the format
    unit = profile.units[row.unit]
    factor = unit.protocol_factor(protocol, row.precision)
    if factor is None:
        raise UserError(
            f"measured under {protocol}, but {profile.name}:{row.unit} models {unit.protocol} and has no sourced factor "
            f"from it: measure under {unit.protocol}, or leave the row out"
        )
    return replace(row, latency_ms=row.latency_ms * factor)


def merge_duplicates(rows: list[Measurement]) -> list[Measurement]:
    """One row per (model, precision, unit, threads, input size): repeated rows are one point of evidence, their
    latency the geometric mean."""
    import math

    groups: dict[tuple[str, str, str, int, int], list[Measurement]] = {}
    for row in rows:
        groups.setdefault((row.model, row.precision, row.unit, row.threads, row.input_size), []).append(row)
    return [
        replace(group[0], latency_ms=math.exp(sum(math.log(r.latency_ms) for r in group) / len(group)))
        for group in groups.values()
    ]


def check_user_params(params: list[str]) -> None:
    """Refuse ``--params`` naming a number calibration cannot fit, in one line."""
    from evaluators.calibration import check_params

    try:
        check_params(params)
    except ValueError as exc:
        raise UserError(f"--params: {exc}") from None


def check_determined(unit_name: str, params: list[str], rows: int) -> None:
    """Refuse a fit with as many unknowns as distinct rows: it would match them exactly and prove nothing."""
    if len(params) >= rows:
        raise UserError(
            f"{unit_name}: {len(params)} parameter(s) ({', '.join(params)}) from {rows} distinct row(s) would fit them "
            "exactly and prove nothing: measure more rows or pass fewer --params"
        )


def samples_for(rows: list[Measurement], profile: Profile, log: Callable[[str], None]) -> dict[str, list[Sample]]:
    """Samples per unit: each row's model exported at its precision and input size, read for that unit."""
    from evaluators.calibration import Sample
    from evaluators.estimate import graph_for_unit
    from search.models import model_graph

    out: dict[str, list[Sample]] = {}
    for row in rows:
        log(f"  {row.model} {row.precision} {row.input_size}px on {row.unit} ({row.threads} thr): {row.latency_ms} ms")
        precision = None if row.precision == AS_GIVEN else row.precision
        graph = graph_for_unit(model_graph(row.model, precision, row.input_size), profile.units[row.unit])
        out.setdefault(row.unit, []).append(Sample(graph, row.latency_ms, row.threads, f"{row.model}/{row.precision}"))
    return out


def default_params(profile: Profile, unit_name: str, count: int, rows: list[Measurement]) -> list[str]:
    """What ``count`` rows can determine: the MAC rate of each measured precision, then overhead, then thread scaling."""
    unit_rows = [r for r in rows if r.unit == unit_name]
    reference = profile.units[unit_name].precisions[0]  # graphs measured as given: one speed for the unit
    params = [f"gmacs.{reference if p == AS_GIVEN else p}" for p in dict.fromkeys(r.precision for r in unit_rows)]
    params = list(dict.fromkeys(params))
    if count > len(params) + 1:
        params.append("overhead_us")
    if len({r.threads for r in unit_rows}) > 1 and profile.units[unit_name].thread_efficiency is not None:
        params.append("thread_efficiency")
    return params


def tie_unmeasured_precisions(result: FitResult, before: Unit, params: list[str], key: str) -> FitResult:
    """Move the MAC rates of precisions without rows by the same factor as the fitted ones (spec ratios kept)."""
    import math

    from evaluators.calibration import get_value, with_values

    fitted = [p.split(".")[1] for p in params if p.startswith("gmacs.")]
    others = [p for p in before.gmacs if p not in fitted]
    if not fitted or not others:
        return result
    factor = math.exp(sum(math.log(result.params[f"gmacs.{p}"] / get_value(before, f"gmacs.{p}")) for p in fitted) / len(fitted))
    tied = {f"gmacs.{p}": get_value(before, f"gmacs.{p}") * factor for p in others}
    return replace(result, unit=with_values(result.unit, tied, key), params={**result.params, **tied})


def calibrate_from_measurements(
    profile: Profile, path: str, params: list[str] | None, log: Callable[[str], None], latency_scale: float = 1.0
) -> tuple[Profile, dict[str, FitResult]]:
    """Fit each measured unit of ``profile`` to the rows of ``path``; returns the new profile and the fits.

    ``latency_scale`` multiplies every measured latency: rows of a sibling device with the same core at
    another clock (e.g. Pixel 6 rows for the Pixel 7's X1: 2.80 / 2.85).
    """
    from evaluators.calibration import fit, with_spread
    from hw_profiles.writer import next_version, with_unit

    if latency_scale <= 0:
        raise UserError("--latency-scale must be positive")
    if params:
        check_user_params(params)
    rows = merge_duplicates([replace(r, latency_ms=r.latency_ms * latency_scale) for r in read_measurements(path, profile)])
    for unit_name in dict.fromkeys(r.unit for r in rows):
        count = sum(r.unit == unit_name for r in rows)
        check_determined(unit_name, params or default_params(profile, unit_name, count, rows), count)
    by_unit = samples_for(rows, profile, log)
    scaled = f" --latency-scale {latency_scale:g}" if latency_scale != 1.0 else ""
    results = {}
    for unit_name, samples in by_unit.items():
        unit = profile.units[unit_name]
        chosen = params or default_params(profile, unit_name, len(samples), rows)
        key = source_key(profile, unit_name)
        fitted = fit(unit, samples, chosen, key, fallback=profile.fallback_of(unit_name))
        fitted = with_spread(fitted, unit, samples, key, profile.fallback_of(unit_name))
        result = tie_unmeasured_precisions(fitted, unit, chosen, key)
        results[unit_name] = result
        text = (
            f"`search calibrate --hw {profile.name} --measurements {Path(path).name}{scaled}`: {unit_name} fitted "
            f"{', '.join(chosen)} to {len(samples)} rows; median |error| {result.error_before['median_abs_pct']:.1f}% "
            f"-> {result.error_after['median_abs_pct']:.1f}%"
        )
        profile = with_unit(profile, unit_name, result.unit, key, text)
    return next_version(profile), results


def calibrate_host_profile(
    profile: Profile, per_model: int, seed: int, input_size: int, log: Callable[[str], None]
) -> tuple[Profile, dict[str, FitResult]]:
    """Measure this machine in onnxruntime and fit the host profile's default unit."""
    from evaluators.host_calibration import calibrate_host
    from hw_profiles.host import this_machine, with_machine_blocks
    from hw_profiles.writer import next_version, with_unit
    from search.calibration.candidates import calibration_candidates

    profile = with_machine_blocks(profile, this_machine())
    unit_name = profile.default_unit
    unit = profile.units[unit_name]
    key = source_key(profile, unit_name)
    candidates, architectures = calibration_candidates(per_model, seed, input_size, tuple(unit.precisions))
    result = calibrate_host(unit, candidates, architectures, input_size, key, log)
    return next_version(with_unit(profile, unit_name, result.unit, key, result.description)), result.stages


def calibrate_litert_unit(
    profile: Profile,
    unit_name: str,
    per_model: int,
    seed: int,
    input_size: int,
    log: Callable[[str], None],
    params: list[str] | None = None,
) -> tuple[Profile, dict[str, FitResult]]:
    """Time kernel micro-benchmarks and random plans at ``input_size`` and :data:`SMALL_INPUT` as .tflite files in
    LiteRT on this machine and fit the host profile's LiteRT unit: ``params`` (default
    :data:`~evaluators.host_calibration.WHOLE_GRAPH_PARAMS`), then thread scaling."""
    from importlib import metadata
    from itertools import chain

    from evaluators.host_calibration import WHOLE_GRAPH_PARAMS, calibrate_whole_graphs
    from hw_profiles.host import with_machine_caches
    from hw_profiles.writer import next_version, with_unit
    from search.calibration.candidates import MICRO_KERNELS, calibration_plans, micro_plans
    from search.calibration.litert_samples import litert_samples
    from spaces.litert import require_litert

    require_litert()
    profile = with_machine_caches(profile, unit_name)
    unit = profile.units[unit_name]
    key = source_key(profile, unit_name)
    sizes = list(dict.fromkeys((input_size, SMALL_INPUT)))
    drawn = [calibration_plans(per_model, seed + i, size, tuple(unit.precisions)) for i, size in enumerate(sizes)]
    architectures = drawn[0][1]
    computed = tuple(dict.fromkeys(unit.runs_as.get(p, p) for p in unit.precisions))  # FP16 runs as FP32: once
    plans = chain(micro_plans(seed, computed), *(found for found, _ in drawn))
    params = params or WHOLE_GRAPH_PARAMS
    check_user_params(params)
    graphs = len(MICRO_KERNELS) * len(computed) + per_model * len(architectures) * len(sizes)
    check_determined(f"{unit_name} (raise --per-model)", params, graphs)
    log(f"building and timing .tflite files of kernel micro-benchmarks and {', '.join(architectures)} in LiteRT")
    threads = (1, 2) if unit.max_threads > 1 else (1,)
    samples = litert_samples(plans, unit, threads, 3, log)
    runtime = f"LiteRT {metadata.version('ai-edge-litert')} XNNPACK at {' and '.join(f'{s}x{s}' for s in sizes)}"
    command = f"search calibrate --hw {profile.name}:{unit_name}"
    result = calibrate_whole_graphs(unit, samples[1], samples.get(2, []), params, command, runtime, key)
    return next_version(with_unit(profile, unit_name, result.unit, key, result.description)), result.stages
