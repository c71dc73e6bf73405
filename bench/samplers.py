"""Benchmark search quality per trial budget (a script, not a test: its output is quoted in docs/benchmarks.md).

For each sampler and seed, one study of the problem (the same baseline, data and space; only the sampler and
its seed change), then the hypervolume of the front after 10, 20, 50, 100 trials against a fixed reference
point (the uncompressed model's latency, its val top-1 minus 5 points), and the share of the hypervolume that
200 random-search trials reach. The fixed recipes (every strategy, run alone) are one more row. Studies live
in one SQLite file per problem: an interrupted benchmark resumes where it stopped.

    python bench/samplers.py                                   # default problem, all samplers, seeds 0-2
    python bench/samplers.py --problem resnet18-fashion --samplers nsga2,random --trials 50
    python bench/samplers.py --problem mobilenetv2-fashion --checkpoint W.pt --spaces flat,segmented --samplers gp,random

``--spaces flat,segmented`` runs every sampler in both spaces (rows ``SAMPLER`` and ``SAMPLER/segmented``);
``--checkpoint`` takes the problem's uncompressed weights from `search train` instead of training them again.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    PROBLEMS,
    Point,
    curve,
    host_line,
    hypervolume,
    markdown_table,
    reference_point,
    run_quietly,
    study_points,
)
from search.config import RunConfig

TARGET_SHARE = 0.95


def run_studies(args: argparse.Namespace, out: Path) -> tuple[dict[str, list[list[Point | None]]], Point]:
    """Run (or resume) every study; the trials of each per sampler (``recipes``: the fixed recipes alone), and
    the problem's reference point."""
    import optuna

    from spaces.strategies import STRATEGIES

    storage = f"sqlite:///{out / 'studies.db'}"
    base = replace(PROBLEMS[args.problem], run_dir=str(out), storage=storage, workers=args.workers, checkpoint=args.checkpoint)
    recipes = replace(base, study_name=f"{args.problem}-recipes", strategies=tuple(STRATEGIES.names()), search=False)
    runs: list[tuple[str, RunConfig]] = [("recipes", recipes)]
    for space in args.spaces:
        for sampler in args.samplers:
            trials = args.random_trials if sampler == "random" else args.trials
            label = sampler if space == "flat" else f"{sampler}/{space}"
            for seed in args.seeds:
                name = f"{args.problem}-{sampler}-s{seed}" if space == "flat" else f"{args.problem}-{space}-{sampler}-s{seed}"
                config = replace(base, study_name=name, sampler=sampler, sampler_seed=seed, trials=trials, space=space)
                runs.append((label, config))
    results: dict[str, list[list[Point | None]]] = {}
    reference = None
    for sampler, config in runs:
        assert config.study_name is not None
        started = time.time()
        if not args.report_only:
            run_quietly(config, out / "logs" / f"{config.study_name}.log")
        elif config.study_name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
            continue  # reporting what ran: a sampler or seed that did not run is left out
        study = optuna.load_study(study_name=config.study_name, storage=storage)
        if args.report_only and sampler != "recipes" and len(study.trials) < config.trials:
            print(f"{config.study_name}: {len(study.trials)} of {config.trials} trials, left out", flush=True)
            continue
        results.setdefault(sampler, []).append(study_points(study))
        reference = reference or reference_point(study)
        print(f"{config.study_name}: {len(study.trials)} trials, {time.time() - started:.0f} s", flush=True)
    assert reference is not None
    return results, reference


def trials_to_reach(points: list[Point | None], reference: Point, target: float) -> int | None:
    """The fewest first trials whose front reaches ``target`` hypervolume; None if the study never does."""
    for n in range(1, len(points) + 1):
        if hypervolume([p for p in points[:n] if p], reference) >= target:
            return n
    return None


def report(args: argparse.Namespace, results: dict[str, list[list[Point | None]]], reference: Point, out: Path) -> None:
    """Print and write the table (CSV, Markdown) and the plot (HTML) of hypervolume per budget."""
    random_runs = [pts for pts in results.get("random", []) if len(pts) >= args.random_trials]  # in the flat space
    random_full = [hypervolume([p for p in pts if p], reference) for pts in random_runs]
    target_base = args.target_hv or (statistics.median(random_full) if random_full else None)
    budgets = sorted({*args.budgets, args.random_trials})
    rows = []
    for sampler, studies in results.items():
        row: dict[str, object] = {"sampler": sampler, "seeds": len(studies), "trials": max(len(s) for s in studies)}
        curves = [] if sampler == "recipes" else [curve(points, reference, budgets) for points in studies]
        for n in budgets:
            values = [c[n] for c in curves if n in c]
            row[f"hv@{n}"] = round(statistics.median(values), 4) if values else ""
            row[f"share@{n}"] = round(statistics.median(values) / target_base, 3) if values and target_base else ""
        full = [hypervolume([p for p in pts if p], reference) for pts in studies]
        row["hv@all"] = round(statistics.median(full), 4)
        searched = [hypervolume([p for p in pts if p and not p.recipe], reference) for pts in studies]
        row["hv@all_searched_only"] = "" if sampler == "recipes" else round(statistics.median(searched), 4)
        if target_base and sampler != "recipes":
            reached = [trials_to_reach(points, reference, TARGET_SHARE * target_base) for points in studies]
            row["trials_to_95pct"] = "/".join(str(r) if r else "-" for r in reached)
            ordered = sorted(r if r else 10**9 for r in reached)
            median = ordered[len(ordered) // 2]
            row["median_trials_to_95pct"] = median if median < 10**9 else "not reached"
        rows.append(row)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with (out / f"samplers-{args.problem}.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        writer.writerows(rows)
    title = (
        f"problem {args.problem}; reference point: val top-1 {reference.accuracy:.2f}%, latency {reference.latency:.4f} ms; "
        f"target: {TARGET_SHARE:.0%} of the median hypervolume of {args.random_trials} random trials "
        f"({target_base if target_base is None else round(target_base, 4)}); host: {host_line()}"
    )
    lines = markdown_table(title, rows)
    (out / f"samplers-{args.problem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(results, reference, out / f"samplers-{args.problem}.html", target_base)


def plot(results: dict[str, list[list[Point | None]]], reference: Point, path: Path, target: float | None) -> None:
    """Median hypervolume after each trial, per sampler (plotly.js from its CDN: a small file)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for sampler, studies in results.items():
        if sampler == "recipes":
            value = hypervolume([p for p in studies[0] if p], reference)
            figure.add_hline(y=value, line_dash="dot", annotation_text="fixed recipes alone")
            continue
        length = max(len(s) for s in studies)
        xs = list(range(1, length + 1))
        medians = [statistics.median(hypervolume([p for p in s[:n] if p], reference) for s in studies if len(s) >= n) for n in xs]
        figure.add_trace(go.Scatter(x=xs, y=medians, mode="lines", name=f"{sampler} (median of {len(studies)} seeds)"))
    if target:
        figure.add_hline(y=TARGET_SHARE * target, line_dash="dash", annotation_text="95% of random@200")
    figure.update_layout(xaxis_title="trials", yaxis_title="hypervolume (val points x ms)", title=path.stem)
    figure.write_html(path, include_plotlyjs="cdn")


def main() -> None:
    """Run the studies, then report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="default")
    parser.add_argument("--samplers", type=lambda s: s.split(","), default=["nsga2", "tpe", "gp", "random"])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--spaces", type=lambda s: s.split(","), default=["flat"], help="flat, segmented or both")
    parser.add_argument("--checkpoint", help="the problem's uncompressed weights (from `search train`)")
    parser.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")], default=[10, 20, 50, 100])
    parser.add_argument("--trials", type=int, default=100, help="trials per study of every sampler but random")
    parser.add_argument("--random-trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/samplers"))
    parser.add_argument("--target-hv", type=float, help="the random-search hypervolume to compare with (from another run)")
    parser.add_argument("--report-only", action="store_true", help="read the studies as they are, run nothing")
    args = parser.parse_args()
    out = args.out / args.problem
    results, reference = run_studies(args, out)
    report(args, results, reference, out)


if __name__ == "__main__":
    main()
