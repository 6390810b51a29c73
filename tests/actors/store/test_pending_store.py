"""Pending signals: parked once per strategy and symbol, live for their window, then expired."""

from __future__ import annotations

import datetime as dt

from actors.market.calendar import ExchangeCalendar
from actors.messages import Signal, SignalAction
from actors.risk.pending import expiry_asof
from actors.store.pending import PendingStore
from actors.store.signals import SignalStore
from daemon.store import Store

CAL = ExchangeCalendar("XNYS")
DAY0 = dt.date(2026, 11, 20)  # Friday; Thanksgiving (11-26) inside the window
AT = dt.datetime(2026, 11, 20, 15, tzinfo=dt.UTC)
SIG = Signal("momentum", "AAPL", SignalAction.BUY, 0.8, 190.0, 3.0, 10, "mom 9% > 8%")


async def test_window_counts_trading_sessions_and_then_expires(store: Store) -> None:
    """A signal parked on day 0 is live on the next 3 sessions and expired after."""
    sid = await SignalStore(store).ensure_strategy("momentum", "m", 25_000.0)
    sessions = CAL.sessions_between(DAY0, DAY0 + dt.timedelta(days=14))
    until = expiry_asof(DAY0, sessions, 3)
    assert until == dt.date(2026, 11, 25)  # Mon 23, Tue 24, Wed 25
    pending = PendingStore(store)
    await pending.park(sid, SIG, "heat_limit", asof=DAY0, expires_asof=until, at=AT)
    await pending.park(sid, SIG, "insufficient_cash", asof=DAY0, expires_asof=until, at=AT)
    assert await pending.live(DAY0) == []  # not re-evaluated on the day it was parked
    for day in (dt.date(2026, 11, 23), dt.date(2026, 11, 24), until):
        live = await pending.live(day)
        assert [(p.symbol, p.signal) for p in live] == [("AAPL", SIG)]
    assert live[0].retry_count == 1
    assert live[0].blocked_reason == "insufficient_cash"
    assert await pending.expire(dt.date(2026, 11, 27)) == 1
    assert await pending.live(dt.date(2026, 11, 27)) == []
    rows = await pending.all()
    assert [r["status"] for r in rows] == ["EXPIRED"]


async def test_resolved_signal_leaves_the_queue(store: Store) -> None:
    """A pending signal that finally executed is closed and no longer live."""
    sid = await SignalStore(store).ensure_strategy("momentum", "m", 25_000.0)
    pending = PendingStore(store)
    await pending.park(sid, SIG, "heat_limit", asof=DAY0, expires_asof=dt.date(2026, 11, 25), at=AT)
    (row,) = await pending.live(dt.date(2026, 11, 23))
    await pending.resolve(row.id, "EXECUTED", AT)
    assert await pending.live(dt.date(2026, 11, 24)) == []
