"""AlpacaBroker.account_fills (ours and manual trades) through alpaca-py, against the fake."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from actors.brokers.alpaca import AlpacaBroker
from actors.brokers.base import (
    AccountBlocked,
    AccountFill,
    Broker,
    BrokerAccount,
    BrokerError,
    BrokerOrder,
    BrokerPosition,
    BrokerUnavailable,
    MarketClock,
    OrderRequest,
    OrderSide,
    ReportsAccountFills,
)
from actors.brokers.instrumented import InstrumentedBroker
from actors.metrics import Metrics
from tests.actors.brokers.conftest import WALL0, MakeBroker
from tests.fakes import FakeTime
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer

FILLS_PATH = "/v2/account/activities/FILL"
# A since with a fraction of a second: Alpaca's ``after`` is sent floored, a second earlier.
SINCE = dt.datetime(2024, 1, 2, 15, 0, 0, 500_000, tzinfo=dt.UTC)


def activity(**fields: Any) -> dict[str, Any]:
    """A valid fill activity as Alpaca sends it; a field given as None is left out."""
    base: dict[str, Any] = {
        "id": "20240102100000123::6a1f4b2e-0c1d-4e5f-8a9b-0123456789ab",
        "account_id": "1d9eed04-be39-4e01-9b84-a48ac5bbafcf",
        "activity_type": "FILL",
        "transaction_time": "2024-01-02T15:00:00.123456Z",
        "type": "fill",
        "price": "190.25",
        "qty": "10",
        "side": "buy",
        "symbol": "AAPL",
        "leaves_qty": "0",
        "order_id": "fe060a1b-5b45-4eba-ba46-c3a3345d8255",
        "cum_qty": "10",
        "order_status": "filled",
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def fill_requests(server: FakeAlpacaTradingServer) -> list[dict[str, str]]:
    return [r.query for r in server.requests_to("GET", FILLS_PATH)]


# ---------------------------------------------------------------- what is listed


async def test_alpaca_reports_account_fills(broker: AlpacaBroker) -> None:
    """AlpacaBroker is a Broker and also ReportsAccountFills."""
    assert isinstance(broker, Broker)
    assert isinstance(broker, ReportsAccountFills)


async def test_our_fills_and_a_manual_fill_are_listed(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Our order's fill and a trade placed by hand both come back, oldest first, mapped."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    order = await broker.submit(OrderRequest("intent-1", "AAPL", OrderSide.BUY, 10))
    manual_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    manual_id = server.add_manual_fill("MSFT", "buy", 3, 365.5, at=manual_at)
    ours, manual = await broker.account_fills(since)
    assert (ours.symbol, ours.side, ours.qty, ours.price) == ("AAPL", OrderSide.BUY, 10, 190.0)
    assert ours.broker_order_id == order.broker_order_id
    assert order.filled_at is not None
    assert abs(ours.at - order.filled_at) < dt.timedelta(seconds=1)
    assert manual == AccountFill(
        manual_id, "MSFT", OrderSide.BUY, 3, 365.5, manual_at, manual.broker_order_id
    )
    assert manual.broker_order_id not in (None, order.broker_order_id)
    assert ours.at.tzinfo is not None
    assert ours.activity_id != manual.activity_id


async def test_a_manual_fill_moves_the_position_and_cash(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """In the fake, a trade by hand changes positions and cash as a real one does."""
    server.add_manual_fill("MSFT", "buy", 3, 365.5)
    assert await broker.positions() == [BrokerPosition("MSFT", 3, 365.5, 3 * 370.0)]
    assert (await broker.account()).cash == 100_000.0 - 3 * 365.5


async def test_partial_fills_are_one_entry_each(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Each fill of an order is its own entry with its own shares, under the same order id."""
    server.fill_mode = "partial"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    order = await broker.submit(OrderRequest("intent-1", "AAPL", OrderSide.BUY, 9))
    server.fill("intent-1", 2)
    fills = await broker.account_fills(since)
    assert [f.qty for f in fills] == [4, 2]
    assert {f.broker_order_id for f in fills} == {order.broker_order_id}


async def test_a_short_sale_is_a_sell(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A manual "sell_short" is listed as SELL; the position goes short."""
    server.add_manual_fill("MSFT", "sell_short", 2, 371.0, at=SINCE)
    [fill] = await broker.account_fills(SINCE)
    assert (fill.side, fill.qty, fill.price) == (OrderSide.SELL, 2, 371.0)
    assert [(p.symbol, p.qty) for p in await broker.positions()] == [("MSFT", -2)]


async def test_fractional_qty_is_kept_as_the_nearest_whole_with_a_warning(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """2.5 shares count as 3 (half up) and warn; a whole 4.0 is 4 and does not."""
    fractional = server.add_manual_fill("SPY", "buy", 2.5, 470.0, at=SINCE)
    server.add_manual_fill("SPY", "buy", 4.0, 470.0, at=SINCE + dt.timedelta(seconds=1))
    with capture_logs() as logs:
        fills = await broker.account_fills(SINCE)
    assert [f.qty for f in fills] == [3, 4]
    [warning] = [e for e in logs if e["event"] == "account_fill_fractional_qty"]
    assert warning["log_level"] == "warning"
    assert (warning["activity_id"], warning["symbol"], warning["qty"], warning["kept"]) == (
        fractional,
        "SPY",
        "2.5",
        3,
    )


async def test_activities_that_are_not_fills_are_skipped(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A non-FILL activity in the answer is left out; a fill without order_id has None."""
    dividend = {"id": "20240102::div", "activity_type": "DIV", "net_amount": "3.1", "symbol": "X"}
    server.fail_next(1, 200, body=[dividend, activity(order_id=None)])
    [fill] = await broker.account_fills(SINCE - dt.timedelta(minutes=1))
    assert (fill.symbol, fill.qty, fill.price, fill.broker_order_id) == ("AAPL", 10, 190.25, None)
    assert fill.at == dt.datetime(2024, 1, 2, 15, 0, 0, 123456, tzinfo=dt.UTC)


# ---------------------------------------------------------------- since and pages


async def test_since_is_sent_as_after_and_honoured_to_the_microsecond(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """``after`` is a second before since, floored; fills before since are dropped, at it kept."""
    hour = dt.timedelta(hours=1)
    server.add_manual_fill("AAPL", "buy", 1, 190.0, at=SINCE - hour)
    server.add_manual_fill("AAPL", "buy", 2, 190.0, at=SINCE - dt.timedelta(milliseconds=400))
    at_since = server.add_manual_fill("AAPL", "buy", 3, 190.0, at=SINCE)
    later = server.add_manual_fill("AAPL", "sell", 4, 191.0, at=SINCE + hour)
    fills = await broker.account_fills(SINCE)
    assert [f.activity_id for f in fills] == [at_since, later]
    assert [(f.qty, f.side) for f in fills] == [(3, OrderSide.BUY), (4, OrderSide.SELL)]
    assert fill_requests(server) == [
        {"after": "2024-01-02T14:59:59Z", "direction": "asc", "page_size": "100"}
    ]


async def test_nothing_since_is_an_empty_list(broker: AlpacaBroker) -> None:
    """No fills after since: [] after one request."""
    assert await broker.account_fills(SINCE) == []


async def test_a_naive_since_is_refused_before_any_request(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """since must be timezone-aware."""
    with pytest.raises(ValueError, match="timezone-aware"):
        await broker.account_fills(dt.datetime(2024, 1, 2, 15, 0))
    assert server.requests == []


def add_fills(server: FakeAlpacaTradingServer, n: int) -> list[str]:
    """``n`` manual buys of one AAPL share, a second apart from SINCE on."""
    return [
        server.add_manual_fill(
            "AAPL", "buy", 1, 100.0 + i / 100, at=SINCE + dt.timedelta(seconds=i)
        )
        for i in range(n)
    ]


async def test_more_than_a_page_is_read_page_by_page(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """250 fills take three pages of 100, each from the last id of the one before."""
    ids = add_fills(server, 250)
    fills = await broker.account_fills(SINCE)
    assert [f.activity_id for f in fills] == ids
    assert [f.price for f in fills[:2]] == [100.0, 100.01]
    tokens = [q.get("page_token") for q in fill_requests(server)]
    assert tokens == [None, ids[99], ids[199]]
    assert {q["page_size"] for q in fill_requests(server)} == {"100"}


async def test_full_last_page_is_followed_by_an_empty_one(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Exactly 200 fills: a third request finds nothing more."""
    ids = add_fills(server, 200)
    assert [f.activity_id for f in await broker.account_fills(SINCE)] == ids
    assert len(fill_requests(server)) == 3


async def test_a_page_token_that_does_not_advance_is_an_error(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A server that answers the same full page again cannot loop us forever."""
    page = [activity(id=f"20240102100000{i:03d}::x") for i in range(100)]
    server.fail_next(2, 200, body=page)
    with pytest.raises(BrokerError, match="did not advance"):
        await broker.account_fills(SINCE)
    assert len(fill_requests(server)) == 2


# ---------------------------------------------------------------- failures


async def test_429_then_success_waits_for_the_reset(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """A 429 with X-Ratelimit-Reset pauses the limiter until then; the retry answers."""
    expected = add_fills(server, 2)
    server.fail_next(1, 429, headers={"X-Ratelimit-Reset": str(int(WALL0) + 7)})
    assert [f.activity_id for f in await broker.account_fills(SINCE)] == expected
    assert clock.sleeps == [pytest.approx(7.0)]
    assert len(fill_requests(server)) == 2


async def test_a_failed_page_is_retried_alone(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """A 503 on the second page re-reads that page (same token), not the first."""
    ids = add_fills(server, 150)
    injected: list[bool] = []

    async def sleep(seconds: float) -> None:
        # One request a minute: the second page waits for the window, and then fails once.
        if not injected:
            server.fail_next(1, 503)
            injected.append(True)
        await clock.sleep(seconds)

    broker = make_broker(rate_limit_per_min=1, sleep=sleep)
    assert [f.activity_id for f in await broker.account_fills(SINCE)] == ids
    assert [q.get("page_token") for q in fill_requests(server)] == [None, ids[99], ids[99]]


async def test_a_persistent_500_is_unavailable_after_the_retries(
    make_broker: MakeBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """500s are retried max_read_retries times with jittered backoff, then BrokerUnavailable."""
    broker = make_broker(max_read_retries=3, backoff_s=0.5)
    server.fail_next(4, 500, body={"message": "internal server error"})
    with pytest.raises(BrokerUnavailable, match=r"HTTP 500: internal server error"):
        await broker.account_fills(SINCE)
    assert len(fill_requests(server)) == 4
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps):
        assert 0.5 * 0.5 * 2**attempt <= slept < 1.5 * 0.5 * 2**attempt


async def test_a_body_that_is_not_json_is_a_broker_error_not_retried(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer, clock: FakeTime
) -> None:
    """Cut-off JSON on a 200 is a BrokerError at once; the next call works."""
    server.malformed_next(1)
    with pytest.raises(BrokerError, match="not JSON"):
        await broker.account_fills(SINCE)
    assert len(fill_requests(server)) == 1
    assert clock.sleeps == []
    assert await broker.account_fills(SINCE) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": "a dict"}, "not a list of activities"),
        (["FILL"], "not a list of activities"),
        ([activity(id=None)], "without an id"),
        ([activity(symbol=None)], "no symbol"),
        ([activity(side="short_exempt")], "unknown side"),
        ([activity(price="n/a")], "price is not a number"),
        ([activity(price="0")], "price is not a positive number"),
        ([activity(qty="-1")], "qty is not a positive number"),
        ([activity(qty=None)], "qty is not a number"),
        ([activity(transaction_time="yesterday")], "transaction_time is not a time"),
    ],
    ids=[
        "dict",
        "strings",
        "no-id",
        "no-symbol",
        "side",
        "price-text",
        "price-zero",
        "qty-negative",
        "qty-missing",
        "time",
    ],
)
async def test_a_malformed_answer_is_a_broker_error(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer, body: Any, message: str
) -> None:
    """JSON of the wrong shape, or a fill missing what we need, is a BrokerError naming it."""
    server.fail_next(1, 200, body=body)
    with pytest.raises(BrokerError, match=message):
        await broker.account_fills(SINCE)
    assert len(fill_requests(server)) == 1


async def test_refused_keys_are_account_blocked(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """A 401 is AccountBlocked, as on every read, and not retried."""
    server.api_key = "rotated"
    with pytest.raises(AccountBlocked, match="401"):
        await broker.account_fills(SINCE)
    assert len(server.requests) == 1


# ---------------------------------------------------------------- the fake itself


def get_json(server: FakeAlpacaTradingServer, path_and_query: str) -> Any:
    request = urllib.request.Request(
        f"{server.url}{path_and_query}",
        headers={"APCA-API-KEY-ID": server.api_key, "APCA-API-SECRET-KEY": server.secret_key},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def test_fake_serves_fills_on_both_activity_paths(server: FakeAlpacaTradingServer) -> None:
    """/activities/FILL and /activities?activity_types=FILL agree (newest first by default)."""
    ids = add_fills(server, 3)
    by_type = get_json(server, FILLS_PATH)
    listed = get_json(server, "/v2/account/activities?activity_types=FILL,DIV")
    assert [a["id"] for a in by_type] == [a["id"] for a in listed] == ids[::-1]
    assert get_json(server, "/v2/account/activities?activity_types=DIV") == []
    assert by_type[0]["activity_type"] == "FILL"
    assert (by_type[0]["type"], by_type[0]["qty"], by_type[0]["side"]) == ("fill", "1", "buy")
    assert by_type[0]["transaction_time"] == "2024-01-02T15:00:02.500000Z"


def test_fake_pages_descending_and_stops_at_until(server: FakeAlpacaTradingServer) -> None:
    """A desc page_token continues older; until (exclusive) cuts off the newer ones."""
    ids = add_fills(server, 5)
    page = get_json(server, f"{FILLS_PATH}?page_size=2&page_token={ids[3]}")
    assert [a["id"] for a in page] == [ids[2], ids[1]]
    until = (SINCE + dt.timedelta(seconds=2)).isoformat().replace("+", "%2B")
    assert [a["id"] for a in get_json(server, f"{FILLS_PATH}?until={until}")] == [ids[1], ids[0]]


# ---------------------------------------------------------------- through the metrics wrapper


class PlainBroker:
    """A broker that keeps no record of account fills (like the simulated one)."""

    name = "plain"

    async def account(self) -> BrokerAccount:
        return BrokerAccount(cash=1.0, equity=1.0, last_equity=1.0, buying_power=1.0)

    async def positions(self) -> list[BrokerPosition]:
        return []

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        return None

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        raise BrokerError("not here")

    async def cancel(self, client_order_id: str) -> None:
        return None

    async def clock(self) -> MarketClock:
        now = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
        return MarketClock(now, False, now, now)

    async def closing_equity(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        return {}

    async def close(self) -> None:
        return None


async def test_the_wrapper_passes_account_fills_through_and_measures_them(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """Over AlpacaBroker the wrapper answers with its fills and times the call."""
    metrics = Metrics()
    wrapped = InstrumentedBroker(broker, metrics)
    ids = add_fills(server, 2)
    assert isinstance(wrapped, ReportsAccountFills)
    assert wrapped.reports_account_fills
    assert [f.activity_id for f in await wrapped.account_fills(SINCE)] == ids
    labels = {"method": "account_fills"}
    count = metrics.registry.get_sample_value(
        "tradingd_broker_request_duration_seconds_count", labels
    )
    assert count == 1


async def test_the_wrapper_over_a_broker_without_fills_answers_empty() -> None:
    """Over a broker with no record of fills: [] with no call measured; it says so."""
    assert not isinstance(PlainBroker(), ReportsAccountFills)
    metrics = Metrics()
    wrapped = InstrumentedBroker(PlainBroker(), metrics)
    assert isinstance(wrapped, ReportsAccountFills)
    assert isinstance(wrapped, Broker)
    assert not wrapped.reports_account_fills
    assert await wrapped.account_fills(SINCE) == []
    labels = {"method": "account_fills"}
    count = metrics.registry.get_sample_value(
        "tradingd_broker_request_duration_seconds_count", labels
    )
    assert count is None
