"""`search shortlist`: the few front members worth measuring on the real device, in a folder ready to measure.

A front member's place is uncertain where its predicted latency band overlaps its neighbours' (the profile's
``latency_band``): the device may well order them the other way. The shortlist takes the members with the
most overlap (the fastest one always: it is the one users ship), copies their ONNX graphs and writes the
scripts that measure them (on an Android phone over adb with onnxruntime_perf_test, or here in onnxruntime);
both write ``measured.csv``, which ``search calibrate --hw PROFILE --measured measured.csv --study STUDY``
reads back: the profile is refitted as a new version and the study's front re-ranked with it.
"""

from __future__ import annotations

import csv
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError
from search.analysis.bands import overlapping
from search.calibration.calibrate import AS_GIVEN
from search.study import StudyInfo
from search.study.records import TrialRecord

if TYPE_CHECKING:
    import optuna

    from hw_profiles.schema import Band

MEASURED = "measured.csv"

ANDROID = """#!/bin/sh
# Measure every trial_*.onnx on the Android phone attached over adb with onnxruntime_perf_test (CPU, 1 thread,
# {runs} runs); writes {measured}. Needs adb and an arm64 build of onnxruntime_perf_test (set PERF_TEST).
set -e
cd "$(dirname "$0")"
UNIT={unit_q}
NEXT={next_q}
PERF_TEST=${{PERF_TEST:-./onnxruntime_perf_test}}
adb push "$PERF_TEST" /data/local/tmp/onnxruntime_perf_test >/dev/null
adb shell chmod 755 /data/local/tmp/onnxruntime_perf_test
echo "model,precision,unit,threads,input_size,latency_ms" > {measured}
for graph in trial_*.onnx; do
  adb push "$graph" "/data/local/tmp/$graph" >/dev/null
  ms=$(adb shell /data/local/tmp/onnxruntime_perf_test -I -e cpu -x 1 -r {runs} "/data/local/tmp/$graph" \\
       | sed -n 's/.*Average inference time cost: *\\([0-9.]*\\) ms.*/\\1/p')
  if [ -z "$ms" ]; then echo "no latency from onnxruntime_perf_test for $graph: run it by hand to see why" >&2; exit 1; fi
  echo "$graph,{as_given},$UNIT,1,{size},$ms" >> {measured}
done
printf 'wrote {measured}: %s\\n' "$NEXT"
"""

HERE = '''"""Measure every trial_*.onnx here in onnxruntime (CPU, 1 thread, median of {runs} runs); writes {measured}."""
import csv
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

folder = Path(__file__).resolve().parent
rows = []
for graph in sorted(folder.glob("trial_*.onnx")):
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    feed = {{session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((1, 3, {size}, {size}), np.float32)}}
    for _ in range(10):
        session.run(None, feed)
    times = []
    for _ in range({runs}):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(1000 * (time.perf_counter() - start))
    rows.append([graph.name, "{as_given}", "{unit}", 1, {size}, round(statistics.median(times), 4)])
with (folder / "{measured}").open("w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["model", "precision", "unit", "threads", "input_size", "latency_ms"])
    writer.writerows(rows)
print("wrote", folder / "{measured}")
'''


def overlaps(members: list[TrialRecord], band: Band | None) -> dict[int, int]:
    """For each front member (by trial number), how many other members' latency bands overlap its own."""
    return {n: len(others) for n, others in overlapping(members, band).items()}


def pick(members: list[TrialRecord], band: Band | None, count: int) -> list[TrialRecord]:
    """The fastest member, then those whose order is least certain (most overlapping bands), up to ``count``."""
    if not members:
        return []
    by_latency = sorted(members, key=lambda r: r.metrics["latency_ms"])
    overlap = overlaps(members, band)
    rest = sorted(by_latency[1:], key=lambda r: (-overlap[r.number], r.metrics["latency_ms"]))
    return sorted([by_latency[0], *rest[: count - 1]], key=lambda r: r.metrics["latency_ms"])


def write_shortlist(study: optuna.Study, count: int, out: Path) -> list[TrialRecord]:
    """Pick the shortlist of ``study``'s front and write it into ``out`` (graphs, shortlist.csv, the scripts).

    Raises:
        UserError: the front is empty or its graphs are not on this machine.
    """
    from search.analysis.bands import unit_band
    from search.study.front import front_records

    info = StudyInfo.of(study)
    hw = info.hw
    band = unit_band(hw)
    members = front_records(study)
    if not members:
        raise UserError(f"study '{study.study_name}' has no front yet: run `search run` first")
    missing = [m.number for m in members if not Path(m.onnx).is_file()]
    if missing:
        raise UserError(f"front trials {missing} have no graph on this machine: shortlist where the study ran")
    chosen = pick(members, band, count)
    overlap = overlaps(members, band)
    out.mkdir(parents=True, exist_ok=True)
    size, unit, profile = info.input_size, info.unit, info.profile
    with (out / "shortlist.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["graph", "trial", "predicted_ms", "band_low_ms", "band_high_ms", "overlapping_members"])
        for member in chosen:
            latency = member.metrics["latency_ms"]
            low, high = band.around(latency) if band else (latency, latency)
            name = f"trial_{member.number:05d}.onnx"
            shutil.copyfile(member.onnx, out / name)
            writer.writerow([name, member.number, round(latency, 4), round(low, 4), round(high, 4), overlap[member.number]])
    fields = {"measured": MEASURED, "as_given": AS_GIVEN, "unit": unit, "size": size, "runs": 50}
    if profile == "host":  # this machine: measured here, in the runtime the profile describes
        (out / "measure_here.py").write_text(HERE.format(**fields))
    elif unit == "cpu":  # a phone's CPU: onnxruntime_perf_test's CPU execution provider over adb
        android = out / "measure_android.sh"
        # every value from the study goes into the script shell-quoted: a study name is text, never code
        next_step = shlex.join(["search", "calibrate", "--hw", profile, "--measured", MEASURED, "--study", study.study_name])
        android.write_text(ANDROID.format(**fields, unit_q=shlex.quote(str(unit)), next_q=shlex.quote(next_step)))
        android.chmod(0o755)
    return chosen
