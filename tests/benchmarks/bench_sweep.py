"""A 16-combination sweep on Dask workers against the same 16 backtests one after another.

``python -m tests.benchmarks.bench_sweep [--symbols 100] [--years 5] [--workers 2]``
runs, over the last ``--years`` of the synthetic market (ending where
``bench_backtest`` ends) with ``--symbols`` symbols and all four strategies:

- **sequential**: the 16 combinations of ``strategies.ma_crossover.fast`` (10, 20,
  30, 40) x ``slow`` (50, 100, 150, 200) as 16 ``run_backtest`` calls in this
  process, each loading its own market, as 16 ``tradingd backtest`` runs would;
- **sweep**: the same grid through ``actors.system.research.sweep.run_sweep`` on a
  ``LocalCluster`` of ``--workers`` single-threaded worker processes (the default
  of ``tradingd sweep``), each worker loading the market once.

Prints one JSON line: both wall times (the sweep's with and without starting the
cluster), the speed-up sequential / sweep and its efficiency per worker, the CPU
seconds each side used (the workers' own, read from them before they stop: a
speed-up short of linear while another process shares the cores shows there), and
whether all 16 results are identical between the two (they must be).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from actors.system.backtest import apply_overrides, run_backtest
from actors.system.config import Settings, load_settings, with_values
from actors.system.research.cluster import dask_client
from actors.system.research.grid import combinations, parse_params
from actors.system.research.sweep import Plan, run_sweep
from actors.system.research.tasks import METRICS
from daemon.logging import configure_logging
from tests.benchmarks.bench_backtest import END, symbol_names

PARAMS = ["strategies.ma_crossover.fast=10:40:10", "strategies.ma_crossover.slow=50:200:50"]


def settings_for(symbols: int) -> Settings:
    env = {"TRADINGD_DATA__UNIVERSE__SYMBOLS": json.dumps(symbol_names(symbols))}
    return apply_overrides(load_settings(None, environ=env), provider="synthetic")


def sequential(settings: Settings, start: dt.date, work: Path) -> dict[str, Any]:
    """The 16 backtests one after another; their metrics by combination, wall and CPU time."""
    metrics: list[list[Any]] = []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i, combo in enumerate(combinations(parse_params(PARAMS))):
        out = work / f"seq-{i:02d}"
        s = with_values(settings, combo)
        anyio.run(functools.partial(run_backtest, s, start=start, end=END, out=out))
        stats = json.loads((out / "stats.json").read_text())
        metrics.append([stats[m] for m in METRICS])
        print(f"  sequential {i + 1}/16", file=sys.stderr, flush=True)
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - cpu0,
        "metrics": metrics,
    }


def sweep(settings: Settings, start: dt.date, work: Path, workers: int) -> dict[str, Any]:
    """The same grid on a LocalCluster; wall time with and without the cluster's start."""
    plan = Plan(settings, start, END, parse_params(PARAMS), work / "sweep")
    t0 = time.perf_counter()
    with dask_client(workers=workers, scheduler=None) as client:
        started = time.perf_counter()
        result = run_sweep(plan, client, stream=sys.stderr)
        swept = time.perf_counter() - started
        usage = client.run(_cpu_seconds)
    return {
        "wall_s": time.perf_counter() - t0,
        "sweep_s": swept,
        "cluster_start_s": started - t0,
        "worker_cpu_s": sorted(usage.values()),
        "metrics": [[r.outcome.metrics.get(m) for m in METRICS] for r in result.rows],
        "errors": [r.outcome.error for r in result.rows if r.outcome.error],
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    configure_logging(level="warning", json=False, stream=sys.stderr)
    start = END - dt.timedelta(days=round(365.25 * args.years)) + dt.timedelta(days=1)
    settings = settings_for(args.symbols)
    work = Path(tempfile.mkdtemp(prefix="td-bench-sweep-"))
    try:
        seq = sequential(settings, start, work)
        par = sweep(settings, start, work, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    identical = sum(a == b for a, b in zip(seq["metrics"], par["metrics"], strict=False))
    speedup = seq["wall_s"] / par["wall_s"]
    print(
        json.dumps(
            {
                "symbols": args.symbols,
                "years": args.years,
                "start": str(start),
                "end": str(END),
                "combinations": len(seq["metrics"]),
                "workers": args.workers,
                "sequential_s": seq["wall_s"],
                "sequential_cpu_s": seq["cpu_s"],
                "sweep_s": par["wall_s"],
                "sweep_without_start_s": par["sweep_s"],
                "cluster_start_s": par["cluster_start_s"],
                "worker_cpu_s": par["worker_cpu_s"],
                "speedup": speedup,
                "efficiency": speedup / args.workers,
                "identical": identical,
                "errors": par["errors"],
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            }
        )
    )


if __name__ == "__main__":
    main()
