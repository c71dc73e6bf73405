"""Validate the device profiles on rows they were not fitted on (a script, not a test: quoted in docs/hardware.md).

Every published row (docs/calibration/*.csv, the calibration sets, and docs/validation/published_checks.csv, the
checks) is one piece of evidence on one device unit, if it was measured under the unit's protocol (the same
kernels and timing, ``hw_profiles.protocol``) or mapped to it by a sourced factor of the unit; any other row is
refused and listed. Two hold-out schemes, per unit:

- leave-one-source-out: for each publication, the unit's calibrated parameters (what `search calibrate` fits from
  rows: each measured precision's MAC rate, then overhead, then thread scaling, fewer where the rows cannot
  determine them) are fitted again on every other publication's rows, and that publication's rows are predicted;
- leave-one-family-out: the same with architecture families (resnet, mobilenetv2, efficientnet...).

Every fold starts from the unit's priors (``Unit.priors``: the data sheet's MAC rates, the runtime's overheads),
never from the shipped fit, which saw every row; what a fold's rows cannot determine stays at its prior.

Reported per unit: rows predicted out of sample, share within +-10% and +-30%, median |error|, Spearman, and the
pairs of one publication's rows kept in the published order. Only the calibrated parameters are refitted: the
priors (kernel efficiencies, bandwidths) were chosen by hand while looking at these rows in earlier work, so this
protocol bounds the fit's optimism, not the priors' (docs/hardware.md says so). The log-ratio residuals are written
to bench/out/holdout/residuals.csv for the prediction intervals.

    python bench/holdout.py                      # both schemes
    python bench/holdout.py --leave-out source
    python bench/holdout.py --fitted-on          # which rows each shipped profile was fitted on
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hw_profiles.schema import Band

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.published import ORDER_TOLERANCE, file_size_mismatch, spearman  # noqa: E402

CALIBRATION = ROOT / "docs" / "calibration"
CHECKS = ROOT / "docs" / "validation" / "published_checks.csv"
NOT_OUT_OF_SAMPLE = "no other rows to refit on"
# Publications no shipped profile is fitted on: first seen as an external check, they stay one (the hold-out still
# predicts them out of sample, like every row).
NEVER_FITTED = {"tflite-pr-36749"}
REFIT_FILE = "-all-published.csv"  # the measurements file name `--refit` fits from, cited in the profiles


@dataclass(frozen=True)
class Row:
    """One published latency on one device unit, with where it comes from."""

    device: str
    unit: str
    model: str
    precision: str
    threads: int
    input_size: int
    latency_ms: float
    source: str  # the publication (its id, the same in calibration sets and checks)
    origin: str  # "calibration" or "check"
    protocol: str  # how it was measured: KERNELS@YEAR/CORES/TIMED (hw_profiles.protocol)
    published_mb: str = ""

    @property
    def family(self) -> str:
        """Architecture family: the model name without its size variant (``resnet50`` -> ``resnet``,
        ``mobilenetv2_100`` -> ``mobilenetv2``: a version number stays)."""
        name = self.model.split(":")[-1].removeprefix("tf_")  # TensorFlow ports are the same family
        return re.sub(r"(?<![vV])\d+$", "", name.split("_")[0]) or self.model

    @property
    def key(self) -> tuple[str, str, int, int]:
        """What makes two rows the same measurement."""
        return self.model, self.precision, self.threads, self.input_size


def read_rows() -> list[Row]:
    """Every published row, calibration sets and checks."""
    rows = []
    for path in sorted(CALIBRATION.glob("*.csv")):
        for r in csv.DictReader(path.open()):
            rows.append(
                Row(
                    path.stem,
                    r["unit"],
                    r["model"],
                    r["precision"],
                    int(r["threads"]),
                    int(r["input_size"]),
                    float(r["latency_ms"]),
                    r["publication"],
                    "calibration",
                    r["protocol"],
                )
            )
    for r in csv.DictReader(CHECKS.open()):
        device, _, unit = r["hw"].partition(":")
        rows.append(
            Row(
                device,
                unit,
                r["model"],
                r["precision"],
                int(r["threads"]),
                int(r["input_size"]),
                float(r["latency_ms"]),
                r["publication"],
                "check",
                r["protocol"],
                r.get("published_mb", ""),
            )
        )
    return rows


def merged(rows: list[Row]) -> list[Row]:
    """One row per measurement (geometric mean of repeats), as `search calibrate` merges them."""
    groups: dict[tuple[str, str, int, int], list[Row]] = {}
    for row in rows:
        groups.setdefault(row.key, []).append(row)
    out = []
    for group in groups.values():
        mean = math.exp(sum(math.log(r.latency_ms) for r in group) / len(group))
        out.append(Row(**{**group[0].__dict__, "latency_ms": mean}))
    return out


def under_unit_protocol(rows: list[Row]) -> tuple[list[Row], list[dict[str, object]]]:
    """The rows that are evidence about their unit: measured under its protocol, or mapped to it by the unit's
    sourced factor (their latency times it); and the refused ones, with why."""
    from hw_profiles import load_profile

    kept, refused = [], []
    for row in rows:
        unit = load_profile(f"{row.device}:{row.unit}")[1]
        factor = unit.protocol_factor(row.protocol, row.precision)
        if factor is None:
            refused.append({"unit": f"{row.device}:{row.unit}", "model": row.model, "precision": row.precision,
                            "threads": row.threads, "measured under": row.protocol, "the unit models": unit.protocol,
                            "publication": row.source})  # fmt: skip
        else:
            kept.append(Row(**{**row.__dict__, "latency_ms": row.latency_ms * factor}))
    return kept, refused


def holdout_unit(device: str, unit_name: str, rows: list[Row], scheme: str, graphs: dict) -> list[tuple[Row, float, str]]:
    """Each row of the unit predicted by the unit refitted without its publication (or family): (row, predicted,
    the parameters fitted or why none could be)."""
    from evaluators.calibration import Sample, at_priors, fit, predict
    from evaluators.estimate import graph_for_unit
    from hw_profiles import load_profile
    from search.calibration.calibrate import Measurement, default_params, tie_unmeasured_precisions
    from search.models import model_graph

    profile, shipped, _ = load_profile(f"{device}:{unit_name}")
    unit = at_priors(shipped)  # every fold starts from the data sheet, never from numbers fitted on its held-out rows
    fallback = profile.fallback_of(unit_name)

    def sample(row: Row) -> Sample:
        if (row.model, row.precision, row.input_size) not in graphs:
            graphs[row.model, row.precision, row.input_size] = model_graph(row.model, row.precision, row.input_size)
        graph = graph_for_unit(graphs[row.model, row.precision, row.input_size], unit)
        return Sample(graph, row.latency_ms, row.threads, row.model)

    group_of = (lambda r: r.source) if scheme == "source" else (lambda r: r.family)
    out = []
    for held in dict.fromkeys(group_of(r) for r in rows):
        train = merged([r for r in rows if group_of(r) != held])
        test = [r for r in rows if group_of(r) == held]
        measurements = [Measurement(r.model, r.precision, unit_name, r.threads, r.input_size, r.latency_ms) for r in train]
        wanted = default_params(profile, unit_name, len(train), measurements) if train else []
        wanted = [p for p in wanted if p.split(".")[0] != "gmacs" or p.split(".")[1] in unit.precisions]
        params = list(wanted)
        while params and len(params) >= len(train):
            params.pop()  # never as many unknowns as rows
        if not params:  # nothing to fit: a prediction from the priors alone says nothing about the fit
            out += [(r, math.nan, NOT_OUT_OF_SAMPLE) for r in test]
            continue
        result = fit(unit, [sample(r) for r in train], params, "holdout", fallback=fallback)
        fitted = tie_unmeasured_precisions(result, unit, params, "holdout").unit
        note = ", ".join(params) + (" (the rest at their priors)" if params != wanted else "")
        out += [(r, predict(fitted, sample(r), fallback), note) for r in test]
    return out


def pairs_in_order(results: list[tuple[Row, float, str]]) -> tuple[int, int]:
    """Pairs of one publication's rows (same precision and threads, published more than 5% apart) predicted in the
    published order, and all such pairs."""
    groups: dict[tuple[str, str, int], list[tuple[Row, float]]] = {}
    for row, predicted, _ in results:
        groups.setdefault((row.source, row.precision, row.threads), []).append((row, predicted))
    kept = total = 0
    for items in groups.values():
        for (a, pa), (b, pb) in combinations(items, 2):
            if a.key == b.key or abs(a.latency_ms - b.latency_ms) <= ORDER_TOLERANCE * min(a.latency_ms, b.latency_ms):
                continue
            total += 1
            kept += (pa < pb) == (a.latency_ms < b.latency_ms)
    return kept, total


def by_protocol(results: list[tuple[Row, float, str]]) -> list[dict[str, object]]:
    """The hold-out statistics per unit class (cpu, gpu, dsp) and measurement protocol (kernels, timing)."""
    from hw_profiles.protocol import Protocol

    def group(row: Row) -> str:
        measured = Protocol.parse(row.protocol)
        return f"{row.unit} {measured.kernels} {measured.timed}"

    table = []
    for name in sorted({group(r) for r, _, _ in results}):
        mine = [item for item in results if group(item[0]) == name]
        line = summary(name, mine, "")
        line["years"] = ", ".join(sorted({r.protocol.split("@")[1][:4] for r, _, _ in mine}))
        line.pop("refitted")
        table.append(line)
    return table


def summary(unit: str, everything: list[tuple[Row, float, str]], fitted_on: str) -> dict[str, object]:
    """One line of the table: statistics over the rows predicted out of sample."""
    results = [item for item in everything if not math.isnan(item[1])]
    if not results:
        return {"unit": unit, "rows": 0, "not_out_of_sample": len(everything), "refitted": fitted_on}
    ratios = [p / r.latency_ms for r, p, _ in results]
    errors = [abs(x - 1) for x in ratios]
    kept, total = pairs_in_order(results)
    within_30 = sum(e <= 0.30 for e in errors)
    rho = spearman([r.latency_ms for r, _, _ in results], [p for _, p, _ in results]) if len(results) >= 3 else float("nan")
    return {
        "unit": unit,
        "rows": len(results),
        "not_out_of_sample": len(everything) - len(results),
        "publications": len({r.source for r, _, _ in results}),
        "within_10": f"{sum(e <= 0.10 for e in errors)}/{len(errors)}",
        "within_30": f"{within_30}/{len(errors)} ({100 * within_30 / len(errors):.0f}%)",
        "median_abs_err_pct": round(100 * statistics.median(errors), 1),
        "median_ratio": round(statistics.median(ratios), 2),
        "spearman": "" if math.isnan(rho) else round(rho, 3),
        "pairs_in_order": f"{kept}/{total}" if total else "",
        "refitted": fitted_on,
    }


LEVEL = 0.8  # the band's nominal coverage


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def band_of(residuals: list[float]) -> tuple[float, float]:
    """Multiplicative band [low, high] on a prediction from log(predicted / published) residuals: the middle ``LEVEL``."""
    tail = (1 - LEVEL) / 2
    return math.exp(-quantile(residuals, 1 - tail)), math.exp(-quantile(residuals, tail))


def unit_class(hw: str) -> str:
    """The class of a unit (``pixel4:dsp`` -> ``dsp``): cpu, gpu, dsp or tpu."""
    return hw.partition(":")[2]


# Which residuals a band is built from (always without the predicted row's own publication): every unit's, the
# same unit class's, or the unit's own.
POOLS: dict[str, Callable[[dict[str, str], dict[str, str]], bool]] = {
    "all": lambda other, row: True,
    "class": lambda other, row: unit_class(other["hw"]) == unit_class(row["hw"]),
    "unit": lambda other, row: other["hw"] == row["hw"],
}
# How: the middle of the residuals as they are ("rows": a publication with many rows weighs more), or of every
# publication's mean residual plus every row's deviation from its own publication's mean ("sources": what a source
# never seen could show; each publication's offset weighs the same, and the spread within one adds to it).
METHODS = ("rows", "sources")
# The band the profiles carry: every unit's residuals, by sources (chosen on the coverage table `bands` prints, so
# that coverage is the chosen method's, not an independent check of it).
SHIPPED = "sources"


def between_and_within(rows: list[dict[str, str]]) -> list[float]:
    """Log residuals a new source could show: each publication's mean plus each row's deviation from its own."""
    by_source: dict[str, list[float]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(float(row["log_ratio"]))
    means = [statistics.fmean(values) for values in by_source.values()]
    within = [value - statistics.fmean(values) for values in by_source.values() for value in values]
    return [mean + deviation for mean in means for deviation in within]


def band_from(rows: list[dict[str, str]], method: str) -> tuple[float, float] | None:
    """The band of ``rows``' residuals by ``method`` (None with fewer than two rows, or two publications for
    "sources")."""
    if len(rows) < 2 or (method == "sources" and len({r["source"] for r in rows}) < 2):
        return None
    return band_of(between_and_within(rows) if method == "sources" else [float(r["log_ratio"]) for r in rows])


def coverage(rows: list[dict[str, str]], pool: str, method: str) -> dict[str, tuple[int, int]]:
    """Per unit class: how many published rows fall inside a band built without their publication's residuals."""
    out: dict[str, tuple[int, int]] = {}
    for row in rows:
        band = band_from([x for x in rows if x["source"] != row["source"] and POOLS[pool](x, row)], method)
        hit = band is not None and band[0] <= float(row["published_ms"]) / float(row["predicted_ms"]) <= band[1]
        covered, total = out.get(unit_class(row["hw"]), (0, 0))
        out[unit_class(row["hw"])] = (covered + hit, total + 1)
    return out


def bands(residuals: list[dict[str, str]]) -> tuple[list[dict[str, object]], tuple[float, float, int]]:
    """The coverage per unit class of every band variant built without each row's publication, and the band the
    profiles carry: every unit's residuals by ``SHIPPED`` (low, high, rows)."""
    rows = [r for r in residuals if r.get("left_out") == "source"]
    if not rows:
        raise SystemExit("no leave-one-publication-out residuals: run `python bench/holdout.py --leave-out source` first")
    variants = {f"{pool} / {method}": coverage(rows, pool, method) for pool in POOLS for method in METHODS}

    def share(pair: tuple[int, int]) -> str:
        return f"{pair[0]}/{pair[1]} ({100 * pair[0] / pair[1]:.0f}%)" if pair[1] else ""

    classes = sorted({unit_class(r["hw"]) for r in rows})
    table: list[dict[str, object]] = []
    for name in [*classes, "all"]:
        line: dict[str, object] = {
            "class": name,
            "publications": len({r["source"] for r in rows if name in ("all", unit_class(r["hw"]))}),
        }
        for variant, counts in variants.items():
            pairs = [counts[c] for c in classes] if name == "all" else [counts[name]]
            line[variant] = share((sum(p[0] for p in pairs), sum(p[1] for p in pairs)))
        table.append(line)
    band = band_from(rows, SHIPPED)
    if band is None:
        raise SystemExit("too few residuals for a band: run `python bench/holdout.py --leave-out source` first")
    return table, (band[0], band[1], len(rows))


def write_unit_bands(field: str, band_for: Callable[[str, str], Band | None], key: str, text: str) -> None:
    """Set ``field`` (``latency_band`` or ``energy_band``) of every device profile unit ``band_for(profile, unit)``
    returns a band for; each changed profile gets a new version citing ``key`` (``text``)."""
    from hw_profiles import PROFILE_DIR, list_profiles, load_profile_file
    from hw_profiles.writer import next_version, write_profile

    for name in list_profiles():
        path = PROFILE_DIR / f"{name}.yaml"
        if not path.is_file():
            continue  # host: built per machine
        profile = load_profile_file(path)
        bands = {unit_name: band_for(name, unit_name) for unit_name in profile.units}
        if not any(bands.values()):
            continue
        units = {
            unit_name: unit.model_copy(update={field: bands[unit_name]}) if bands[unit_name] else unit
            for unit_name, unit in profile.units.items()
        }
        new = next_version(profile.model_copy(update={"units": units, "sources": {**profile.sources, key: text}}))
        write_profile(type(profile).model_validate(new.model_dump()), path)
        written = ", ".join(f"{u} {b.low:.2f}-{b.high:.2f}" for u, b in bands.items() if b)
        print(f"{name} v{new.version}: {field} x prediction written: {written}")


def write_bands(band: tuple[float, float, int], own_rows: dict[str, int]) -> None:
    """The shipped band into every device profile unit, with the unit's own published rows among its residuals (a
    new version of each profile, citing this benchmark)."""
    import datetime

    from hw_profiles.schema import Band

    key = f"holdout-{datetime.date.today().isoformat()}"
    low, high, count = band
    text = (
        f"`python bench/holdout.py --bands-only --write-bands`: the middle {LEVEL:.0%} of log(predicted / published) "
        "residuals of every device unit, each row predicted by its unit refitted without its publication, taken as "
        "every publication's mean plus every row's deviation from its own so that the spread between sources is in "
        "the band (docs/hardware.md)"
    )

    def band_for(profile: str, unit: str) -> Band:
        own = own_rows.get(f"{profile}:{unit}", 0)
        return Band(low=round(low, 3), high=round(high, 3), level=LEVEL, rows=count, pooled=True, own_rows=own, source=key)

    write_unit_bands("latency_band", band_for, key, text)


def refit_profiles(rows: list[Row]) -> None:
    """Fit every device profile's units on all their published rows, calibration sets and checks alike (through
    `search calibrate --measurements`, duplicates merged), each profile a new version: the hold-out tables are the
    out-of-sample evaluation, so no published row needs to stay out of the fit."""
    import tempfile

    from hw_profiles import PROFILE_DIR, load_profile_file
    from hw_profiles.writer import write_profile
    from search.calibration.calibrate import COLUMNS, calibrate_from_measurements

    for device in sorted({r.device for r in rows}):
        path = PROFILE_DIR / f"{device}.yaml"
        mine = [r for r in rows if r.device == device]
        with tempfile.TemporaryDirectory() as folder:
            measurements = Path(folder) / f"{device}{REFIT_FILE}"
            with measurements.open("w", newline="") as stream:
                writer = csv.writer(stream)
                writer.writerow(COLUMNS)
                writer.writerows((r.model, r.precision, r.unit, r.threads, r.input_size, r.latency_ms) for r in mine)
            profile, fits = calibrate_from_measurements(load_profile_file(path), str(measurements), None, lambda _: None)
        write_profile(profile, path)
        for unit, result in fits.items():
            print(
                f"{device}:{unit} v{profile.version}: {', '.join(result.params)} fitted on "
                f"{sum(r.unit == unit for r in mine)} rows; median |error| {result.error_before['median_abs_pct']:.1f}% "
                f"-> {result.error_after['median_abs_pct']:.1f}%"
            )


def fitted_on(rows: list[Row]) -> list[dict[str, object]]:
    """Per unit: the published rows its shipped profile was fitted on, read from the source its MAC rate cites
    (`--refit`: every row; else the calibration set, docs/calibration), and the rows it was not."""
    from hw_profiles import load_profile

    table = []
    for device, unit in sorted({(r.device, r.unit) for r in rows}):
        profile, shipped, _ = load_profile(f"{device}:{unit}")
        cited = {profile.sources.get(entry.source, "") for entry in shipped.gmacs.values()}
        every_row = any(REFIT_FILE in text for text in cited)
        mine = [r for r in rows if (r.device, r.unit) == (device, unit)]
        fitted = (
            [r for r in mine if r.source not in NEVER_FITTED] if every_row else [r for r in mine if r.origin == "calibration"]
        )
        table.append(
            {
                "unit": f"{device}:{unit}",
                "fitted on": f"{len(fitted)} ({'calibration + checks' if every_row else 'docs/calibration'})",
                "their publications": len({r.source for r in fitted}),
                "published rows not fitted on": len(mine) - len(fitted),
            }
        )
    return table


def main() -> int:
    """Run the protocols, print the tables, write the residuals."""
    from bench.common import markdown_table
    from evaluators.estimate import estimate_model
    from hw_profiles import load_profile
    from search.models import model_graph

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leave-out", choices=("source", "family", "both"), default="both")
    parser.add_argument("--out", type=Path, default=Path("bench/out/holdout"))
    parser.add_argument("--bands-only", action="store_true", help="bands and their coverage from the residuals written")
    parser.add_argument("--write-bands", action="store_true", help="also write each unit's band into its profile")
    parser.add_argument("--fitted-on", action="store_true", help="only list the rows each shipped profile was fitted on")
    parser.add_argument(
        "--refit",
        nargs="?",
        const="all",
        metavar="DEVICES",
        help="fit the device profiles (all, or a comma list) on their published rows, except the never-fitted ones",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = markdown_table("rows each shipped profile was fitted on (`search calibrate --measurements`)", fitted_on(read_rows()))
    print("\n".join(lines))
    if args.fitted_on:
        return 0
    if args.bands_only:
        with (args.out / "residuals.csv").open() as stream:
            residuals = [r for r in csv.DictReader(stream) if r.get("left_out") == "source"]
        table, found = bands(residuals)
        print(f"band written to profiles: {found[0]:.3f}-{found[1]:.3f} x prediction, from {found[2]} rows")
        lines = markdown_table(f"prediction bands: nominal {LEVEL:.0%}, leave-one-publication-out residuals", table)
        (args.out / "bands.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        if args.write_bands:
            own: dict[str, int] = {}
            for residual in residuals:
                own[residual["hw"]] = own.get(residual["hw"], 0) + 1
            write_bands(found, own)
        return 0
    rows = read_rows()
    graphs: dict = {}
    kept_rows: list[Row] = []
    left_out: list[Row] = []
    for row in rows:  # a publication whose model file cannot be our architecture is not evidence about it
        params = 0
        if row.published_mb:
            key = (row.model, row.precision, row.input_size)
            graphs.setdefault(key, model_graph(row.model, row.precision, row.input_size))
            profile = load_profile(f"{row.device}:{row.unit}")[0]
            params = estimate_model(graphs[key], profile, row.unit).params
        mismatch = file_size_mismatch({"published_mb": row.published_mb, "precision": row.precision}, params)
        (left_out if mismatch else kept_rows).append(row)
    kept_rows, refused = under_unit_protocol(kept_rows)
    lines = markdown_table("refused: measured under another protocol than their unit models, with no sourced factor", refused)
    (args.out / "refused.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.refit:
        devices = None if args.refit == "all" else set(args.refit.split(","))
        refit_profiles([r for r in kept_rows if r.source not in NEVER_FITTED and (devices is None or r.device in devices)])
        return 0
    units = sorted({(r.device, r.unit) for r in kept_rows})
    schemes = ["source", "family"] if args.leave_out == "both" else [args.leave_out]
    residuals = []
    for scheme in schemes:
        table = []
        predicted: list[tuple[Row, float, str]] = []
        for device, unit in units:
            unit_rows = [r for r in kept_rows if (r.device, r.unit) == (device, unit)]
            results = holdout_unit(device, unit, unit_rows, scheme, graphs)
            predicted += results
            notes = sorted({n for _, _, n in results})
            table.append(summary(f"{device}:{unit}", results, "; ".join(notes)))
            residuals += [
                {
                    "left_out": scheme,
                    "hw": f"{device}:{unit}",
                    "model": r.model,
                    "precision": r.precision,
                    "threads": r.threads,
                    "input_size": r.input_size,
                    "published_ms": r.latency_ms,
                    "predicted_ms": round(p, 4),
                    "log_ratio": round(math.log(p / r.latency_ms), 4),
                    "source": r.source,
                    "origin": r.origin,
                    "measured": r.protocol,
                }
                for r, p, _ in results
                if not math.isnan(p)
            ]
            print(table[-1], flush=True)
        held = "publication (source)" if scheme == "source" else "architecture family"
        lines = markdown_table(f"leave-one-{held}-out: every row predicted by its unit refitted without it", table)
        lines += ["", *markdown_table("the same by unit class and measurement protocol", by_protocol(predicted))]
        (args.out / f"holdout-{scheme}.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    path = args.out / "residuals.csv"
    if path.is_file():  # keep the residuals of a scheme not run this time
        with path.open() as stream:
            residuals = [r for r in csv.DictReader(stream) if r.get("left_out") not in schemes] + residuals
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, list(residuals[0]))
        writer.writeheader()
        writer.writerows(residuals)
    print(f"left out (the published model file is not the architecture): {len(left_out)} rows; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
