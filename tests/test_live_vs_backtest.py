"""A backtest and the live actor graph, driven through the same sessions, place the same orders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anyio
import pytest

from actors.data_feed.providers import make_provider
from actors.market.calendar import ExchangeCalendar
from actors.store import open_store
from actors.system.backtest import apply_overrides, run_backtest
from actors.system.config import Settings, load_settings
from actors.system.graph import simulated_graph
from daemon.clock import SimClock
from daemon.store import Store

CAL = ExchangeCalendar("XNYS")
SESSIONS = CAL.sessions_between(dt.date(2026, 6, 1), dt.date(2026, 6, 30))
SYMBOLS = "AAPL,MSFT,XOM,JPM,KO,PFE,NVDA,CAT,WMT,BAC,GS,COST"


async def live_orders(settings: Settings, db: Path) -> list[tuple[str, str, str, int]]:
    """Drive the daemon's own graph (live data feed, provider prices) on a SimClock."""
    graph = await simulated_graph(
        settings,
        store=db,
        calendar=CAL,
        clock=SimClock(CAL.session_open(SESSIONS[0]) - dt.timedelta(hours=1)),
        provider=make_provider(settings.data),
    )
    try:
        async with graph.running():
            for day in SESSIONS:
                await graph.run_session(day, f"live-{day:%Y%m%d}", timeout=600)
        return await intents(graph.store)
    finally:
        await graph.close()


async def intents(store: Store) -> list[tuple[str, str, str, int]]:
    rows = await store.fetchall(
        "SELECT intent_id, status, side, CAST(target_qty AS INTEGER) AS qty FROM order_intents"
        " ORDER BY intent_id"
    )
    return [(r["intent_id"], r["status"], r["side"], r["qty"]) for r in rows]


async def backtest_orders(settings: Settings, out: Path) -> list[tuple[str, str, str, int]]:
    await run_backtest(settings, start=SESSIONS[0], end=SESSIONS[-1], out=out)
    store = await open_store(out / "backtest.db", lock=False, readonly=True)
    try:
        return await intents(store)
    finally:
        await store.close()


@pytest.mark.parametrize(("sizing_base", "at_least"), [("portfolio", 5), ("strategy", 11)])
def test_backtest_and_live_graph_place_the_same_orders(
    tmp_path: Path, sizing_base: str, at_least: int
) -> None:
    """Over a month of sessions the two paths produce identical intents, sizes and outcomes."""
    # Sized on the portfolio (the default) positions are four times larger, so fewer fit.
    environ = {"TRADINGD_RISK__SIZING_BASE": sizing_base}
    settings = apply_overrides(load_settings(None, environ), universe=SYMBOLS)
    live = anyio.run(lambda: live_orders(settings, tmp_path / "live" / "tradingd.db"))
    replayed = anyio.run(lambda: backtest_orders(settings, tmp_path / "bt"))
    assert len(live) >= at_least
    assert live == replayed
