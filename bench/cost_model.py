"""Benchmark the latency model (a script, not a test: run it on a quiet machine and quote its output).

(a) host: the host profile's predictions against onnxruntime measurements of random compressed
    candidates of MobileNetV2, EfficientNet-Lite0 and ResNet-18 (architectures the host
    calibration did not use); share within +-10%, median |error|, Spearman rank correlation.
(b) devices: the device profiles' predictions against published latencies of architectures
    outside ../shared/calibration (docs/validation/published_checks.csv): prediction,
    publication, ratio, source; share within +-30%; whether each device keeps the published order.

(c) models: `search estimate --model M --hw host` against onnxruntime measured here for whole models at 224
    (ResNet-18/50, MobileNetV2/V3, EfficientNet-Lite0, MnasNet) in each precision; share within +-15%.
    MnasNet is one of the host calibration's architectures (calibration data, not a check): marked so.

    python bench/cost_model.py                 # every part
    python bench/cost_model.py --part host --per-model 14 --rounds 5
    python bench/cost_model.py --part devices
    python bench/cost_model.py --part models --precisions fp32,int8
    python bench/cost_model.py --part energy

(d) energy: predicted energy per inference and average power against published measurements (wall, board or
module rail, as each row says).

(e) litert: whole models as `host:xnnpack` predicts them against their .tflite timed in LiteRT here (1 thread);
    needs the [litert] extra and `search calibrate --hw host:xnnpack` first; not part of `all`.

    python bench/cost_model.py --part litert --precisions fp32,fp16,int8
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import statistics
import sys
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.published import ORDER_TOLERANCE, file_size_mismatch, spearman  # noqa: E402

CHECKS = ROOT / "docs" / "validation" / "published_checks.csv"
HOST_MODELS = ("mobilenetv2_100", "efficientnet_lite0", "resnet18")
# Measured next to every candidate: its measured / predicted ratio tells how fast the (shared) machine is
# running at that moment, so a slow spell shows in the output instead of passing for a model error.
SPEED_REFERENCE = "mobilenetv2_100"


def host_part(per_model: int, rounds: int, seed: int, input_size: int) -> None:
    """Predict and measure random candidates on this machine; print every row and the summary."""
    import onnx
    import torch

    from evaluators.estimate import estimate_model
    from evaluators.host_calibration import Candidate
    from evaluators.onnx_runtime import measure_latency, session
    from hw_profiles import load_profile
    from search.calibration.candidates import as_candidate, random_plans
    from search.models import build_model
    from spaces.onnx_export import export_onnx

    torch.set_num_threads(1)
    profile, unit, unit_name = load_profile("host")
    candidates: list[Candidate] = []
    for name in HOST_MODELS:
        drawn = random_plans(build_model(name, 1000), name, per_model, seed, input_size, tuple(unit.precisions))
        candidates.extend(as_candidate(plan) for plan in drawn)
    predicted = [estimate_model(onnx.load_from_string(c.onnx_bytes), profile, unit_name).latency_ms for c in candidates]
    reference = export_onnx(build_model(SPEED_REFERENCE, 1000).eval(), input_size)
    reference_predicted = estimate_model(reference, profile, unit_name).latency_ms
    reference_session = session(reference.SerializeToString(), 1)
    sessions = [session(c.onnx_bytes, 1) for c in candidates]
    shape = (1, 3, input_size, input_size)
    runs: list[list[float]] = [[] for _ in candidates]
    speeds: list[list[float]] = [[] for _ in candidates]  # the reference's latency next to each measurement
    order = list(range(len(candidates)))
    for round_seed in range(rounds):  # interleaved rounds in shuffled orders: a slow spell or the after-effects of
        random.Random(round_seed).shuffle(order)  # one graph on the next hit no candidate systematically
        for i in order:
            speeds[i].append(measure_latency(reference_session, shape, warmup=1, repeats=5, budget_s=1))
            runs[i].append(measure_latency(sessions[i], shape, warmup=3, repeats=15, budget_s=3))
    measured = [statistics.median(r) for r in runs]
    reference_ms = statistics.median(t for s in speeds for t in s)
    slowness = [statistics.median(s) / reference_ms for s in speeds]
    print(
        f"(a) host profile v{profile.version} vs onnxruntime on this machine, {len(candidates)} random candidates, "
        f"{input_size}x{input_size}, 1 thread, median of {rounds} interleaved rounds"
    )
    print(f"{'candidate':40s} {'measured ms':>12s} {'predicted ms':>13s} {'error %':>8s} {'machine':>8s}")
    errors = []
    for c, m, p, slow in zip(candidates, measured, predicted, slowness, strict=True):
        errors.append(100 * (p - m) / m)
        print(f"{c.label:40s} {m:12.2f} {p:13.2f} {errors[-1]:+8.1f} {slow:8.2f}")
    print(f"raw: {_summary(errors)}; Spearman {spearman(measured, predicted):.3f}")
    print(
        f"machine: {SPEED_REFERENCE} FP32 measured {reference_ms:.2f} ms (predicted {reference_predicted:.2f}) in this run; "
        f"next to each candidate {min(slowness):.2f}-{max(slowness):.2f} x its run median"
    )
    corrected = [m / slow for m, slow in zip(measured, slowness, strict=True)]
    print(
        f"measured / machine (slow spells divided out): "
        f"{_summary([100 * (p - m) / m for m, p in zip(corrected, predicted, strict=True)])}; "
        f"Spearman {spearman(corrected, predicted):.3f}"
    )


ENERGY_CHECKS = ROOT / "docs" / "validation" / "energy_checks.csv"


def energy_part(write_bands: bool = False) -> None:
    """Predicted energy and average power against published measurements (docs/validation/energy_checks.csv).

    A publication's energy is its power x its latency; where our latency differs from theirs (another runtime or
    thread count), the power comparison is the cleaner one: it does not carry the latency error. Where the
    publication gives the idle power, power above idle is compared with the predicted power above ``static_w``.
    Each unit's energy band is the middle 80% of log(predicted / published) energy over its rows (none was fitted
    on); ``write_bands`` writes it into the profiles, so outputs show it instead of "unchecked".
    """
    from evaluators.estimate import estimate_model
    from hw_profiles import load_profile
    from search.models import model_graph

    rows = list(csv.DictReader(ENERGY_CHECKS.open()))
    print(f"(d) energy vs published measurements ({ENERGY_CHECKS.relative_to(ROOT)}, {len(rows)} rows, never fitted)")
    print(
        f"{'device:unit':16s} {'model':22s} {'prec':5s} {'pred ms':>8s} {'pub ms':>7s} {'pred mJ':>8s} {'pub mJ':>7s} "
        f"{'ratio':>6s} {'pred W':>7s} {'pub W':>6s} {'ratio':>6s} {'above idle: pred':>16s} {'pub':>5s} {'ratio':>6s}  source"
    )
    ratios: dict[str, list[tuple[float, float, float | None]]] = {}
    residuals: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        profile, _, unit_name = load_profile(row["hw"])
        graph = model_graph(row["model"], row["precision"], int(row["input_size"]))
        estimate = estimate_model(graph, profile, unit_name, int(row["threads"]))
        latency, power = float(row["latency_ms"]), float(row["power_w"])
        predicted_w = estimate.energy_mj / estimate.latency_ms
        dynamic_ratio = None
        if row["idle_w"]:
            predicted_above = predicted_w - profile.units[unit_name].energy.static_w.value
            published_above = power - float(row["idle_w"])
            dynamic_ratio = predicted_above / published_above
            above = f"{predicted_above:16.2f} {published_above:5.2f} {dynamic_ratio:6.2f}"
        else:
            above = f"{'(no idle given)':>29s}"
        source = row["source"].split(":")[0].split("(")[0].strip()
        energy_ratio = estimate.energy_mj / (power * latency)
        residuals.setdefault(row["hw"], []).append((source, math.log(energy_ratio)))
        ratios.setdefault(f"{source} / {row['hw']}", []).append((energy_ratio, predicted_w / power, dynamic_ratio))
        print(
            f"{row['hw']:16s} {row['model']:22s} {row['precision']:5s} {estimate.latency_ms:8.1f} {latency:7.1f} "
            f"{estimate.energy_mj:8.1f} {power * latency:7.1f} {energy_ratio:6.2f} "
            f"{predicted_w:7.2f} {power:6.2f} {predicted_w / power:6.2f} {above}  {source}"
        )
    print("per publication and unit: ratio ranges (predicted / published); within +-30% counts")
    for key, values in ratios.items():
        energy, power_r, dynamic = zip(*values, strict=True)
        known = [d for d in dynamic if d is not None]
        line = f"  {key}: {len(values)} rows; energy {_ratio_range(energy)}; power {_ratio_range(power_r)}"
        if known:
            line += f"; power above idle {_ratio_range(known)}"
        print(line)
    energy_bands(residuals, write_bands)


def _ratio_range(ratios: Sequence[float]) -> str:
    """``0.41-0.71 (1 within)``: the range of predicted / published ratios and how many lie within +-30%."""
    return f"{min(ratios):.2f}-{max(ratios):.2f} ({sum(0.7 <= r <= 1.3 for r in ratios)} within)"


def energy_bands(residuals: dict[str, list[tuple[str, float]]], write: bool) -> None:
    """Print (and with ``write``, write into the profiles) each unit's energy band from its (publication, log ratio)
    residuals, with the band's leave-one-publication-out coverage where the unit has rows of two publications."""
    import datetime

    from bench.holdout import LEVEL, band_of, write_unit_bands
    from hw_profiles.schema import Band

    key = f"energy-checks-{datetime.date.today().isoformat()}"
    bands = {}
    for hw, rows in residuals.items():
        low, high = band_of([r for _, r in rows])
        bands[hw] = Band(low=round(low, 3), high=round(high, 3), level=LEVEL, rows=len(rows), source=key)
        covered, held = 0, 0
        for publication in sorted({p for p, _ in rows}):
            others = [r for p, r in rows if p != publication]
            if others:
                other_low, other_high = band_of(others)
                inside = [other_low <= math.exp(-r) <= other_high for p, r in rows if p == publication]
                covered, held = covered + sum(inside), held + len(inside)
        check = f"; built without a row's publication it covers {covered}/{held}" if held else "; one publication only"
        print(f"energy band {hw}: {LEVEL:.0%} of published energy in {low:.2f}-{high:.2f} x prediction ({len(rows)} rows{check})")
    if write:
        text = (
            "`python bench/cost_model.py --part energy --write-bands`: the middle 80% of log(predicted / published) "
            f"energy per inference over this unit's rows of {ENERGY_CHECKS.relative_to(ROOT)} (DeepEdgeBench, Krai's "
            "MLPerf Inference v1.0 Raspberry Pi 4 submission, Juneja et al. 2025), none of which any number was fitted on"
        )
        write_unit_bands("energy_band", lambda profile, unit: bands.get(f"{profile}:{unit}"), key, text)


WHOLE_MODELS = ("resnet18", "resnet50", "mobilenetv2_100", "mobilenetv3_large_100", "efficientnet_lite0", "mnasnet_100")


def models_part(models: list[str], precisions: list[str], rounds: int, input_size: int) -> None:
    """Whole models as `search estimate --hw host` predicts them against onnxruntime measured here (1 thread)."""
    from bench.common import host_line
    from evaluators.estimate import estimate_model
    from evaluators.onnx_runtime import measure_rounds
    from hw_profiles import load_profile
    from hw_profiles.host import describe
    from search.models import input_dims, model_graph

    profile, _, unit_name = load_profile("host")
    built = describe(profile.machine) if profile.machine else "unknown"
    print(f"(c) host profile v{profile.version} (built on {built}) vs onnxruntime on {host_line()}, 1 thread, {rounds} rounds")
    rows = [(m, p, model_graph(m, p, input_size)) for m in models for p in precisions]
    predicted = [estimate_model(graph, profile, unit_name, 1).latency_ms for _, _, graph in rows]
    shapes = [tuple(d or 1 for d in input_dims(g)) for _, _, g in rows]  # a dynamic batch dimension: one image
    measured = measure_rounds([g.SerializeToString() for _, _, g in rows], shapes, 1, rounds)
    drift = print_whole_models([(m, p, ms, pred) for (m, p, _), ms, pred in zip(rows, measured, predicted, strict=True)])
    if drift:  # a calibration architecture off by much means the machine runs at another speed than when calibrated
        print(
            f"calibration architectures (not checks): error {', '.join(f'{e:+.1f}%' for e in drift)}; far from 0, "
            "this machine runs at another speed than during `search calibrate --hw host`: run the two back to back"
        )


def print_whole_models(rows: list[tuple[str, str, float, float]]) -> list[float]:
    """Print (model, precision, measured ms, predicted ms) rows and the summary of the architectures the host
    calibration never saw; returns the errors (%) of those it used (calibration data, not checks)."""
    from search.calibration.candidates import CALIBRATION_MODELS

    print(f"{'model':24s} {'prec':5s} {'measured ms':>12s} {'predicted ms':>13s} {'error %':>8s}")
    checks: list[float] = []
    drift: list[float] = []
    for model, prec, measured, predicted in rows:
        error = 100 * (predicted - measured) / measured
        seen = model in CALIBRATION_MODELS
        (drift if seen else checks).append(error)
        note = "  (calibration architecture)" if seen else ""
        print(f"{model:24s} {prec:5s} {measured:12.2f} {predicted:13.2f} {error:+8.1f}{note}")
    if checks:
        print(
            f"architectures the calibration never saw: within +-15%: {sum(abs(e) <= 15 for e in checks)}/{len(checks)}, "
            f"within +-30%: {sum(abs(e) <= 30 for e in checks)}/{len(checks)}; median |error| "
            f"{statistics.median(abs(e) for e in checks):.1f}%; worst {max(checks, key=abs):+.1f}%"
        )
    return drift


def litert_part(models: list[str], precisions: list[str], rounds: int, input_size: int) -> None:
    """Whole models as the host profile's LiteRT unit predicts them against their .tflite timed in LiteRT here."""
    from bench.common import host_line
    from evaluators.calibration import predict
    from hw_profiles import load_profile
    from search.calibration.candidates import random_plans
    from search.calibration.litert_samples import litert_samples
    from search.models import build_model

    profile, unit, unit_name = load_profile("host:xnnpack")
    print(f"(e) host:{unit_name} (profile v{profile.version}) vs LiteRT XNNPACK on {host_line()}, 1 thread, {rounds} rounds")
    plans = (
        plan
        for m in models
        for p in precisions
        for plan in random_plans(build_model(m, 1000), m, 1, 0, input_size, tuple(unit.precisions), mode=p)
    )
    samples = litert_samples(plans, unit, (1,), rounds, lambda _: None)[1]
    labels = [s.label.split("/") for s in samples]  # MODEL/PRECISION/...
    print_whole_models([(m[0], m[1], s.measured_ms, predict(unit, s)) for m, s in zip(labels, samples, strict=True)])


def _summary(errors: list[float]) -> str:
    within = sum(abs(e) <= 10 for e in errors)
    return (
        f"within +-10%: {100 * within / len(errors):.0f}% ({within}/{len(errors)}); "
        f"median |error| {statistics.median(abs(e) for e in errors):.1f}%"
    )


def device_part() -> None:
    """Predict each published row with its device profile; print the table, the +-30% share and order checks."""
    from evaluators.estimate import estimate_model
    from hw_profiles import load_profile
    from search.models import model_graph

    rows = list(csv.DictReader(CHECKS.open()))
    print(
        f"(b) device profiles vs published latencies ({CHECKS.relative_to(ROOT)}, {len(rows)} rows; "
        "architectures outside ../shared/calibration)"
    )
    print(
        f"{'device:unit':18s} {'model':26s} {'prec':5s} {'thr':>3s} {'in':>4s} "
        f"{'predicted':>10s} {'published':>10s} {'ratio':>6s}  source"
    )
    groups: dict[tuple[str, str, str, str], list[tuple[str, float, float]]] = {}
    ratios = []
    other_models = []
    for row in rows:
        profile, _, unit_name = load_profile(row["hw"])
        threads = int(row["threads"])
        graph = model_graph(row["model"], row["precision"], int(row["input_size"]))
        estimate = estimate_model(graph, profile, unit_name, threads)
        predicted, published = estimate.latency_ms, float(row["latency_ms"])
        print(
            f"{row['hw']:18s} {row['model'][:26]:26s} {row['precision']:5s} {threads:3d} {row['input_size']:>4s} "
            f"{predicted:10.2f} {published:10.2f} {predicted / published:6.2f}  {row['source']}"
        )
        mismatch = file_size_mismatch(row, estimate.params)
        if mismatch:
            other_models.append(f"{row['hw']} {row['model']} {row['precision']}: {mismatch}")
            continue
        ratios.append(predicted / published)
        group = (row["hw"], row["precision"], row["threads"], row["source"].split(",")[0])
        groups.setdefault(group, []).append((f"{row['model']}@{row['input_size']}", predicted, published))
    if other_models:
        print(
            f"left out of the statistics below, the published model is not the architecture predicted ({len(other_models)} rows):"
        )
        for line in other_models:
            print(f"  {line}")
    within = sum(0.7 <= r <= 1.3 for r in ratios)
    print(
        f"within +-30%: {100 * within / len(ratios):.0f}% ({within}/{len(ratios)}); median ratio {statistics.median(ratios):.2f}"
    )
    kept = total = 0
    for key, items in groups.items():  # one publication's rows on one device, precision and thread count
        pairs = [
            (a, b) for a, b in combinations(items, 2) if a[0] != b[0] and abs(a[2] - b[2]) > ORDER_TOLERANCE * min(a[2], b[2])
        ]
        agree = sum((a[1] < b[1]) == (a[2] < b[2]) for a, b in pairs)
        kept += agree == len(pairs)
        total += 1
        if pairs:
            print(f"  order on {key[0]} {key[1]} {key[2]} thr ({key[3][:40]}): {agree}/{len(pairs)} pairs as published")
    print(
        f"published order kept on {kept}/{total} groups (pairs published within {ORDER_TOLERANCE:.0%} of each other "
        "are ties; two rows of one model at one input size, e.g. two builds, are not an order of models)"
    )


def main() -> int:
    """Run the parts asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("host", "devices", "models", "energy", "litert", "all"), default="all")
    parser.add_argument("--models", type=lambda s: s.split(","), default=list(WHOLE_MODELS), help="models: which")
    parser.add_argument("--precisions", type=lambda s: s.split(","), default=["fp32", "int8"], help="models: which")
    parser.add_argument("--per-model", type=int, default=14, help="host: candidates per architecture (3 architectures)")
    parser.add_argument("--rounds", type=int, default=5, help="host: interleaved measurement rounds")
    parser.add_argument("--seed", type=int, default=1, help="host: seed of the candidates (calibration uses 0)")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--write-bands", action="store_true", help="energy: write each checked unit's band into its profile")
    args = parser.parse_args()
    if args.part in ("host", "all"):
        host_part(args.per_model, args.rounds, args.seed, args.input_size)
    if args.part in ("devices", "all"):
        device_part()
    if args.part in ("models", "all"):
        models_part(args.models, args.precisions, args.rounds, args.input_size)
    if args.part in ("energy", "all"):
        energy_part(args.write_bands)
    if args.part == "litert":  # not in "all": needs the [litert] extra and `search calibrate --hw host:xnnpack`
        litert_part(args.models, args.precisions, args.rounds, args.input_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
