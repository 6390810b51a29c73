"""Broker faults against the daemon's own graph: AlpacaBroker on the fake Alpaca server.

The graph runs on a SimClock, session by session, with the synthetic market and
``actors.brokers.alpaca.AlpacaBroker`` (a 1 s deadline) pointed at
``tests/fakes/alpaca_trading_server.py``. Each fault must leave every actor
running, trip the switch that names it, never put a second order at the broker
for one client order id, and let trading resume once the fault is gone and an
operator has cleared the switch.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from actors.cycle import kill_switches
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.messages import AdoptBrokerState, ClearKillSwitch, CycleStatus
from actors.system.config import Settings
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer

# The first session places 7 orders, the second 5 (checked below where it matters).
from tests.reliability.alpaca_graph import (
    SESSIONS,
    alpaca,
    assert_one_order_per_intent,
    day,
    make_fake,
)
from tests.reliability.harness import running_graph


async def test_read_bursts_of_429_and_5xx_are_retried(
    settings: Settings, closes: pd.DataFrame, fake: FakeAlpacaTradingServer, tmp_path: Path
) -> None:
    """429s (with a reset time) and 503s on reads are retried: the cycle completes and trades."""
    provider = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
    ) as g:
        reset = str(int(time.time()) + 1)
        fake.fail_next(2, 429, headers={"X-Ratelimit-Reset": reset, "X-Ratelimit-Remaining": "0"})
        fake.fail_next(2, 503)
        status, reason, posted = await day(g, fake, closes, SESSIONS[0])
        assert status is CycleStatus.COMPLETED, reason
        assert posted, reason
        assert await g.active_switches() == set()
    assert_one_order_per_intent(fake)


async def test_submission_429_and_5xx_never_double_submit(
    settings: Settings, closes: pd.DataFrame, fake: FakeAlpacaTradingServer, tmp_path: Path
) -> None:
    """A 429 or a 503 answering an order POST leaves one POST per id; the next day trades."""
    provider = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
    ) as g:
        fake.reject_next(2, "rate limit exceeded", status=429)
        fake.reject_next(2, "service unavailable", status=503)
        status, reason, posted = await day(g, fake, closes, SESSIONS[0])
        assert len(posted) >= 4, posted
        assert status is CycleStatus.COMPLETED, reason
        rows = await g.rows("SELECT intent_id, status, error_code FROM order_intents")
        by_id = {r["intent_id"]: r for r in rows}
        assert by_id[posted[0]]["status"] == "NEW"  # 429: not processed, not retried blindly
        assert by_id[posted[2]]["status"] == "UNKNOWN"  # 503: unknown, looked up, not found
        assert all(fake.orders_for(cid) == 0 for cid in posted[:4])
        assert all(fake.orders_for(cid) == 1 for cid in posted[4:])

        status, reason, posted_next = await day(g, fake, closes, SESSIONS[1])
        assert status is CycleStatus.COMPLETED, reason
        assert posted_next, reason
        assert not set(posted_next) & set(posted)
        rows = await g.rows("SELECT intent_id, status FROM order_intents")
        stale = {r["intent_id"]: r["status"] for r in rows if r["intent_id"] in posted[:4]}
        assert set(stale.values()) <= {"EXPIRED", "NEW", "UNKNOWN"}, stale
    assert_one_order_per_intent(fake)


async def test_hangs_and_accepted_then_timeout_resolve_by_identity(
    settings: Settings, closes: pd.DataFrame, fake: FakeAlpacaTradingServer, tmp_path: Path
) -> None:
    """A held read times out and is retried; an order accepted then unanswered is adopted."""
    provider = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
    ) as g:
        fake.hang_next(1)
        fake.accept_then_hang_next(1)
        status, reason, posted = await day(g, fake, closes, SESSIONS[0])
        assert fake.holding.is_set()
        assert status is CycleStatus.COMPLETED, reason
        assert posted, reason
        first = posted[0]
        assert fake.orders_for(first) == 1
        row = await g.rows("SELECT status FROM order_intents WHERE intent_id = ?", first)
        assert row[0]["status"] == "FILLED", row
        assert await g.active_switches() == set()

        status, reason, posted_next = await day(g, fake, closes, SESSIONS[1])
        assert status is CycleStatus.COMPLETED, reason
        assert "reconciliation failed" not in reason
        assert posted_next
    assert_one_order_per_intent(fake)


async def test_rejections_trip_order_rejection_rate_and_clear_resumes(
    settings: Settings, closes: pd.DataFrame, fake: FakeAlpacaTradingServer, tmp_path: Path
) -> None:
    """5 of 7 orders refused trips order_rejection_rate; entries stop until it is cleared."""
    provider = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
    ) as g:
        fake.reject_next(5, "asset is not tradable")
        status, reason, posted = await day(g, fake, closes, SESSIONS[0])
        assert len(posted) >= 6, posted  # 5 refused of at most 9: above 50 %
        assert kill_switches.ORDER_REJECTION_RATE in await g.active_switches(), reason

        status, reason, posted = await day(g, fake, closes, SESSIONS[1])
        buys = [p for p in posted if p.endswith("-buy")]
        assert buys == [], reason

        await g.sup.ref("kill_switches").ask(
            ClearKillSwitch(kill_switches.ORDER_REJECTION_RATE, "test: broker fixed", "operator")
        )
        status, reason, posted = await day(g, fake, closes, SESSIONS[2])
        assert status is CycleStatus.COMPLETED, reason
        assert [p for p in posted if p.endswith("-buy")], reason
        assert await g.active_switches() == set()
    assert_one_order_per_intent(fake)


async def test_three_failing_cycles_trip_consecutive_failures(
    settings: Settings, closes: pd.DataFrame, fake: FakeAlpacaTradingServer, tmp_path: Path
) -> None:
    """An order the broker will not take (429) on three sessions in a row trips the switch."""
    provider = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
    ) as g:
        for n, session in enumerate(SESSIONS[:3], start=1):
            fake.reject_next(1, "rate limit exceeded", status=429)
            status, reason, posted = await day(g, fake, closes, session)
            assert posted, (session, reason)
            switches = await g.active_switches()
            assert (kill_switches.CONSECUTIVE_FAILURES in switches) == (n == 3), (n, switches)

        await g.sup.ref("kill_switches").ask(
            ClearKillSwitch(kill_switches.CONSECUTIVE_FAILURES, "test: broker fixed", "operator")
        )
        status, reason, posted = await day(g, fake, closes, SESSIONS[3])
        assert status is CycleStatus.COMPLETED, reason
        assert posted, reason
        assert await g.active_switches() == set()
    assert_one_order_per_intent(fake)


async def test_partial_fills_settle_before_the_next_session(
    settings: Settings, closes: pd.DataFrame, tmp_path: Path
) -> None:
    """Half-filled orders are booked as partial; the rest, filled overnight, settle next day."""
    provider = SyntheticProvider(settings.data.synthetic)
    with make_fake("partial") as fake:
        async with running_graph(
            settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
        ) as g:
            status, reason, posted = await day(g, fake, closes, SESSIONS[0])
            assert status is CycleStatus.COMPLETED, reason
            rows = await g.rows(
                "SELECT intent_id, status, filled_qty, target_qty FROM order_intents"
                " WHERE stop_price IS NULL"
            )
            # a 1-share order cannot be split: it fills at once
            assert {r["status"] for r in rows} == {"PARTIALLY_FILLED", "FILLED"}, rows
            fake.fill_all()

            fake.fill_mode = "immediate"
            status, reason, _ = await day(g, fake, closes, SESSIONS[1])
            assert status is CycleStatus.COMPLETED, reason
            rows = await g.rows(
                "SELECT status, filled_qty, target_qty FROM order_intents WHERE intent_id IN"
                f" ({','.join('?' * len(posted))}) AND stop_price IS NULL",
                *posted,
            )
            assert {r["status"] for r in rows} == {"FILLED"}, rows
            assert all(r["filled_qty"] == r["target_qty"] for r in rows)
            assert await g.active_switches() == set()
            # Each position's resting stop grew with its fills (replaced, cancel first).
            held = {
                r["symbol"]: r["shares"]
                for r in await g.rows(
                    "SELECT symbol, SUM(shares) AS shares FROM positions WHERE shares > 0"
                    " GROUP BY symbol"
                )
            }
            stops = [o for o in fake.open_orders() if o["type"] == "stop"]
            assert sorted((o["symbol"], o["qty"]) for o in stops) == sorted(held.items())
        assert_one_order_per_intent(fake)


async def test_position_changed_behind_our_back_trips_reconciliation_until_adopted(
    settings: Settings, closes: pd.DataFrame, fake: FakeAlpacaTradingServer, tmp_path: Path
) -> None:
    """A position edited at the broker latches reconciliation_failed; adopt + clear resumes."""
    provider = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
    ) as g:
        status, reason, posted = await day(g, fake, closes, SESSIONS[0])
        assert posted, reason
        symbol = posted[0].split("-")[2]
        held = fake.position_qty(symbol)
        fake.set_position(symbol, held + 7, fake.prices[symbol])

        status, reason, posted = await day(g, fake, closes, SESSIONS[1])
        assert "reconciliation failed" in reason, reason
        assert symbol in reason
        assert kill_switches.RECONCILIATION_FAILED in await g.active_switches()
        assert [p for p in posted if p.endswith("-buy")] == [], posted
        assert not [p for p in posted if f"-{symbol}-" in p], posted

        report = await g.sup.ref("reconciler").ask(AdoptBrokerState("test: the broker is right"))
        assert report.passed, report
        await g.sup.ref("kill_switches").ask(
            ClearKillSwitch(kill_switches.RECONCILIATION_FAILED, "test: adopted", "operator")
        )
        status, reason, posted = await day(g, fake, closes, SESSIONS[2])
        assert status is CycleStatus.COMPLETED, reason
        assert "reconciliation failed" not in reason
        assert posted, reason
        assert await g.active_switches() == set()
    assert_one_order_per_intent(fake)
