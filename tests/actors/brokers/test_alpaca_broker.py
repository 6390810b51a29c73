"""AlpacaBroker through the real alpaca-py client, against the fake Trading API on loopback."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from actors.brokers.alpaca import AlpacaBroker
from actors.brokers.base import (
    AccountBlocked,
    Broker,
    BrokerError,
    BrokerOrderStatus,
    BrokerPosition,
    BrokerUnavailable,
    DuplicateClientOrderId,
    OrderRejected,
    OrderRequest,
    OrderSide,
    SubmissionOutcomeUnknown,
)
from tests.actors.brokers.conftest import NEW_YORK, WALL0, MakeBroker
from tests.fakes import FakeTime
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer, HistoryStamp


def buy(client_order_id: str, symbol: str = "AAPL", qty: int = 10) -> OrderRequest:
    return OrderRequest(client_order_id, symbol, OrderSide.BUY, qty)


# ---------------------------------------------------------------- mapping


async def test_is_a_broker(broker: AlpacaBroker) -> None:
    """AlpacaBroker satisfies the Broker protocol and is named "alpaca"."""
    assert isinstance(broker, Broker)
    assert broker.name == "alpaca"


async def test_account_maps_strings_to_floats_and_flags(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Cash, equity, last equity and buying power arrive as floats; flags are clear."""
    server.last_equity = 99_500.0
    account = await broker.account()
    assert (account.cash, account.equity, account.buying_power) == (100_000.0,) * 3
    assert account.last_equity == 99_500.0
    assert account.can_trade


async def test_positions_map_whole_shares(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Positions come back with int quantities, entry prices and market values."""
    server.set_position("MSFT", 5, 300.0)
    server.set_position("AAPL", 12, 180.0)
    positions = await broker.positions()
    assert positions == [
        BrokerPosition("AAPL", 12, 180.0, 12 * 190.0),
        BrokerPosition("MSFT", 5, 300.0, 5 * 370.0),
    ]


async def test_fractional_position_is_an_error_naming_the_symbol(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A fractional position cannot be represented: BrokerError names the symbol."""
    server.set_position("SPY", 2.5, 460.0)
    with pytest.raises(BrokerError, match="SPY"):
        await broker.positions()


async def test_clock_maps_open_market(broker: AlpacaBroker) -> None:
    """At 10:00 on a Tuesday the market is open and closes at 16:00 New York."""
    clock = await broker.clock()
    assert clock.is_open
    assert clock.timestamp == dt.datetime(2024, 1, 2, 10, 0, tzinfo=NEW_YORK)
    assert clock.next_close == dt.datetime(2024, 1, 2, 16, 0, tzinfo=NEW_YORK)
    assert clock.next_open == dt.datetime(2024, 1, 3, 9, 30, tzinfo=NEW_YORK)


async def test_calendar_gives_new_york_hours_with_holidays_and_early_closes(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Trading days only, with tz-aware open/close; an early close is honoured."""
    server.holidays = {dt.date(2024, 7, 4)}
    server.early_closes = {dt.date(2024, 7, 3): dt.time(13, 0)}
    days = await broker.calendar(dt.date(2024, 7, 2), dt.date(2024, 7, 8))
    assert [d for d, _, _ in days] == [
        dt.date(2024, 7, 2),
        dt.date(2024, 7, 3),
        dt.date(2024, 7, 5),
        dt.date(2024, 7, 8),
    ]
    assert days[1][1] == dt.datetime(2024, 7, 3, 9, 30, tzinfo=NEW_YORK)
    assert days[1][2] == dt.datetime(2024, 7, 3, 13, 0, tzinfo=NEW_YORK)
    assert days[0][2].utcoffset() == dt.timedelta(hours=-4)


# ---------------------------------------------------------------- submission


async def test_submit_sends_a_market_day_order_with_our_client_id(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """The POST body is a market, day order for whole shares carrying our client order id."""
    await broker.submit(buy("intent-1", qty=3))
    (post,) = server.requests_to("POST", "/v2/orders")
    assert post.body is not None
    assert (post.body["type"], post.body["time_in_force"], post.body["side"]) == (
        "market",
        "day",
        "buy",
    )
    assert float(post.body["qty"]) == 3
    assert post.client_order_id == "intent-1"


async def test_submit_immediate_fill_maps_a_filled_order(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """An immediately filled buy maps to FILLED with int quantities and moves cash and shares."""
    order = await broker.submit(buy("intent-1", qty=10))
    assert order.status is BrokerOrderStatus.FILLED
    assert (order.client_order_id, order.symbol, order.side) == ("intent-1", "AAPL", OrderSide.BUY)
    assert (order.qty, order.filled_qty, order.filled_avg_price) == (10, 10, 190.0)
    assert order.broker_order_id
    assert order.submitted_at is not None
    assert order.filled_at is not None
    account = await broker.account()
    assert account.cash == 100_000.0 - 1_900.0
    assert await broker.positions() == [BrokerPosition("AAPL", 10, 190.0, 1_900.0)]


async def test_submit_accepted_stays_open_until_filled(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """In "accepted" mode the order is ACCEPTED and unfilled until the fake fills it."""
    server.fill_mode = "accepted"
    order = await broker.submit(buy("intent-1"))
    assert (order.status, order.filled_qty, order.filled_avg_price) == (
        BrokerOrderStatus.ACCEPTED,
        0,
        None,
    )
    assert not order.status.terminal
    server.fill_all()
    found = await broker.order_by_client_id("intent-1")
    assert found is not None
    assert (found.status, found.filled_qty) == (BrokerOrderStatus.FILLED, 10)


async def test_submit_partial_fill_maps_partially_filled(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A partial fill maps to PARTIALLY_FILLED with the filled share count."""
    server.fill_mode = "partial"
    order = await broker.submit(buy("intent-1", qty=9))
    assert (order.status, order.qty, order.filled_qty) == (
        BrokerOrderStatus.PARTIALLY_FILLED,
        9,
        4,
    )
    server.fill("intent-1", 2)
    found = await broker.order_by_client_id("intent-1")
    assert found is not None
    assert (found.status, found.filled_qty) == (BrokerOrderStatus.PARTIALLY_FILLED, 6)


async def test_sell_maps_side_and_reduces_the_position(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A sell fills against the position and credits cash."""
    server.set_position("MSFT", 8, 300.0)
    order = await broker.submit(OrderRequest("intent-s", "MSFT", OrderSide.SELL, 3))
    assert (order.side, order.status) == (OrderSide.SELL, BrokerOrderStatus.FILLED)
    assert await broker.positions() == [BrokerPosition("MSFT", 5, 300.0, 5 * 370.0)]
    assert (await broker.account()).cash == 100_000.0 + 3 * 370.0


async def test_duplicate_client_id_is_reported_and_the_order_found(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Reusing a client id raises DuplicateClientOrderId; the first order is found by id."""
    first = await broker.submit(buy("intent-1"))
    with pytest.raises(DuplicateClientOrderId):
        await broker.submit(buy("intent-1"))
    assert server.orders_for("intent-1") == 1
    found = await broker.order_by_client_id("intent-1")
    assert found is not None
    assert found.broker_order_id == first.broker_order_id


async def test_duplicate_client_id_after_cancel(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A client id stays taken after its order was cancelled."""
    server.fill_mode = "accepted"
    await broker.submit(buy("intent-1"))
    await broker.cancel("intent-1")
    found = await broker.order_by_client_id("intent-1")
    assert found is not None
    assert found.status is BrokerOrderStatus.CANCELED
    with pytest.raises(DuplicateClientOrderId):
        await broker.submit(buy("intent-1"))


async def test_cancel_of_a_filled_or_unknown_order_is_a_no_op(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Cancelling a final or unknown order changes nothing and sends no DELETE."""
    await broker.submit(buy("intent-1"))
    await broker.cancel("intent-1")
    await broker.cancel("never-sent")
    assert server.order_status("intent-1") == "filled"
    assert not [r for r in server.requests if r.method == "DELETE"]


async def test_rejection_carries_the_message(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A 422 refusal becomes OrderRejected with Alpaca's message, and no order exists."""
    server.reject_next(1, "asset AAPL is not tradable")
    with pytest.raises(OrderRejected) as caught:
        await broker.submit(buy("intent-1"))
    assert caught.value.reason == "asset AAPL is not tradable"
    assert server.orders_for("intent-1") == 0


async def test_insufficient_buying_power_is_a_rejection_not_a_block(
    broker: AlpacaBroker,
) -> None:
    """A 403 "insufficient buying power" is OrderRejected, not AccountBlocked."""
    with pytest.raises(OrderRejected, match="insufficient buying power"):
        await broker.submit(buy("intent-big", symbol="SPY", qty=1_000))


async def test_trading_blocked_is_account_blocked(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """With trading blocked, a submission raises AccountBlocked and can_trade is False."""
    server.trading_blocked = True
    with pytest.raises(AccountBlocked, match="not allowed to trade"):
        await broker.submit(buy("intent-1"))
    account = await broker.account()
    assert account.trading_blocked
    assert not account.can_trade


async def test_bad_keys_are_account_blocked(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer
) -> None:
    """A 401 on a read is AccountBlocked (an operator must fix the keys), not retried."""
    broker = make_broker()
    server.api_key = "rotated"
    with pytest.raises(AccountBlocked, match="401"):
        await broker.account()
    assert len(server.requests) == 1


async def test_unknown_client_id_is_none(broker: AlpacaBroker) -> None:
    """Looking up a client id Alpaca does not know returns None (its 404)."""
    assert await broker.order_by_client_id("never-sent") is None


async def test_position_changed_behind_our_back_shows_up(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A position changed outside tradingd is what the next positions() reports."""
    await broker.submit(buy("intent-1", qty=10))
    server.set_position("AAPL", 4, 190.0)
    server.set_position("MSFT", 1, 350.0)
    assert {p.symbol: p.qty for p in await broker.positions()} == {"AAPL": 4, "MSFT": 1}


# ---------------------------------------------------------------- failures of reads


async def test_429_with_reset_on_a_read_waits_for_the_reset_then_succeeds(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """A 429 carrying X-Ratelimit-Reset pauses the limiter until then; the retry succeeds."""
    reset = int(WALL0) + 7
    server.fail_next(1, 429, headers={"X-Ratelimit-Reset": str(reset)})
    account = await broker.account()
    assert account.cash == 100_000.0
    assert clock.sleeps == [pytest.approx(7.0)]
    assert len(server.requests_to("GET", "/v2/account")) == 2


async def test_5xx_on_a_read_is_retried_then_unavailable(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """Persistent 503s are retried max_read_retries times with jittered backoff, then give up."""
    broker = make_broker(max_read_retries=3, backoff_s=0.5)
    server.fail_next(4, 503, body={"message": "service unavailable"})
    with pytest.raises(BrokerUnavailable, match=r"HTTP 503: service unavailable"):
        await broker.positions()
    assert len(server.requests_to("GET", "/v2/positions")) == 4
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps):
        assert 0.5 * 0.5 * 2**attempt <= slept < 1.5 * 0.5 * 2**attempt


async def test_a_transient_5xx_on_a_read_recovers(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """One 500 followed by success returns the answer after one backoff."""
    server.fail_next(1, 500)
    assert (await broker.clock()).is_open
    assert len(clock.sleeps) == 1


async def test_hang_on_a_read_hits_the_deadline_then_unavailable(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer
) -> None:
    """A read that never answers times out at timeout_s, is retried, then is unavailable."""
    broker = make_broker(timeout_s=0.5, max_read_retries=1)
    server.hang_next(2)
    with pytest.raises(BrokerUnavailable, match=r"no answer within 0\.5s"):
        await broker.account()
    assert len(server.requests_to("GET", "/v2/account")) == 2
    assert (await broker.account()).can_trade  # a fresh client works


async def test_connection_refused_on_a_read_is_unavailable(
    server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """Nobody listening: retried, then BrokerUnavailable naming the connection error."""
    url = server.url
    server.stop()
    broker = AlpacaBroker(
        "k", "s", base_url=url, max_read_retries=1, sleep=clock.sleep, monotonic=clock.monotonic
    )
    try:
        with pytest.raises(BrokerUnavailable, match="ConnectionError"):
            await broker.account()
    finally:
        await broker.close()
    assert len(clock.sleeps) == 1


async def test_the_sdk_never_retries_by_itself(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """A 504 (which alpaca-py would retry three times) reaches the server exactly once."""
    broker = make_broker(max_read_retries=0)
    server.fail_next(1, 504)
    with pytest.raises(BrokerUnavailable, match="504"):
        await broker.account()
    assert len(server.requests) == 1
    assert clock.sleeps == []


# ---------------------------------------------------------------- failures of submissions


async def test_accepted_then_timeout_is_unknown_and_the_order_exists_once(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer
) -> None:
    """The order is created but the answer never comes: outcome unknown, one order, findable."""
    broker = make_broker(timeout_s=0.5)
    server.accept_then_hang_next(1)
    with pytest.raises(SubmissionOutcomeUnknown, match=r"no answer within 0\.5s"):
        await broker.submit(buy("intent-1"))
    assert server.holding.is_set()
    assert server.order_posts == 1
    assert server.orders_for("intent-1") == 1
    found = await broker.order_by_client_id("intent-1")
    assert found is not None
    assert found.status is BrokerOrderStatus.FILLED


async def test_5xx_on_submit_is_unknown_and_not_retried(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """A 500 to POST /v2/orders is SubmissionOutcomeUnknown after exactly one POST."""
    server.fail_next(1, 500)
    with pytest.raises(SubmissionOutcomeUnknown, match="HTTP 500"):
        await broker.submit(buy("intent-1"))
    assert server.order_posts == 1
    assert clock.sleeps == []


async def test_504_on_submit_is_unknown_and_the_sdk_does_not_retry(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A 504 (alpaca-py's own retry code) on submit is one POST and an unknown outcome."""
    server.fail_next(3, 504)
    with pytest.raises(SubmissionOutcomeUnknown):
        await broker.submit(buy("intent-1"))
    assert server.order_posts == 1


async def test_429_on_submit_is_unavailable_after_one_post(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """A 429 to a submission means Alpaca did nothing: BrokerUnavailable, one POST, no order."""
    server.fail_next(1, 429)
    with pytest.raises(BrokerUnavailable, match="HTTP 429"):
        await broker.submit(buy("intent-1"))
    assert server.order_posts == 1
    assert server.orders_for("intent-1") == 0
    assert clock.sleeps == []


async def test_connection_refused_on_submit_is_unknown(
    server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """A connection error on submit may hide an order: SubmissionOutcomeUnknown, no retry."""
    url = server.url
    server.stop()
    broker = AlpacaBroker("k", "s", base_url=url, sleep=clock.sleep, monotonic=clock.monotonic)
    try:
        with pytest.raises(SubmissionOutcomeUnknown, match="ConnectionError"):
            await broker.submit(buy("intent-1"))
    finally:
        await broker.close()
    assert clock.sleeps == []


# ---------------------------------------------------------------- rate limit


async def test_201_fast_calls_wait_for_the_window(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """The 201st call within a minute waits for the client-side window to slide."""
    broker = make_broker(rate_limit_per_min=200)
    for _ in range(201):
        await broker.clock()
    assert clock.sleeps == [pytest.approx(60.0)]
    assert len(server.requests) == 201


async def test_remaining_zero_pauses_until_the_reset(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """When the server says Remaining: 0, the next call waits for its reset (no 429 seen)."""
    server.rate_limit = 3
    broker = make_broker()
    for _ in range(3):
        await broker.account()
    assert broker.rate_limit_remaining == 0
    await broker.account()
    assert clock.sleeps == [pytest.approx(60.0)]
    assert broker.rate_limit_remaining == 2
    assert len(server.requests) == 4


async def test_rate_limit_remaining_follows_the_headers(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """rate_limit_remaining is None before any call, then the server's last Remaining."""
    assert broker.rate_limit_remaining is None
    await broker.account()
    await broker.positions()
    assert broker.rate_limit_remaining == server.rate_limit - 2


# ---------------------------------------------------------------- closing equity

WED, THU, FRI = dt.date(2023, 12, 27), dt.date(2023, 12, 28), dt.date(2023, 12, 29)
TUE = dt.date(2024, 1, 2)  # the session of WALL0 (New Year's Day is a holiday)
HISTORY = {WED: 100_100.0, THU: 100_200.5, FRI: 99_800.25}
HISTORY_PATH = "/v2/account/portfolio/history"


@pytest.fixture
def history(server: FakeAlpacaTradingServer) -> FakeAlpacaTradingServer:
    """The fake with New Year's Day shut and three closes of the week before."""
    server.holidays.add(dt.date(2024, 1, 1))
    server.set_equity_history(HISTORY)
    return server


def warnings_of(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "closing_equity_unavailable"]


@pytest.mark.parametrize("stamp", ["midnight", "close", "evening"])
async def test_closing_equity_maps_daily_points_to_their_sessions(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer, stamp: HistoryStamp
) -> None:
    """However Alpaca stamps a daily point, it counts for the session of its New York date."""
    history.history_stamp = stamp
    assert await broker.closing_equity([FRI, THU]) == {THU: 100_200.5, FRI: 99_800.25}


async def test_closing_equity_asks_only_for_the_span_of_the_sessions(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer
) -> None:
    """One daily request from the first session's midnight to the midnight after the last."""
    await broker.closing_equity([FRI, THU])
    [request] = history.requests_to("GET", HISTORY_PATH)
    assert request.query["timeframe"] == "1D"
    assert dt.datetime.fromisoformat(request.query["start"]) == dt.datetime(
        2023, 12, 28, tzinfo=NEW_YORK
    )
    assert dt.datetime.fromisoformat(request.query["end"]) == dt.datetime(
        2023, 12, 30, tzinfo=NEW_YORK
    )
    assert "period" not in request.query


async def test_closing_equity_omits_todays_live_point_until_the_close(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """During Tuesday's session its point is the live equity: omitted; after 16:00 it is told."""
    assert await broker.closing_equity([FRI, TUE]) == {FRI: 99_800.25}
    clock.now += 6.5 * 3600  # Tuesday 16:30 New York
    assert await broker.closing_equity([FRI, TUE]) == {FRI: 99_800.25, TUE: 100_000.0}


async def test_closing_equity_asks_nothing_when_no_session_has_closed(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer
) -> None:
    """Only sessions not closed yet: no request, an empty answer."""
    assert await broker.closing_equity([TUE, dt.date(2024, 1, 3)]) == {}
    assert history.requests_to("GET", HISTORY_PATH) == []


async def test_closing_equity_omits_sessions_without_a_usable_point(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer
) -> None:
    """A session Alpaca has no point for, or a zero equity (not funded yet), is left out."""
    history.set_equity_history({dt.date(2023, 12, 22): 0.0, THU: 100_200.5})
    assert await broker.closing_equity([dt.date(2023, 12, 22), WED, THU]) == {THU: 100_200.5}


async def test_closing_equity_without_the_endpoint_is_empty_with_a_warning(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer
) -> None:
    """A 404 (no such endpoint) is not retried: an empty answer and a warning naming it."""
    history.fail_next(1, 404, body={"code": 40410000, "message": "endpoint not found"})
    with capture_logs() as logs:
        assert await broker.closing_equity([THU]) == {}
    [warning] = warnings_of(logs)
    assert warning["log_level"] == "warning"
    assert "HTTP 404: endpoint not found" in warning["error"]
    assert len(history.requests_to("GET", HISTORY_PATH)) == 1


async def test_closing_equity_after_5xx_retries_is_empty_with_a_warning(
    make_broker: MakeBroker, history: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """Persistent 500s are retried like any read, then give an empty answer and a warning."""
    broker = make_broker(max_read_retries=2)
    history.fail_next(3, 500)
    with capture_logs() as logs:
        assert await broker.closing_equity([THU]) == {}
    [warning] = warnings_of(logs)
    assert "HTTP 500" in warning["error"]
    assert len(history.requests_to("GET", HISTORY_PATH)) == 3
    assert len(clock.sleeps) == 2


async def test_closing_equity_recovers_from_one_5xx(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer
) -> None:
    """One 503 then an answer: the closes, after one retry."""
    history.fail_next(1, 503)
    assert await broker.closing_equity([WED]) == {WED: 100_100.0}
    assert len(history.requests_to("GET", HISTORY_PATH)) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"timestamp": "soon", "equity": [1.0], "profit_loss": [], "profit_loss_pct": []},
        {
            "timestamp": [1703739600, 1703826000],
            "equity": [100.0],
            "profit_loss": [0.0],
            "profit_loss_pct": [0.0],
            "base_value": 100.0,
            "timeframe": "1D",
        },
        {
            "timestamp": [1703739600],
            "equity": [100.0],
            "profit_loss": [0.0],
            "profit_loss_pct": [0.0],
            "base_value": 100.0,
            "timeframe": "15Min",
        },
    ],
    ids=["wrong-types", "lengths-differ", "not-daily"],
)
async def test_closing_equity_malformed_answer_is_empty_with_a_warning(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer, body: dict[str, Any]
) -> None:
    """An answer that is not a daily history gives an empty answer and a warning, no retry."""
    history.fail_next(1, 200, body=body)
    with capture_logs() as logs:
        assert await broker.closing_equity([THU]) == {}
    assert len(warnings_of(logs)) == 1
    assert len(history.requests_to("GET", HISTORY_PATH)) == 1


async def test_closing_equity_timeout_respects_the_deadline(
    make_broker: MakeBroker, history: FakeAlpacaTradingServer
) -> None:
    """A history request that never answers is cut at timeout_s: empty, warned, still held."""
    broker = make_broker(timeout_s=0.3, max_read_retries=0)
    history.hang_next(1)
    with capture_logs() as logs:
        assert await broker.closing_equity([THU]) == {}
    assert history.holding.is_set()
    assert not history.release.is_set()  # the server never answered: our deadline ended it
    [warning] = warnings_of(logs)
    assert r"no answer within 0.3s" in warning["error"]
    assert await broker.closing_equity([THU]) == {THU: 100_200.5}  # a fresh client works


@pytest.mark.parametrize("status", [401, 403])
async def test_closing_equity_refused_credentials_are_account_blocked(
    broker: AlpacaBroker, history: FakeAlpacaTradingServer, status: int
) -> None:
    """401/403 are not "not available": AccountBlocked, as on every read."""
    history.fail_next(1, status, body={"code": 40310000, "message": "forbidden"})
    with pytest.raises(AccountBlocked, match=str(status)):
        await broker.closing_equity([THU])


def test_fake_history_serves_a_period_ending_now(history: FakeAlpacaTradingServer) -> None:
    """The fake answers a plain period=1W query as Alpaca does: the week up to now."""
    request = urllib.request.Request(
        f"{history.url}{HISTORY_PATH}?period=1W&timeframe=1D",
        headers={"APCA-API-KEY-ID": history.api_key, "APCA-API-SECRET-KEY": history.secret_key},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        body = json.load(answer)
    days = [dt.datetime.fromtimestamp(t, NEW_YORK).date() for t in body["timestamp"]]
    assert days == [WED, THU, FRI, TUE]
    assert body["equity"] == [100_100.0, 100_200.5, 99_800.25, 100_000.0]
    assert body["base_value"] == 100_100.0
    assert body["profit_loss"][1] == pytest.approx(100.5)
    assert body["timeframe"] == "1D"


@pytest.mark.parametrize(
    ("stamp", "new_york_time"),
    [("midnight", dt.time(0)), ("close", dt.time(16)), ("evening", dt.time(19))],
)
def test_fake_history_stamps_points_as_configured(
    history: FakeAlpacaTradingServer, stamp: HistoryStamp, new_york_time: dt.time
) -> None:
    """Thursday's point is stamped at 00:00 New York, at its close, or 00:00 UTC after it."""
    history.history_stamp = stamp
    request = urllib.request.Request(
        f"{history.url}{HISTORY_PATH}?start=2023-12-28T00:00:00-05:00&period=1D&timeframe=1D",
        headers={"APCA-API-KEY-ID": history.api_key, "APCA-API-SECRET-KEY": history.secret_key},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        body = json.load(answer)
    [stamped] = [dt.datetime.fromtimestamp(t, NEW_YORK) for t in body["timestamp"]]
    assert stamped == dt.datetime.combine(THU, new_york_time, NEW_YORK)


async def test_the_account_reports_the_pattern_day_trader_state(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer
) -> None:
    """Alpaca's pattern_day_trader and daytrade_count reach BrokerAccount (the PDT rule)."""
    server.daytrade_count = 2
    server.pattern_day_trader = True
    account = await make_broker().account()
    assert (account.daytrade_count, account.pattern_day_trader) == (2, True)
