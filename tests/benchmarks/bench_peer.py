"""The peer: one rule, the same bars, tradingd against backtrader and vectorbt.

``python -m tests.benchmarks.bench_peer [--symbols 500] [--years 10]`` builds the
synthetic bars once (``SyntheticProvider().generate``, from the warm-up history
before the first session to the last) and runs the rule of ``peer_rule`` (SMA20 /
SMA100 cross with the ADX gate, ATR sizing, a resting 3 ATR stop, next-open fills,
the same slippage and commission) in three engines in this process:

- tradingd: ``run_backtest`` through the real actor graph with only
  ``ma_crossover`` enabled and ``peer_rule.NON_BINDING`` settings, so no risk gate
  refuses or resizes an entry (the run's rejections and parked signals are
  counted to show it); its provider serves the prebuilt frame;
- backtrader (``peer_backtrader``): its own feeds, indicators, broker and stops;
- vectorbt (``peer_vectorbt``): the same rule as arrays and ``from_signals``,
  timed cold (the first call in the process, numba compiling) and warm.

Each wall time covers the engine's own work from the shared frame. The fills are
compared as (symbol, side, session, shares); tradingd's are its simulated broker's
(``sim_orders``: the session an order filled in; ``trades.csv`` dates a resting
stop's fill by the cycle that booked it, the next session). Where they differ, the
usual cause is a close where SMA20 equals SMA100 exactly (closes are whole cents):
each engine's rounding then decides the cross, so the differing fills in a symbol
with such a tie are counted (``peer_rule.sma_ties``). Prints one JSON line: the
times, ``ratio`` = backtrader / tradingd, the agreements and the target (>= 10x
with >= 99 % of fills identical).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import pandas as pd

import actors.system.backtest as backtest_mod
from actors.data_feed.providers import clip_range
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.system.backtest import apply_overrides, run_backtest
from actors.system.config import load_settings
from daemon.logging import configure_logging
from tests.benchmarks.bench_backtest import END, START, symbol_names
from tests.benchmarks.peer_backtrader import run_backtrader
from tests.benchmarks.peer_rule import (
    NON_BINDING,
    Fill,
    compare_fills,
    explained_by_ties,
    settings_environ,
    sma_ties,
)

TARGET_RATIO = 10.0
TARGET_AGREE_PCT = 99.0


class FrameProvider:
    """A ``BarProvider`` serving a prebuilt frame; the VIX-like index from the synthetic one."""

    name = "synthetic"

    def __init__(self, frame: pd.DataFrame, inner: SyntheticProvider) -> None:
        self._frame = frame
        self._inner = inner

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        wanted = set(symbols)
        frame = clip_range(self._frame, start, end)
        return frame[frame["symbol"].isin(wanted)].reset_index(drop=True)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series:
        return await self._inner.volatility_index(start, end)


def _read_run(db: Path) -> dict[str, Any]:
    """The broker's fills of a finished run, and what its risk layer refused or parked."""
    with sqlite3.connect(db) as conn:
        fills = [
            Fill(symbol, side, dt.date.fromisoformat(day), int(qty))
            for symbol, side, day, qty in conn.execute(
                "SELECT symbol, side, trade_date, filled_qty FROM sim_orders"
                " WHERE status = 'filled' ORDER BY trade_date, symbol, side"
            )
        ]
        rejections = dict(
            conn.execute(
                "SELECT stage || ':' || reason_code, COUNT(*) FROM signal_rejections GROUP BY 1"
            ).fetchall()
        )
        (parked,) = conn.execute("SELECT COUNT(*) FROM pending_signals").fetchone()
    return {"fill_list": fills, "rejections": rejections, "parked": int(parked)}


def run_tradingd(frame: pd.DataFrame, symbols: int, start: dt.date) -> dict[str, Any]:
    env = {
        "TRADINGD_DATA__UNIVERSE__SYMBOLS": json.dumps(symbol_names(symbols)),
        **settings_environ(NON_BINDING),
    }
    settings = apply_overrides(
        load_settings(None, environ=env), provider="synthetic", strategies="ma_crossover"
    )
    provider = FrameProvider(frame, SyntheticProvider())
    work = Path(tempfile.mkdtemp(prefix="td-bench-peer-"))
    try:
        t0 = time.perf_counter()
        with mock.patch.object(backtest_mod, "make_provider", return_value=provider):
            result = anyio.run(
                lambda: run_backtest(settings, start=start, end=END, out=work / "out")
            )
        wall = time.perf_counter() - t0
        with (work / "out" / "trades.csv").open() as fh:
            trades = sum(1 for _ in fh) - 1
        run = _read_run(work / "out" / "backtest.db")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "wall_s": wall,
        "load_s": result.load_seconds,
        "replay_s": result.seconds,
        "sessions": len(result.sessions),
        "fills": len(run["fill_list"]),
        "trades_csv_rows": trades,
        **run,
    }


def with_cpu(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s result with the process CPU time it took (all threads): ``cpu_s``.

    Beside the wall time, a figure that other work on the machine hardly moves.
    """
    started = time.process_time()
    result = run()
    return {**result, "cpu_s": time.process_time() - started}


def run_vectorbt_twice(frame: pd.DataFrame, first_signal: dt.date) -> dict[str, Any]:
    """vectorbt cold (numba compiles on the first call) and warm; an error if it is missing."""
    try:
        from tests.benchmarks.peer_vectorbt import run_vectorbt

        cold = with_cpu(lambda: run_vectorbt(frame, first_signal))
        warm = with_cpu(lambda: run_vectorbt(frame, first_signal))
    except ImportError as exc:
        return {"error": f"vectorbt is not installed ({exc}); pip install -e '.[bench]'"}
    return {**warm, "cold_wall_s": cold["wall_s"], "cold_cpu_s": cold["cpu_s"]}


def _agreement(
    td: dict[str, Any], peer: dict[str, Any], ties: dict[str, list[dt.date]]
) -> dict[str, Any]:
    """The fills compared, and how many differing ones follow an exact SMA tie."""
    if "error" in peer:
        return {"error": peer["error"]}
    agreement = compare_fills(td["fill_list"], peer["fill_list"])
    differing = {f.symbol for f in (*agreement.only_ours, *agreement.only_theirs)}
    return {
        **agreement.summary(),
        "explained_by_sma_ties": explained_by_ties(agreement, ties),
        "sma_ties": {s: [str(d) for d in ties[s]] for s in sorted(differing & set(ties))},
    }


def _public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "fill_list"}


def measure(symbols: int, years: float) -> dict[str, Any]:
    start = max(START, END - dt.timedelta(days=round(365.25 * years)) + dt.timedelta(days=1))
    calendar = ExchangeCalendar("XNYS")
    calendar.load()
    sessions = calendar.sessions_between(start, END)
    first_signal = calendar.previous_session(sessions[0])
    history_days = load_settings(None, environ={}).data.history_days
    first = calendar.sessions_back(first_signal, history_days)[0]
    t0 = time.perf_counter()
    frame = SyntheticProvider().generate(symbol_names(symbols), first, END)
    bars_s = time.perf_counter() - t0
    td = with_cpu(lambda: run_tradingd(frame, symbols, start))
    btr = with_cpu(lambda: run_backtrader(frame, first_signal))
    vbt = run_vectorbt_twice(frame, first_signal)
    ties = sma_ties(frame, first_signal)
    bt_agree, vbt_agree = _agreement(td, btr, ties), _agreement(td, vbt, ties)
    ratio = btr["wall_s"] / td["wall_s"]
    return {
        "symbols": symbols,
        "start": str(start),
        "end": str(END),
        "bars": len(frame),
        "bars_build_s": bars_s,
        "non_binding": dict(NON_BINDING),
        "tradingd": _public(td),
        "backtrader": _public(btr),
        "vectorbt": _public(vbt),
        "ratio": ratio,
        "cpu_ratio": btr["cpu_s"] / td["cpu_s"],
        "agree_backtrader": bt_agree,
        "agree_vectorbt": vbt_agree,
        "sma_tie_sessions": sum(len(v) for v in ties.values()),
        "target": f">= {TARGET_RATIO:g}x backtrader, >= {TARGET_AGREE_PCT:g}% of fills identical",
        "target_met": ratio >= TARGET_RATIO and bt_agree["percent"] >= TARGET_AGREE_PCT,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=float, default=10.0)
    args = parser.parse_args()
    configure_logging(level="warning", json=False, stream=sys.stderr)
    print(json.dumps(measure(args.symbols, args.years)))


if __name__ == "__main__":
    main()
