"""The peer: MA crossover over 10 years x 500 symbols, tradingd and backtrader on the same bars.

``python -m tests.benchmarks.bench_peer [--symbols 500] [--years 10]`` builds the
synthetic bars once (``SyntheticProvider().generate``, from the warm-up history
before the first session to the last) and feeds both engines in this process:

- tradingd: ``run_backtest`` with only ``ma_crossover`` enabled, its provider
  replaced by one serving the prebuilt frame (same bars, no regeneration);
- backtrader: ``bt.Cerebro`` with one ``bt.feeds.PandasData`` per symbol and a
  strategy with the same rules -- SMA20/SMA100 crossover with ADX(14) > 20 to
  enter, a cross down to exit, ATR(14) sizing risking 1% of the strategy's
  capital at a 3 ATR stop, capped by the capital -- run with
  ``runonce=True, preload=True, stdstats=False``.

Each wall time covers the engine's own work from the shared frame: building
its feeds or panel and indicators, and the replay. Prints one JSON line with
both times and ``ratio`` = backtrader / tradingd. Peak RSS is the process's
(both engines).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
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

CAPITAL = 25_000.0  # tradingd's default capital per strategy


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


def run_tradingd(frame: pd.DataFrame, symbols: int, start: dt.date) -> dict[str, Any]:
    env = {"TRADINGD_DATA__UNIVERSE__SYMBOLS": json.dumps(symbol_names(symbols))}
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
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "wall_s": wall,
        "load_s": result.load_seconds,
        "replay_s": result.seconds,
        "sessions": len(result.sessions),
        "fills": trades,
    }


def run_backtrader(frame: pd.DataFrame, start: dt.date) -> dict[str, Any]:
    import backtrader as bt

    first_trade = pd.Timestamp(start).date()

    class MaCross(bt.Strategy):  # type: ignore[misc]
        params = (
            ("fast", 20),
            ("slow", 100),
            ("adx_min", 20.0),
            ("risk", 0.01),
            ("stop_atr", 3.0),
            ("capital", CAPITAL),
        )

        def __init__(self) -> None:
            self.ind = {}
            for d in self.datas:
                fast = bt.indicators.SMA(d.close, period=self.p.fast)
                slow = bt.indicators.SMA(d.close, period=self.p.slow)
                self.ind[d] = (
                    bt.indicators.CrossOver(fast, slow),
                    bt.indicators.ADX(d, period=14),
                    bt.indicators.ATR(d, period=14),
                )
            self.orders = 0

        def next(self) -> None:
            if self.datas[0].datetime.date(0) < first_trade:
                return
            for d in self.datas:
                cross, adx, atr = self.ind[d]
                position = self.getposition(d).size
                if position and cross[0] < 0:
                    self.close(d)
                    self.orders += 1
                elif not position and cross[0] > 0 and adx[0] > self.p.adx_min:
                    price, a = d.close[0], atr[0]
                    if not (a > 0 and price > 0 and math.isfinite(a)):
                        continue
                    size = min(
                        math.floor(self.p.capital * self.p.risk / (self.p.stop_atr * a)),
                        math.floor(self.p.capital / price),
                    )
                    if size > 0:
                        self.buy(d, size=size)
                        self.orders += 1

    t0 = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    for symbol, bars in frame.groupby("symbol", sort=True):
        df = bars.set_index(pd.DatetimeIndex(bars["date"]))[
            ["open", "high", "low", "close", "volume"]
        ]
        cerebro.adddata(bt.feeds.PandasData(dataname=df, openinterest=None), name=str(symbol))
    cerebro.addstrategy(MaCross)
    cerebro.broker.setcash(100_000.0)
    feeds_s = time.perf_counter() - t0
    (strategy,) = cerebro.run(runonce=True, preload=True, stdstats=False)
    wall = time.perf_counter() - t0
    bars_total = len(frame)
    return {
        "wall_s": wall,
        "feeds_s": feeds_s,
        "orders": strategy.orders,
        "bars": bars_total,
        "bars_per_s": bars_total / wall,
    }


def measure(symbols: int, years: float) -> dict[str, Any]:
    start = max(START, END - dt.timedelta(days=round(365.25 * years)) + dt.timedelta(days=1))
    calendar = ExchangeCalendar("XNYS")
    calendar.load()
    sessions = calendar.sessions_between(start, END)
    history_days = load_settings(None, environ={}).data.history_days
    first = calendar.sessions_back(calendar.previous_session(sessions[0]), history_days)[0]
    t0 = time.perf_counter()
    frame = SyntheticProvider().generate(symbol_names(symbols), first, END)
    bars_s = time.perf_counter() - t0
    td = run_tradingd(frame, symbols, start)
    btr = run_backtrader(frame, start)
    return {
        "symbols": symbols,
        "start": str(start),
        "end": str(END),
        "bars": len(frame),
        "bars_build_s": bars_s,
        "tradingd": td,
        "backtrader": btr,
        "ratio": btr["wall_s"] / td["wall_s"],
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
