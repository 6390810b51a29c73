"""Broker faults against the daemon's own graph: AlpacaBroker on the fake Alpaca server.

The graph runs on a SimClock, session by session, with the synthetic market and
``actors.brokers.alpaca.AlpacaBroker`` (a 1 s deadline) pointed at
``tests/fakes/alpaca_trading_server.py``. Each fault must leave every actor
running, trip the switch that names it, never put a second order at the broker
for one client order id, and let trading resume once the fault is gone and an
operator has cleared the switch.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from actors.brokers.alpaca import AlpacaBroker
from actors.brokers.base import Broker
from actors.cycle import kill_switches
from actors.data_feed.params import DEFAULT_UNIVERSE
from actors.data_feed.providers import BarProvider
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.messages import AdoptBrokerState, ClearKillSwitch, CycleStatus
from actors.system.config import Settings, load_settings
from daemon.clock import SimClock
from daemon.store import Store
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer, FillMode
from tests.reliability.harness import CAL, BrokerFactory, Graph, running_graph

# The first session places 7 orders, the second 5 (checked below where it matters).
SESSIONS = CAL.sessions_between(dt.date(2026, 11, 16), dt.date(2026, 11, 25))
TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def settings() -> Settings:
    # Sized on each strategy's capital: many small orders, which is what these faults need
    # (sized on the portfolio, the default, the first session places only a few large ones).
    # The market without corporate actions: the fake is priced from its closes, which are
    # adjusted as of the last session (tests/reliability/test_resting_stops_alpaca.py and
    # tests/test_backtest_corporate_actions.py put actions in on purpose).
    env = {
        "TRADINGD_RISK__SIZING_BASE": "strategy",
        "TRADINGD_DATA__SYNTHETIC__CORPORATE_ACTIONS_PER_YEAR": "0",
    }
    return load_settings(None, env)


@pytest.fixture(scope="module")
def closes(settings: Settings) -> pd.DataFrame:
    """The synthetic closes, for the fake's fill prices."""
    provider = SyntheticProvider(settings.data.synthetic)
    first = CAL.previous_session(SESSIONS[0])
    return provider.generate(list(DEFAULT_UNIVERSE), first, SESSIONS[-1])


def make_fake(fill_mode: FillMode = "immediate") -> FakeAlpacaTradingServer:
    """The fake, its 60 s rate window shifted so a 429's reset is at most ~1 s away.

    The broker honours ``X-Ratelimit-Reset`` (it pauses until then); with the
    fake's own window a single 429 would stall the cycle for up to a minute.
    """
    return FakeAlpacaTradingServer(fill_mode=fill_mode, wallclock=lambda: time.time() - 59.0)


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTradingServer]:
    with make_fake() as server:
        yield server


def alpaca(fake: FakeAlpacaTradingServer) -> BrokerFactory:
    def build(_store: Store, _clock: SimClock, _provider: BarProvider) -> Broker:
        return AlpacaBroker(
            fake.api_key,
            fake.secret_key,
            base_url=fake.url,
            timeout_s=TIMEOUT_S,
            backoff_s=0.05,
        )

    return build


async def day(
    g: Graph, fake: FakeAlpacaTradingServer, closes: pd.DataFrame, session: dt.date
) -> tuple[CycleStatus, str, list[str]]:
    """Price the fake at the previous close, run the session; status, reason, new POST ids."""
    prev = pd.Timestamp(CAL.previous_session(session))
    rows = closes.loc[closes["date"] == prev]
    fake.prices.update(
        {str(s): float(c) for s, c in zip(rows["symbol"], rows["close"], strict=True)}
    )
    before = fake.order_posts
    done = await g.run_day(session)
    posts = fake.requests_to("POST", "/v2/orders")[before:]
    assert g.all_running(), g.sup.states()
    return done.status, done.reason, [str(p.client_order_id) for p in posts]


def assert_one_order_per_intent(fake: FakeAlpacaTradingServer, max_posts: int = 1) -> Counter[str]:
    """No client order id has more than one order at the broker (nor more POSTs than allowed)."""
    posts = Counter(str(r.client_order_id) for r in fake.requests_to("POST", "/v2/orders"))
    for cid, count in posts.items():
        assert fake.orders_for(cid) <= 1, cid
        assert count <= max_posts, f"{cid} POSTed {count} times"
    return posts


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
