"""Benchmark: the full pipeline against the pandas way and the DuckDB floor, on the same generated input.

    python bench/run.py                    # sizes S and M
    python bench/run.py --sizes S M L      # or --large: adds L (1M customers, ~10M order lines; takes a while)
    python bench/run.py --sizes L --repeats 3   # each run three times, alternating; medians reported

For each size the demo data is generated once (long shape, seed 7, 90 days), then three approaches run on it,
one after another, each in its own subprocess so that its peak RSS is its own (os.wait4 rusage of that child):

1. pipeline: every asset and check of the graph materialized on a fresh warehouse (bench/run.py --role pipeline),
   with per-step durations from the STEP_SUCCESS events;
2. baseline: bench/baseline_pandas.py, one pandas + scikit-learn script doing the same work;
3. floor: bench/floor.py, DuckDB alone computing the per-customer aggregates from the CSVs.

Wall times of the pipeline and the baseline are whole-process times (interpreter start, imports and all), measured
by this parent. The floor and the per-stage times are measured inside the child. speedup = baseline wall / pipeline
wall; overhead_vs_floor = (ingest + staging + features step time) / floor time, the "ingest plus features vs floor"
ratio. like_for_like = the baseline's seconds inside its script / the pipeline's steps that do the same work
(ingest, staging, features, outliers, model, segments). The scaling exponent is the least-squares slope of
log(pipeline wall) against log(order lines) over the sizes run (1.0 = linear); it is fitted twice, on whole-process
wall time and on the time inside steps (which leaves out the fixed interpreter, import and Dagster start-up).
Before the sizes, the start-up floor: processes that only import the pipeline's definitions, the cost every run
pays before it reads any data, printed beside what M's targets leave for the whole refresh. Results go to a table
on stdout and to bench/results/<YYYY-MM-DD>.json (UTC date). The last lines, one per size that ran:
`speedup_vs_pandas=<x> peak_rss_mb=<y> baseline_peak_rss_mb=<z> overhead_vs_floor=<w>` for M,
`l_speedup_vs_pandas=<x> l_peak_rss_mb=<y> l_baseline_peak_rss_mb=<z> night_share=<w>` for L, and with --xl
`xl_wall_s=<s> xl_peak_rss_mb=<m> xl_baseline=<finished|failed|oom>` for XL, where the pandas script runs under a
12 GB address-space ceiling (RLIMIT_AS) and the disk taken by the input and the warehouse is recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SETTLE_VARIABLE = "PERSONA_SETTLE_SECONDS"  # read by assets/raw/settle.py in the children
SIZES = {"S": 10_000, "M": 100_000, "L": 1_000_000, "XL": 10_000_000}  # customers; ~10 order lines each, 90 days
# XL is where the pandas script stops fitting: it runs under this memory ceiling (RLIMIT_AS, the address space a
# process may map; the pipeline's target is a peak RSS within it), and the bench records whether the script
# finished, failed or ran out of memory.
XL_MEMORY_CEILING_GB = 12
SEED = 7
DAYS = 90

# Pipeline steps grouped into stages by step key (an asset's op name); every asset check is "checks" (the quality
# gate: GX suites, load audit, segmentation check). Table order follows this dict.
STAGES = {
    "ingest": ("raw__orders", "raw__customers"),
    "staging": ("staging_tables",),
    "validation": ("validation_tables",),
    "features": ("features__customer_features",),
    "outliers": ("quality__outliers",),
    "model": ("model__customer_clusters",),
    "segments": ("segment_tables", "segments__customer_value_tiers"),
    "predict": ("churn_tables", "recommendation_tables"),
    "report": ("report__segment_report",),
    "publish": ("warehouse__published",),
}
FLOOR_STAGES = ("ingest", "staging", "features")
# The stages doing what the pandas baseline does (read, deduplicate, fill, features, outliers, k-means with
# silhouette, segments written). The rest of a run is work the baseline has no counterpart for: validation, the
# churn and recommendation models, the bilingual report with its charts, and publishing.
LIKE_FOR_LIKE_STAGES = ("ingest", "staging", "features", "outliers", "model", "segments")


def stage_of(step: str, check_steps: set[str]) -> str:
    if step in check_steps:
        return "checks"
    return next((stage for stage, steps in STAGES.items() if step in steps), "other")


# ---------------------------------------------------------------------------------------------- child: pipeline


def run_pipeline(data: Path, workdir: Path, out: Path, role: str = "pipeline", first_day: str | None = None,
                 last_day: str | None = None) -> None:
    """Materialize every asset and check; write step durations and wall time to `out`. Roles: `pipeline` (the
    single order file on a fresh warehouse), `daily` (the daily landing folders: every day, or first..last)."""
    started = time.perf_counter()
    sys.path.insert(0, str(BENCH))
    from common import ALL_CHECKS, materialize_daily, materialize_shop

    imported = time.perf_counter()
    if role == "pipeline":
        result, _ = materialize_shop(workdir, data / "order_lines.csv", data / "customers.csv")
    else:
        first = date.fromisoformat(first_day) if first_day else None
        last = date.fromisoformat(last_day) if last_day else first
        result = materialize_daily(workdir, data / "landing", data / "customers.csv", first, last)
    finished = time.perf_counter()
    check_steps = sorted(check.node_def.name for check in ALL_CHECKS)
    steps = {event.step_key: event.event_specific_data.duration_ms / 1000.0
             for event in result.all_events if event.event_type_value == "STEP_SUCCESS"}
    failed = [event.step_key for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    out.write_text(json.dumps({"success": result.success, "failed_steps": failed, "import_seconds": imported - started,
                               "materialize_seconds": finished - imported, "steps": steps,
                               "check_steps": check_steps}), encoding="utf-8")
    if not result.success:
        raise SystemExit(f"the pipeline run failed: {failed}")


# ---------------------------------------------------------------------------------------------- parent


def _memory_ceiling(gigabytes: float):
    """A preexec function capping the child's address space (RLIMIT_AS): beyond it allocations fail (Python raises
    MemoryError) instead of the machine swapping or the kernel's OOM killer choosing a process."""
    limit = int(gigabytes * 2**30)
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def outcome_of(exit_code: int, log: Path) -> str:
    """finished, oom (MemoryError, an allocation DuckDB or numpy could not make, or killed by SIGKILL as the OOM
    killer does) or failed."""
    if exit_code == 0:
        return "finished"
    text = log.read_text(encoding="utf-8", errors="replace")
    if exit_code == -9 or "MemoryError" in text or "Out of Memory" in text or "Unable to allocate" in text:
        return "oom"
    return "failed"


def measured(command: list[str], log: Path, env: dict | None = None, memory_ceiling_gb: float | None = None,
             may_fail: bool = False) -> dict:
    """Run `command` as a child process; its wall time and its own peak RSS (os.wait4), or fail loudly unless
    `may_fail` (then `outcome` says how it ended). `memory_ceiling_gb` caps its address space."""
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   env=None if env is None else os.environ | env,
                                   preexec_fn=_memory_ceiling(memory_ceiling_gb) if memory_ceiling_gb else None)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    outcome = outcome_of(process.returncode, log)
    if process.returncode != 0 and not may_fail:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        raise SystemExit(f"{' '.join(command)} failed (exit {process.returncode}):\n" + "\n".join(tail))
    # ru_maxrss is in KiB on Linux
    return {"wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0, "outcome": outcome,
            "memory_ceiling_gb": memory_ceiling_gb}


def disk_used_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink()) / 2**20


def startup_floor(workdir: Path, repeats: int = 3) -> dict:
    """What every run pays before it reads any data: a process that only imports the pipeline's definitions
    (Dagster, Great Expectations, scikit-learn, Altair, polars, DuckDB), measured like the runs. The median of
    `repeats` runs for the wall time, the largest peak RSS."""
    runs = [measured([sys.executable, "-c", "import pipelines.definitions"], workdir / f"startup_{i}.log")
            for i in range(repeats)]
    return {"wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "repeats": repeats}


REAL_EXPORT = ROOT.parent / "shared" / "data" / "online_retail_II_2009_2010.parquet"
REAL_EXPORT_CONFIG = ROOT / "examples" / "online_retail.yaml"


def bench_real_export(workdir: Path) -> dict | None:
    """A real export nobody here generated (525,461 lines of the UCI Online Retail II sheet, categories from 25
    description rules): `persona run` on examples/online_retail.yaml as a user runs it, with its own Dagster
    instance. None when ../shared/data is not beside the repository."""
    if not REAL_EXPORT.is_file():
        print(f"real export: {REAL_EXPORT} not found; skipped", file=sys.stderr)
        return None
    print("real export (online retail, persona run) ...", file=sys.stderr, flush=True)
    home = workdir / "dagster"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    run = measured([sys.executable, "-m", "pipelines.cli", "run", "--config", str(REAL_EXPORT_CONFIG),
                    "--warehouse", str(workdir / "warehouse" / "warehouse.duckdb")],
                   workdir / "online_retail.log", env={"DAGSTER_HOME": str(home)})
    return {"export": REAL_EXPORT.name, "source_rows": 525_461, **run}


def median_of(runs: list[dict], key: str) -> dict:
    """The run of median `key` (the lower of the two middle ones for an even count), with every run's value of it
    beside (`<key>_each`)."""
    chosen = dict(sorted(runs, key=lambda run: run[key])[(len(runs) - 1) // 2])
    chosen[f"{key}_each"] = [run[key] for run in runs]
    return chosen


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time, with the largest peak RSS of them all: memory is judged on the worst run, speed
    on the typical one."""
    chosen = median_of(runs, "wall_seconds")
    chosen["peak_rss_mb_each"] = [run["peak_rss_mb"] for run in runs]
    chosen["peak_rss_mb"] = max(chosen["peak_rss_mb_each"])
    return chosen


def bench_size(name: str, customers: int, workdir: Path, repeats: int = 1) -> dict:
    """One size: the pipeline, the pandas script and the DuckDB floor on the same input, then a night. At XL the
    script runs under XL_MEMORY_CEILING_GB and may fail, and no night is run (the full refresh is what XL
    measures); the disk the input and the pipeline's warehouse take is recorded. With `repeats`, the pipeline and
    the script run that many times each, alternating, and so does the night's pair of runs; the median of each
    is reported (median_run)."""
    xl = name == "XL"
    ceiling = XL_MEMORY_CEILING_GB if xl else None
    sys.path.insert(0, str(ROOT))
    from pipelines.demo.generate import generate_demo_data

    data_dir = workdir / "data"
    print(f"[{name}] generating {customers:,} customers ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    data = generate_demo_data(data_dir, customers=customers, days=DAYS, seed=SEED, shape="long")
    generated = time.perf_counter() - started
    input_mb = sum(p.stat().st_size for p in (data.orders_path, data.customers_path)) / 2**20
    python = sys.executable

    pipeline, baseline = None, None
    pipeline_runs, baseline_runs = [], []
    # With repeats, the pipeline and the script alternate, so that a host slowing down or speeding up during the
    # bench (runs of the same code here differed by up to 8%) weighs on both; each side's median run is reported.
    for repeat in range(repeats):
        label = f" (round {repeat + 1} of {repeats})" if repeats > 1 else ""
        print(f"[{name}] pipeline{label} ...", file=sys.stderr, flush=True)
        folder = workdir / "pipeline"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        run = measured([python, str(BENCH / "run.py"), "--role", "pipeline", "--data", str(data_dir),
                        "--workdir", str(folder), "--out", str(workdir / "pipeline.json")], workdir / "pipeline.log")
        run["disk_mb"] = disk_used_mb(folder)
        run.update(json.loads((workdir / "pipeline.json").read_text(encoding="utf-8")))
        pipeline_runs.append(run)

        print(f"[{name}] baseline (pandas + scikit-learn){label} ...", file=sys.stderr, flush=True)
        run = measured([python, str(BENCH / "baseline_pandas.py"), "--data", str(data_dir),
                        "--out-dir", str(workdir / "baseline"), "--result", str(workdir / "baseline.json")],
                       workdir / "baseline.log", memory_ceiling_gb=ceiling, may_fail=xl)
        if run["outcome"] == "finished":
            run.update(json.loads((workdir / "baseline.json").read_text(encoding="utf-8")))
        baseline_runs.append(run)
    pipeline, baseline = median_run(pipeline_runs), median_run(baseline_runs)
    stages: dict[str, float] = {}
    for step, seconds in pipeline["steps"].items():
        stage = stage_of(step, set(pipeline["check_steps"]))
        stages[stage] = stages.get(stage, 0.0) + seconds
    pipeline["stages"] = stages

    print(f"[{name}] floor (DuckDB alone) ...", file=sys.stderr, flush=True)
    floor = measured([python, str(BENCH / "floor.py"), "--data", str(data_dir), "--out", str(workdir / "floor.json")],
                     workdir / "floor.log")
    floor.update(json.loads((workdir / "floor.json").read_text(encoding="utf-8")))

    incremental = None if xl else median_of([bench_incremental(name, data_dir, workdir / f"night_{repeat}")
                                             for repeat in range(repeats)], "incremental_share")
    input_disk_mb = disk_used_mb(data_dir)

    ingest_to_features = sum(stages.get(stage, 0.0) for stage in FLOOR_STAGES)
    like_for_like = sum(stages.get(stage, 0.0) for stage in LIKE_FOR_LIKE_STAGES)
    finished = baseline["outcome"] == "finished"
    return {
        "size": name, "customers": data.customers, "order_lines": data.order_lines, "input_mb": round(input_mb, 1),
        "input_disk_mb": round(input_disk_mb, 1), "generate_seconds": round(generated, 2),
        "pipeline": pipeline, "baseline": baseline, "floor": floor,
        "ingest_to_features_seconds": ingest_to_features,
        # Against a script that did not finish there is no ratio: the outcome says what happened to it.
        "speedup_vs_pandas": baseline["wall_seconds"] / pipeline["wall_seconds"] if finished else None,
        "rss_ratio_vs_pandas": pipeline["peak_rss_mb"] / baseline["peak_rss_mb"] if finished else None,
        "overhead_vs_floor": ingest_to_features / floor["seconds"],
        "like_for_like_seconds": like_for_like,
        "like_for_like_speedup": baseline["seconds"] / like_for_like if finished else None,
        "incremental": incremental,
    }


def bench_incremental(name: str, data_dir: Path, workdir: Path) -> dict:
    """The nightly case: the same orders as daily landing folders. A full refresh loads every day but the last;
    then the last day arrives, which is the work of a night with one new day: insert it, recompute the customers
    it touches, move every customer's recency on by a day, refresh what depends on all days, publish. Both in
    their own process, start-up included. The full refresh holds one day fewer than the night after it, so the
    share is slightly pessimistic."""
    from pipelines.core.partitions import split_orders_by_day

    workdir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "landing").exists():
        split_orders_by_day(data_dir / "order_lines.csv", data_dir / "landing")
    days = len(list((data_dir / "landing").iterdir()))
    landing_days = sorted(p.name.removeprefix("order_day=") for p in (data_dir / "landing").iterdir())
    first_day, day_before_last, last_day = landing_days[0], landing_days[-2], landing_days[-1]
    python, daily = sys.executable, workdir / "daily"
    daily.mkdir()
    runs = {}
    for label, extra in (("full", ["--first-day", first_day, "--last-day", day_before_last]),
                         ("one_day", ["--first-day", last_day])):
        print(f"[{name}] daily layout, {label} ...", file=sys.stderr, flush=True)
        runs[label] = measured([python, str(BENCH / "run.py"), "--role", "daily", "--data", str(data_dir),
                                "--workdir", str(daily), "--out", str(workdir / f"daily_{label}.json"), *extra],
                               workdir / f"daily_{label}.log")
        runs[label].update(json.loads((workdir / f"daily_{label}.json").read_text(encoding="utf-8")))
    return {"days": days, "full_wall_seconds": runs["full"]["wall_seconds"],
            "one_day_wall_seconds": runs["one_day"]["wall_seconds"],
            "one_day_peak_rss_mb": runs["one_day"]["peak_rss_mb"],
            "one_day_steps": runs["one_day"]["steps"],
            "incremental_share": runs["one_day"]["wall_seconds"] / runs["full"]["wall_seconds"]}


def step_seconds(result: dict) -> float:
    """Time inside the pipeline's steps: the wall time without interpreter start-up, imports and Dagster."""
    return sum(result["pipeline"]["steps"].values())


def scaling_exponent(results: list[dict], seconds=lambda r: r["pipeline"]["wall_seconds"]) -> float | None:
    """Least-squares slope of log(seconds) against log(order lines); None with fewer than two sizes."""
    if len(results) < 2:
        return None
    xs = [math.log(r["order_lines"]) for r in results]
    ys = [math.log(seconds(r)) for r in results]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)


def print_tables(results: list[dict], exponents: dict[str, float | None], startup: dict) -> None:
    header = (f"{'size':<4} {'customers':>10} {'lines':>11} {'pipeline s':>10} {'rss MB':>8} {'pandas s':>9} "
              f"{'rss MB':>8} {'floor s':>8} {'rss MB':>7} {'speedup':>8} {'rss ratio':>9} "
              f"{'ingest+features s':>17} {'vs floor':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        p, b, f = r["pipeline"], r["baseline"], r["floor"]
        finished = b["outcome"] == "finished"
        ratios = (f"{r['speedup_vs_pandas']:>7.2f}x {r['rss_ratio_vs_pandas']:>9.2f}" if finished
                  else f"{'pandas ' + b['outcome']:>18}")
        print(f"{r['size']:<4} {r['customers']:>10,} {r['order_lines']:>11,} {p['wall_seconds']:>10.2f} "
              f"{p['peak_rss_mb']:>8.0f} {b['wall_seconds']:>9.2f} {b['peak_rss_mb']:>8.0f} {f['seconds']:>8.2f} "
              f"{f['peak_rss_mb']:>7.0f} {ratios} "
              f"{r['ingest_to_features_seconds']:>17.2f} {r['overhead_vs_floor']:>7.2f}x")
    for r in results:
        if r["baseline"].get("memory_ceiling_gb"):
            print(f"{r['size']}: the pandas script ran under a {r['baseline']['memory_ceiling_gb']} GB address-space "
                  f"ceiling (RLIMIT_AS) and {r['baseline']['outcome']} after {r['baseline']['wall_seconds']:.0f} s; "
                  f"disk: input {r['input_disk_mb']:,.0f} MB, pipeline warehouse {r['pipeline']['disk_mb']:,.0f} MB")
    for r in results:
        walls = r["pipeline"].get("wall_seconds_each", [])
        if len(walls) > 1:
            def each(values, unit=" s"):
                return ", ".join(f"{v:.2f}{unit}" for v in values)
            night = r["incremental"]["incremental_share_each"] if r["incremental"] else []
            print(f"{r['size']}: {len(walls)} rounds, medians above (peak RSS: the largest); pipeline "
                  f"{each(walls)}; pandas {each(r['baseline']['wall_seconds_each'])}"
                  + (f"; night shares {', '.join(f'{v:.1%}' for v in night)}" if night else ""))
    print("speedup = pandas s / pipeline s; rss ratio = pipeline / pandas peak RSS; vs floor = ingest+features s "
          "(ingest, staging and features steps) / floor s")
    if exponents["wall"] is not None:
        print(f"scaling exponent vs order lines (log-log fit over {', '.join(r['size'] for r in results)}; 1 = "
              f"linear): pipeline wall {exponents['wall']:.3f}, time inside steps {exponents['steps']:.3f}")
    print(f"start-up floor: importing the pipeline's definitions alone takes {startup['wall_seconds']:.2f} s and "
          f"{startup['peak_rss_mb']:.0f} MB (wall: median of {startup['repeats']} processes; RSS: the largest)")
    for r in results:
        if r["size"] == "M":
            print(f"M targets: 5x the baseline leaves {r['baseline']['wall_seconds'] / 5:.2f} s for the whole refresh, "
                  f"half its peak RSS is {r['baseline']['peak_rss_mb'] / 2:.0f} MB")
    print()
    stage_names = list(dict.fromkeys([*STAGES, "checks", *(s for r in results for s in r["pipeline"]["stages"])]))
    print("pipeline stages (s, summed STEP_SUCCESS durations; 'startup' = interpreter + imports, "
          "'dagster' = wall not inside a step)")
    print(f"{'size':<4} " + " ".join(f"{s:>9}" for s in [*stage_names, "startup", "dagster"]))
    for r in results:
        p = r["pipeline"]
        in_steps = sum(p["steps"].values())
        cells = [p["stages"].get(s, 0.0) for s in stage_names]
        cells += [p["wall_seconds"] - p["materialize_seconds"], p["materialize_seconds"] - in_steps]
        print(f"{r['size']:<4} " + " ".join(f"{c:>9.2f}" for c in cells))
    print()
    print("like for like: the pipeline's steps that do the baseline's work (" + ", ".join(LIKE_FOR_LIKE_STAGES)
          + ") against the baseline's own time (both without interpreter start-up)")
    for r in results:
        if r["like_for_like_speedup"] is None:
            print(f"  {r['size']}: pipeline {r['like_for_like_seconds']:.2f} s, baseline {r['baseline']['outcome']}")
            continue
        print(f"  {r['size']}: pipeline {r['like_for_like_seconds']:.2f} s, baseline {r['baseline']['seconds']:.2f} s, "
              f"speedup {r['like_for_like_speedup']:.2f}x")
    print()
    print("baseline stages (s): " + "; ".join(
        f"{r['size']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["baseline"]["stages"].items())
        + f" (k={r['baseline']['k']})" for r in results if "stages" in r["baseline"]))
    print()
    print("nightly incremental (daily landing folders; a full refresh of every day but the last, then the last day)")
    print(f"{'size':<4} {'days':>5} {'full s':>8} {'one day s':>10} {'rss MB':>8} {'share':>7}")
    for r in (r for r in results if r["incremental"]):
        i = r["incremental"]
        print(f"{r['size']:<4} {i['days']:>5} {i['full_wall_seconds']:>8.2f} {i['one_day_wall_seconds']:>10.2f} "
              f"{i['one_day_peak_rss_mb']:>8.0f} {i['incremental_share']:>6.1%}")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"give 1 or more, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the pipeline against pandas and the DuckDB floor.")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=None, help="default: S M")
    parser.add_argument("--large", action="store_true", help="add size L (1M customers, ~10M order lines)")
    parser.add_argument("--xl", action="store_true",
                        help=f"add L and XL (10M customers, ~100M order lines; the pandas script under a "
                             f"{XL_MEMORY_CEILING_GB} GB memory ceiling; needs tens of GB of disk and a long while)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and warehouses")
    parser.add_argument("--repeats", type=positive_int, default=1,
                        help="run the pipeline and the pandas script this many times each, alternating, and the "
                             "night's pair of runs too; the median of each is reported (default 1)")
    parser.add_argument("--no-real-export", action="store_true",
                        help="skip the run on ../shared/data/online_retail_II_2009_2010.parquet")
    parser.add_argument("--role", choices=["pipeline", "daily"], help=argparse.SUPPRESS)  # internal: the children
    parser.add_argument("--first-day", help=argparse.SUPPRESS)
    parser.add_argument("--last-day", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        run_pipeline(args.data.resolve(), args.workdir.resolve(), args.out, args.role, args.first_day,
                     args.last_day)
        return

    # The bench writes every input file completely before a run reads it: no run may wait for files to settle
    # (ingest.settle_seconds, 60 s by default, which would otherwise land inside the timed full refresh).
    os.environ[SETTLE_VARIABLE] = "0"
    sizes = args.sizes or ["S", "M"]
    if (args.large or args.xl) and "L" not in sizes:
        sizes.append("L")
    if args.xl and "XL" not in sizes:
        sizes.append("XL")
    sizes = sorted(set(sizes), key=list(SIZES).index)
    root = Path(tempfile.mkdtemp(prefix="persona-bench-"))
    results = []
    try:
        print("start-up floor (importing the definitions) ...", file=sys.stderr, flush=True)
        startup = startup_floor(root)
        for name in sizes:
            workdir = root / name
            workdir.mkdir()
            results.append(bench_size(name, SIZES[name], workdir, args.repeats))
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        real_export = bench_real_export(root / "real_export") if not args.no_real_export else None
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    exponents = {"wall": scaling_exponent(results), "steps": scaling_exponent(results, step_seconds)}
    now = datetime.now(UTC)
    out = BENCH / "results" / f"{now:%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "run_at": now.isoformat(timespec="seconds"), "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "seed": SEED, "days": DAYS, "startup_floor": startup, "sizes": results, "real_export": real_export,
        "scaling_exponent_pipeline_wall_vs_lines": exponents["wall"],
        "scaling_exponent_pipeline_steps_vs_lines": exponents["steps"],
        "notes": {
            "wall_seconds": "pipeline and baseline: whole child process as seen by the parent (startup included)",
            "peak_rss_mb": "ru_maxrss of that child alone (os.wait4)",
            "overhead_vs_floor": "(ingest + staging + features step durations) / floor seconds in its child",
            "like_for_like": "pipeline steps doing the baseline's work (" + ", ".join(LIKE_FOR_LIKE_STAGES)
                             + ") vs the baseline's seconds inside its script",
            "scaling_exponent": "slope of log(seconds) vs log(order lines) over the sizes run; steps = time inside "
                                "steps (no start-up)",
            "silhouette": "baseline uses silhouette_score(sample_size=10000, random_state=0)",
            "startup_floor": "median wall and largest peak RSS of processes that only import pipelines.definitions",
            "incremental_share": "daily layout: wall of the run loading the last landing day as a new day / wall of "
                                 "the full refresh of every day before it (each its own process)",
        }}, indent=2), encoding="utf-8")
    sys.stderr.flush()
    print_tables(results, exponents, startup)
    if real_export:
        print(f"real export {real_export['export']} ({real_export['source_rows']:,} lines, persona run): "
              f"{real_export['wall_seconds']:.1f} s, peak RSS {real_export['peak_rss_mb']:.0f} MB")
    print(f"results: {out.relative_to(ROOT)}")
    for line in summary_lines(results):
        print(line)


def summary_lines(results: list[dict]) -> list[str]:
    """The last lines of `make bench`, one per size that ran: M's (the original targets), L's (issue 23: speed and
    memory against the pandas script, the night's share of a full refresh) and XL's (wall, peak RSS, and how the
    pandas script under the same memory ceiling ended)."""
    by_size = {r["size"]: r for r in results}
    lines = []
    if "M" in by_size:
        medium = by_size["M"]
        lines.append(f"speedup_vs_pandas={medium['speedup_vs_pandas']:.2f} "
                     f"peak_rss_mb={medium['pipeline']['peak_rss_mb']:.0f} "
                     f"baseline_peak_rss_mb={medium['baseline']['peak_rss_mb']:.0f} "
                     f"overhead_vs_floor={medium['overhead_vs_floor']:.2f}")
    if "L" in by_size:
        large = by_size["L"]
        lines.append(f"l_speedup_vs_pandas={large['speedup_vs_pandas']:.2f} "
                     f"l_peak_rss_mb={large['pipeline']['peak_rss_mb']:.0f} "
                     f"l_baseline_peak_rss_mb={large['baseline']['peak_rss_mb']:.0f} "
                     f"night_share={large['incremental']['incremental_share']:.3f}")
    if "XL" in by_size:
        huge = by_size["XL"]
        lines.append(f"xl_wall_s={huge['pipeline']['wall_seconds']:.0f} "
                     f"xl_peak_rss_mb={huge['pipeline']['peak_rss_mb']:.0f} "
                     f"xl_baseline={huge['baseline']['outcome']}")
    return lines


if __name__ == "__main__":
    main()
