"""What a finished backtest leaves beside ``backtest.db``: ``stats.json`` and ``report.html``.

``write_stats`` runs while the run's store is still open: it reads the trade ledger,
the strategies' book and their credited corporate-action cash, builds the benchmark
from the market (or the provider, for a benchmark symbol outside the universe) and
hands it all to the pure :func:`actors.reports.backtest_stats.backtest_stats`.
``write_report`` renders ``report.html`` afterwards from those same inputs.

The benchmark is ``[backtest] benchmark``: ``SPY`` or ``equal_weight``. An operator
asking for SPY on data without SPY bars (a CSV folder of their own symbols) gets the
equal weight of the universe instead, and the report and ``stats.json`` say so
(``benchmark.note``): a missing benchmark is no reason to throw a run away, nor to
show a flat line labelled SPY.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import anyio
import pandas as pd

from actors.data_feed.providers import BarProvider
from actors.data_feed.universe import load_universe
from actors.reports.backtest_charts import equity_vs_benchmark_png, exposure_png
from actors.reports.backtest_page import BacktestPage, closed_trade_rows, render_page, summary_text
from actors.reports.backtest_stats import (
    EQUAL_WEIGHT,
    SPY,
    BacktestInputs,
    Benchmark,
    OpenPosition,
    backtest_stats,
    buy_and_hold,
    equity_curve,
    gross_exposure_series,
    lot_adjustments,
)
from actors.store import open_store
from actors.store.corporate_actions import CorporateActionStore
from actors.store.orders import OrderStore
from actors.store.signals import SignalStore
from actors.system.config import Settings
from daemon.store import Store

if TYPE_CHECKING:
    from actors.data_feed.market import PrecomputedMarket
    from actors.system.backtest import BacktestResult

STATS_FILE = "stats.json"
REPORT_FILE = "report.html"


async def write_stats(
    store: Store,
    settings: Settings,
    result: BacktestResult,
    *,
    provider: BarProvider,
    market: PrecomputedMarket,
    base_session: dt.date,
) -> dict[str, Any]:
    """Compute the run's statistics, keep them (and their inputs) on ``result``, and
    write ``stats.json``; return them."""
    orders = OrderStore(store)
    ledger = await orders.trade_ledger()
    positions = [
        OpenPosition(
            strategy=str(p["strategy"]),
            symbol=str(p["symbol"]),
            shares=float(p["shares"]),
            avg_price=float(p["avg_price"] or 0.0),
        )
        for p in await orders.positions()
        if float(p["shares"]) != 0.0
    ]
    benchmark = await benchmark_for(settings, provider, market, base_session, result.sessions[-1])
    inputs = BacktestInputs(
        initial_equity=settings.broker.initial_cash,
        base_session=base_session,
        closes=result.closes,
        ledger=ledger,
        other_cash=await orders.corporate_cash_by_strategy(),
        open_positions=positions,
        marks=result.marks,
        benchmark=benchmark,
        strategies=settings.strategies.enabled_names(),
        adjustments=lot_adjustments(
            [
                r.action
                for r in await CorporateActionStore(store).recorded()
                if r.applied_at is not None
            ]
        ),
    )

    def compute() -> dict[str, Any]:
        stats = {**backtest_stats(inputs), "kill_switches": list(result.switches)}
        (result.out / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n")
        return stats

    result.inputs = inputs
    result.stats = await anyio.to_thread.run_sync(compute)
    return result.stats


async def benchmark_for(
    settings: Settings,
    provider: BarProvider,
    market: PrecomputedMarket,
    base_session: dt.date,
    last: dt.date,
) -> Benchmark:
    """The ``[backtest] benchmark`` curve over ``[base_session, last]`` from the capital."""
    capital = settings.broker.initial_cash
    wanted = settings.backtest.benchmark
    if wanted == SPY:
        closes = await _symbol_closes(provider, market, SPY, base_session, last)
        values, held = buy_and_hold(closes, capital, base_session)
        if held:
            return Benchmark(SPY, held, values)
        note = (
            f"no SPY close on {base_session} in the {market.provider} data:"
            " the universe's equal weight instead (backtest.benchmark)"
        )
    else:
        note = None
    universe = await anyio.to_thread.run_sync(load_universe, settings.data.universe)
    closes = _panel_closes(market, list(universe.symbols))
    values, held = buy_and_hold(closes, capital, base_session)
    return Benchmark(EQUAL_WEIGHT, held, values, note)


def _panel_closes(market: PrecomputedMarket, symbols: list[str]) -> pd.DataFrame:
    panel = market.panel
    have = [s for s in symbols if s in panel.symbols]
    frame = pd.DataFrame(panel.close, index=panel.dates, columns=list(panel.symbols))
    return frame[have]


async def _symbol_closes(
    provider: BarProvider,
    market: PrecomputedMarket,
    symbol: str,
    first: dt.date,
    last: dt.date,
) -> pd.DataFrame:
    """``symbol``'s closes: from the market when it trades it, else from the provider."""
    if symbol in market.panel.symbols:
        return _panel_closes(market, [symbol])
    bars = await provider.fetch([symbol], first, last)
    if bars.empty:
        return pd.DataFrame()
    bars = bars[bars["symbol"] == symbol]
    index = pd.DatetimeIndex(pd.to_datetime(bars["date"]))
    if index.tz is not None:
        index = index.tz_localize(None)
    index = index.normalize()
    return pd.DataFrame({symbol: bars["close"].to_numpy(dtype=float)}, index=index)


async def write_report(result: BacktestResult) -> str:
    """Write ``report.html`` (charts, figures, attribution, monthly returns, funnel) beside
    ``stats.json``; return the summary for the terminal."""
    if result.inputs is None:
        raise ValueError("write_report needs a finished run (run_backtest keeps its inputs)")
    store = await open_store(result.out / "backtest.db", lock=False, readonly=True)
    try:
        funnel = await SignalStore(store).funnel_totals()
    finally:
        await store.close()
    inputs = result.inputs

    def render() -> str:
        equity = equity_curve(inputs.initial_equity, inputs.base_session, inputs.closes)
        trades = inputs.closed_trades()
        page = BacktestPage(
            first=result.sessions[0],
            last=result.sessions[-1],
            seconds=result.seconds,
            load_seconds=result.load_seconds,
            stats=result.stats,
            equity_png=equity_vs_benchmark_png(
                equity, inputs.benchmark.values, benchmark_label=_label(inputs)
            ),
            exposure_png=exposure_png(gross_exposure_series(inputs.closes)),
            model=result.model,
            switches=result.switches,
            funnel=funnel,
            trade_rows=closed_trade_rows(equity, trades, result.sessions),
        )
        (result.out / REPORT_FILE).write_text(render_page(page), encoding="utf-8")
        return summary_text(page, str(result.out))

    return await anyio.to_thread.run_sync(render)


def _label(inputs: BacktestInputs) -> str:
    benchmark = inputs.benchmark
    return "SPY" if benchmark.kind == SPY else f"equal weight ({len(benchmark.symbols)} symbols)"
