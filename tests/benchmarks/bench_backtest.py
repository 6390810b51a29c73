"""A 10-year backtest of a synthetic universe through ``actors.system.backtest.run_backtest``.

``python -m tests.benchmarks.bench_backtest [--symbols 500] [--strategies a,b]``
replays 2016-11-21 .. 2026-11-20 through the real actor graph (the same path as
``tradingd backtest``) in this process and prints one JSON line: the wall time
of the whole ``run_backtest`` call (loading the market and its indicators
included), the replay alone, sessions per second and this process's peak RSS.

The trailing-drawdown kill switch is set out of reach (``risk.max_drawdown = 1``):
with the default 15 % it latches on this market in October 2019 and the remaining
seven years place no entry, so the run would time a system that has stopped trading.
Every other rule is the default. The switches that did trip are in ``switches``.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from actors.system.config import load_settings
from daemon.logging import configure_logging

START = dt.date(2016, 11, 21)
END = dt.date(2026, 11, 20)


def symbol_names(n: int) -> list[str]:
    return [f"S{i:05d}" for i in range(n)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def backtest(
    symbols: int, strategies: str | None, start: dt.date = START, *, drawdown: str = "1.0"
) -> dict[str, Any]:
    """Run one backtest in a scratch directory; the timings and the trade count."""
    # The universe comes in through the settings' environment layer:
    # ``apply_overrides(universe="S00000,...")`` stats the string as a path first,
    # which fails with ENAMETOOLONG for a few hundred symbols.
    env = {
        "TRADINGD_DATA__UNIVERSE__SYMBOLS": json.dumps(symbol_names(symbols)),
        "TRADINGD_RISK__MAX_DRAWDOWN": drawdown,
    }
    settings = apply_overrides(
        load_settings(None, environ=env), provider="synthetic", strategies=strategies
    )
    work = Path(tempfile.mkdtemp(prefix="td-bench-bt-"))
    try:
        t0 = time.perf_counter()
        result = anyio.run(lambda: run_backtest(settings, start=start, end=END, out=work / "out"))
        wall = time.perf_counter() - t0
        with (work / "out" / "trades.csv").open() as fh:
            dates = [line.split(",")[1] for line in list(fh)[1:]]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "symbols": symbols,
        "strategies": strategies or "all",
        "start": str(start),
        "end": str(END),
        "sessions": len(result.sessions),
        "wall_s": wall,
        "load_s": result.load_seconds,
        "replay_s": result.seconds,
        "sessions_per_s": len(result.sessions) / wall,
        "trades": len(dates),
        "last_fill": max(dates, default=None),
        "max_drawdown_switch": drawdown,
        "switches": result.switches,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--strategies", default=None, help="name,name (default: all four)")
    parser.add_argument("--years", type=float, default=10.0, help="shorter spans for profiling")
    parser.add_argument(
        "--max-drawdown", default="1.0", help="risk.max_drawdown (0.15: the default's)"
    )
    args = parser.parse_args()
    # as `tradingd backtest` does: warnings only, on stderr
    configure_logging(level="warning", json=False, stream=sys.stderr)
    start = END - dt.timedelta(days=round(365.25 * args.years)) + dt.timedelta(days=1)
    found = backtest(
        args.symbols, args.strategies, start=max(start, START), drawdown=args.max_drawdown
    )
    print(json.dumps(found))


if __name__ == "__main__":
    main()
