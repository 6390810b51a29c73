"""`make bench`: run every benchmark, print one table, write bench-results/bench.json.

Each measurement runs in its own process (``python -m tests.benchmarks.bench_<name>``,
one JSON line on stdout) so each peak RSS belongs to that measurement alone,
and each has a timeout. Targets on 2 cores:

- compute (issue 3): indicators + all four strategies, 5,000 symbols x 300 days < 1 s;
- one daily cycle through ``tradingd run --once``: 36 symbols < 0.3 s and < 250 MB,
  5,000 symbols < 1 s and < 600 MB (the cycle's own ``seconds``; peak RSS of the process);
- a 10-year backtest of 500 symbols, all four strategies, the full risk layer: < 10 s;
- the peer (the MA-crossover rule alone, same bars, costs and fills; ``bench_peer``): tradingd
  >= 10x faster than backtrader with >= 99 % of fills identical; vectorbt beside it;
- ``status`` over the control socket while a 5,000-symbol cycle runs: p99 < 20 ms;
- start-up to READY=1: median of 5 < 1 s;
- a 16-combination sweep, 5 years x 100 symbols, on 2 Dask workers against the same 16
  backtests one after another (``bench_sweep``): close to linear, >= 1.7x on 2 workers,
  with all 16 results identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = (36, 500, 5_000)
TARGET_5000_S = 1.0

Row = tuple[str, str, str, bool | None]  # benchmark, measured, target, met (None: no target)


def run_module(name: str, *args: str, timeout: float) -> dict[str, Any]:
    """``python -m tests.benchmarks.<name> args``: its last stdout line as JSON, or an error."""
    started = time.perf_counter()
    try:
        out = subprocess.run(
            [sys.executable, "-m", f"tests.benchmarks.{name}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    elapsed = time.perf_counter() - started
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {out.returncode}: {' | '.join(tail)}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["bench_process_s"] = elapsed
    print(f"  {name} {' '.join(args)}: {elapsed:.1f} s", file=sys.stderr, flush=True)
    return result


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def compute_rows(r: dict[str, Any]) -> list[Row]:
    measured = (
        f"bars {r['bars_s']:.3f} s, indicators {r['indicators_s']:.3f} s,"
        f" strategies {r['strategies_s']:.3f} s = {r['cycle_compute_s']:.3f} s;"
        f" {r['peak_rss_mb']:.0f} MB"
    )
    ok = r["cycle_compute_s"] < TARGET_5000_S if r["symbols"] == 5_000 else None
    target = f"< {TARGET_5000_S:g} s" if ok is not None else "-"
    rows: list[Row] = [(f"compute {r['symbols']} sym x {r['days']} d", measured, target, ok)]
    rows.append(
        (
            f"  ML fit {r['symbols']} sym",
            f"{r['ml_fit_s']:.3f} s on {r['ml_fit_rows']} rows",
            "-",
            None,
        )
    )
    return rows


def cycle_rows(r: dict[str, Any]) -> list[Row]:
    n = r["symbols"]
    limits = {36: (0.3, 250.0), 5_000: (1.0, 600.0)}.get(n)
    measured = (
        f"cycle {r['cycle_s']:.3f} s ({r['cycle_status']}, {r['orders']} orders);"
        f" process {r['process_wall_s']:.2f} s, peak {r['peak_rss_mb']:.0f} MB"
    )
    if limits is None:
        return [(f"cycle {n} sym (run --once)", measured, "-", None)]
    secs, mb = limits
    nxt = r["next_day"]
    again = (
        f"cycle {nxt['cycle_s']:.3f} s ({nxt['cycle_status']}, {nxt['orders']} orders);"
        f" process {nxt['process_wall_s']:.2f} s, peak {nxt['peak_rss_mb']:.0f} MB"
    )
    return [
        (f"cycle {n} sym: cycle time (model fitted)", measured, f"< {secs:g} s",
         r["cycle_s"] < secs),
        (f"cycle {n} sym: next day (model reused)", again, f"< {secs:g} s",
         nxt["cycle_s"] < secs),
        (f"cycle {n} sym: peak RSS", f"{max(r['peak_rss_mb'], nxt['peak_rss_mb']):.0f} MB",
         f"< {mb:g} MB", max(r["peak_rss_mb"], nxt["peak_rss_mb"]) < mb),
    ]  # fmt: skip


def backtest_rows(r: dict[str, Any]) -> list[Row]:
    measured = (
        f"{r['wall_s']:.1f} s ({r['sessions']} sessions, {r['sessions_per_s']:.1f} sessions/s;"
        f" load {r['load_s']:.1f} s, replay {r['replay_s']:.1f} s); {r['trades']} fills,"
        f" the last {r['last_fill']}; {r['peak_rss_mb']:.0f} MB; max_drawdown switch"
        f" {r['max_drawdown_switch']}; {len(r['switches'])} switch trip(s)"
    )
    return [(f"backtest 10 y x {r['symbols']} sym, 4 strategies", measured, "< 10 s",
             r["wall_s"] < 10.0)]  # fmt: skip


def _agree(a: dict[str, Any]) -> str:
    if "error" in a:
        return f"fills not compared: {a['error']}"
    shown = f"{a['agree']}/{a['total']} fills identical ({a['percent']:.2f}%)"
    differing = a["only_tradingd"] + a["only_peer"]
    if differing:
        shown += (
            f", {a['explained_by_sma_ties']} of the {differing} unmatched after an exact SMA tie"
        )
    return shown


def peer_rows(r: dict[str, Any]) -> list[Row]:
    td, btr, vbt = r["tradingd"], r["backtrader"], r["vectorbt"]
    span = f"{r['symbols']} sym {r['start'][:4]}-{r['end'][:4]}"
    refused = sum(td["rejections"].values()) + td["parked"]
    rows: list[Row] = [
        (
            f"peer: tradingd ma_crossover only, {span}",
            f"{td['wall_s']:.1f} s (load {td['load_s']:.1f}, replay {td['replay_s']:.1f};"
            f" CPU {td['cpu_s']:.1f} s);"
            f" {td['fills']} fills; {refused} entries refused or parked by the risk layer",
            "-",
            None,
        ),
        (
            "peer: backtrader, same rule and bars",
            f"{btr['wall_s']:.1f} s ({btr['bars_per_s']:.0f} bars/s; CPU {btr['cpu_s']:.1f} s);"
            f" {btr['fills']} fills;"
            f" {_agree(r['agree_backtrader'])}",
            "-",
            None,
        ),
    ]
    if "error" in vbt:
        rows.append(("peer: vectorbt, same rule and bars", f"not run: {vbt['error']}", "-", None))
    else:
        rows.append(
            (
                "peer: vectorbt, same rule and bars",
                f"{vbt['wall_s']:.2f} s warm ({vbt['cold_wall_s']:.1f} s cold, numba compiling);"
                f" {vbt['fills']} fills; {_agree(r['agree_vectorbt'])};"
                f" {td['wall_s'] / vbt['wall_s']:.0f}x faster than tradingd",
                "-",
                None,
            )
        )
    agree = r["agree_backtrader"]
    pct = agree.get("percent", 0.0)
    rows.append(
        (
            "peer: MA-only tradingd vs backtrader",
            f"backtrader / tradingd {r['ratio']:.2f}x (CPU time {r['cpu_ratio']:.2f}x);"
            f" {_agree(agree)};"
            f" process peak {r['peak_rss_mb']:.0f} MB",
            ">= 10x, >= 99% fills identical",
            r["ratio"] >= 10.0 and pct >= 99.0,
        )
    )
    return rows


def control_rows(r: dict[str, Any]) -> list[Row]:
    measured = (
        f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms over"
        f" {r['requests_overlapping']} requests ({r['saw_running']} saw cycle.running,"
        f" {r['errors']} errors, {r['cycles']} cycle(s)); idle p99 {r['idle_p99_ms']:.1f} ms;"
        f" {r.get('over_20ms', '?')} >= 20 ms; parts timed out {r.get('parts_timed_out', {})}"
    )
    return [(f"status during {r['symbols']}-sym cycle", measured, "p99 < 20 ms",
             r["p99_ms"] < 20.0)]  # fmt: skip


def startup_rows(r: dict[str, Any]) -> list[Row]:
    runs = ", ".join(f"{x:.2f}" for x in r["all_s"])
    return [("start-up to READY=1", f"median {r['median_s']:.2f} s ({runs})", "< 1 s",
             r["median_s"] < 1.0)]  # fmt: skip


SWEEP_TARGET = 1.7


def sweep_rows(r: dict[str, Any]) -> list[Row]:
    cpu = "+".join(f"{c:.0f}" for c in r["worker_cpu_s"])
    measured = (
        f"sweep {r['sweep_s']:.1f} s ({r['cluster_start_s']:.1f} s starting the cluster;"
        f" workers' CPU {cpu} s) vs sequential {r['sequential_s']:.1f} s"
        f" (CPU {r['sequential_cpu_s']:.0f} s): {r['speedup']:.2f}x,"
        f" {r['efficiency']:.0%} per worker; {r['identical']}/{r['combinations']} results"
        " identical"
    )
    ok = r["speedup"] >= SWEEP_TARGET and r["identical"] == r["combinations"]
    return [
        (
            f"sweep {r['combinations']} combos {r['years']:g} y x {r['symbols']} sym,"
            f" {r['workers']} workers",
            measured,
            f">= {SWEEP_TARGET:g}x, all identical",
            ok,
        )
    ]


def main() -> int:
    plan: list[tuple[str, str, list[str], float, Callable[[dict[str, Any]], list[Row]]]] = [
        *[
            (f"compute_{n}", "bench_strategies", ["--symbols", str(n)], 900, compute_rows)
            for n in SIZES
        ],
        *[(f"cycle_{n}", "bench_cycle", ["--symbols", str(n)], 900, cycle_rows) for n in SIZES],
        ("startup", "bench_startup", ["--runs", "5"], 900, startup_rows),
        ("control", "bench_control", ["--symbols", "5000", "--requests", "1000"], 1200,
         control_rows),
        ("backtest", "bench_backtest", ["--symbols", "500"], 2400, backtest_rows),
        ("peer", "bench_peer", ["--symbols", "500"], 3600, peer_rows),
        ("sweep", "bench_sweep", ["--symbols", "100", "--years", "5", "--workers", "2"], 3600,
         sweep_rows),
    ]  # fmt: skip
    results: dict[str, Any] = {}
    rows: list[Row] = []
    for key, module, args, timeout, to_rows in plan:
        r = run_module(module, *args, timeout=timeout)
        results[key] = r
        if "error" in r:
            rows.append((key, f"ERROR {r['error']}"[:160], "-", False))
        else:
            rows.extend(to_rows(r))

    widths = [max(len(str(row[i])) for row in [*rows, ("benchmark", "measured", "target", "")])
              for i in range(3)]  # fmt: skip
    header = (
        f"{'benchmark':<{widths[0]}}  {'measured':<{widths[1]}}  {'target':<{widths[2]}}  result"
    )
    print(header)
    print("-" * len(header))
    table = []
    for name, measured, target, ok in rows:
        print(f"{name:<{widths[0]}}  {measured:<{widths[1]}}  {target:<{widths[2]}}  {verdict(ok)}")
        table.append({"benchmark": name, "measured": measured, "target": target,
                      "result": verdict(ok)})  # fmt: skip
    out_dir = Path(os.environ.get("BENCH_OUT", "bench-results"))
    out_dir.mkdir(exist_ok=True)
    payload = {
        "strategies": [results[f"compute_{n}"] for n in SIZES],  # the issue-3 rows, as before
        "table": table,
        "results": results,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    (out_dir / "bench.json").write_text(json.dumps(payload, indent=2))
    print(f"\nwritten: {out_dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
