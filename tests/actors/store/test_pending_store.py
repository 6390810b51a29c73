"""Pending signals: parked once per strategy and symbol, live for their window, then expired."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from actors.market.calendar import ExchangeCalendar
from actors.messages import Signal, SignalAction
from actors.risk.pending import expiry_asof
from actors.store import open_store
from actors.store.pending import (
    EXPIRE_SQL,
    LIVE_SQL,
    PENDING_KEYS_SQL,
    Parked,
    PendingStore,
    plan_parking,
)
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


def _sig(symbol: str, reason: str = "") -> Signal:
    return Signal("momentum", symbol, SignalAction.BUY, 0.8, 190.0, 3.0, 10, reason or symbol)


def test_plan_parking_retries_pending_rows_and_folds_repeats_into_new_ones() -> None:
    """A pending key is retried by id; a new key gets one row that counts its repeats."""
    aapl, msft = Parked(1, _sig("AAPL"), "heat"), Parked(1, _sig("MSFT"), "heat")
    goog = Parked(2, _sig("GOOG"), "heat")
    again = Parked(1, _sig("MSFT", "second"), "cash")
    new, retries = plan_parking([aapl, msft, goog, again, aapl], {(1, "AAPL"): 7})
    assert new == [(msft, "cash", 1), (goog, "heat", 0)]
    assert retries == [(7, "heat"), (7, "heat")]


async def _rows(store: Store) -> list[tuple[object, ...]]:
    return [tuple(r) for r in await store.fetchall("SELECT * FROM pending_signals ORDER BY id")]


async def test_park_many_writes_what_parking_one_at_a_time_writes(
    store: Store, tmp_path: Path
) -> None:
    """A batch with a pending key, new keys and a repeat leaves the rows one-by-one parking does."""
    other = await open_store(tmp_path / "other.db")
    try:
        batch = [
            Parked(1, _sig("AAPL"), "insufficient_cash"),
            Parked(1, _sig("MSFT"), "heat_limit"),
            Parked(2, _sig("MSFT"), "heat_limit"),
            Parked(1, _sig("MSFT", "again"), "insufficient_cash"),
        ]
        later = AT + dt.timedelta(days=3)
        until = dt.date(2026, 11, 27)
        for s in (store, other):
            signals = SignalStore(s)
            ids = [await signals.ensure_strategy(n, n, 25_000.0) for n in ("momentum", "ma")]
            assert ids == [1, 2]
            await PendingStore(s).park(
                1, _sig("AAPL"), "heat_limit", asof=DAY0, expires_asof=until, at=AT
            )
        await PendingStore(store).park_many(
            batch, asof=dt.date(2026, 11, 23), expires_asof=until, at=later
        )
        for p in batch:
            await PendingStore(other).park(
                p.strategy_id,
                p.signal,
                p.reason,
                asof=dt.date(2026, 11, 23),
                expires_asof=until,
                at=later,
            )
        assert await _rows(store) == await _rows(other)
        assert [(r["symbol"], r["retry_count"]) for r in await PendingStore(store).all()] == [
            ("AAPL", 1),
            ("MSFT", 1),
            ("MSFT", 0),
        ]
    finally:
        await other.close()


async def test_park_many_of_nothing_writes_nothing(store: Store) -> None:
    """An empty batch leaves the table empty."""
    await PendingStore(store).park_many([], asof=DAY0, expires_asof=DAY0, at=AT)
    assert await _rows(store) == []


async def test_resolve_many_closes_each_given_row(store: Store) -> None:
    """The rows named are closed with the status and time; the others stay pending."""
    sid = await SignalStore(store).ensure_strategy("momentum", "m", 25_000.0)
    pending = PendingStore(store)
    until = dt.date(2026, 11, 25)
    for symbol in ("AAPL", "MSFT", "GOOG"):
        await pending.park(sid, _sig(symbol), "heat_limit", asof=DAY0, expires_asof=until, at=AT)
    ids = [p.id for p in await pending.live(dt.date(2026, 11, 23))]
    await pending.resolve_many([ids[0], ids[2]], "EXECUTED", AT)
    await pending.resolve_many([], "EXECUTED", AT)
    assert [(r["symbol"], r["status"]) for r in await pending.all()] == [
        ("AAPL", "EXECUTED"),
        ("MSFT", "PENDING"),
        ("GOOG", "EXECUTED"),
    ]


@pytest.mark.parametrize("sql", [PENDING_KEYS_SQL, LIVE_SQL, EXPIRE_SQL])
async def test_session_queries_read_only_the_pending_rows(store: Store, sql: str) -> None:
    """Each per-session query reads the index of the pending rows, never the whole table."""
    params = ("2026-11-23",) * sql.count("?")
    plan = [r[-1] for r in await store.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert any("USING INDEX pending_signals_pending" in step for step in plan), plan
    assert not {"SCAN pending_signals", "SCAN p"} & set(plan), plan
