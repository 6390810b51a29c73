"""Protective stop sells through AlpacaBroker and the real alpaca-py client, against the fake.

A stop is ``OrderRequest(..., stop_price=...)``: a ``stop`` sell, ``gtc``, its price
on Alpaca's tick. It rests at the fake (which holds its shares) until
``trigger_stops``, a cancel or a ``split`` changes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from actors.brokers.alpaca import AlpacaBroker, stop_tick
from actors.brokers.base import (
    BrokerOrderStatus,
    DuplicateClientOrderId,
    OrderRejected,
    OrderRequest,
    OrderSide,
)
from tests.fakes.alpaca_trading_server import SUB_PENNY, FakeAlpacaTradingServer, FillMode

HELD = 10
ENTRY = 180.0  # AAPL trades at 190 (PRICES)


def stop(
    client_order_id: str, stop_price: float, qty: int = HELD, symbol: str = "AAPL"
) -> OrderRequest:
    return OrderRequest(client_order_id, symbol, OrderSide.SELL, qty, stop_price=stop_price)


def sell(client_order_id: str, qty: int = HELD, symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(client_order_id, symbol, OrderSide.SELL, qty)


def post_order(server: FakeAlpacaTradingServer, **fields: Any) -> tuple[int, dict[str, Any]]:
    """POST a raw order body to the fake (no SDK, no rounding); its status and JSON answer."""
    body = {"symbol": "AAPL", "qty": "1", "side": "sell", "type": "stop", "time_in_force": "gtc"}
    answer = requests.post(
        f"{server.url}/v2/orders",
        json={**body, **fields},
        headers={"APCA-API-KEY-ID": server.api_key, "APCA-API-SECRET-KEY": server.secret_key},
        timeout=5,
    )
    payload: dict[str, Any] = answer.json()
    return answer.status_code, payload


@pytest.fixture
def holding(server: FakeAlpacaTradingServer) -> FakeAlpacaTradingServer:
    """The fake with 10 AAPL held (entry 180, trading at 190)."""
    server.set_position("AAPL", HELD, ENTRY)
    return server


# ---------------------------------------------------------------- placing


async def test_a_stop_rests_as_a_gtc_stop_sell(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """The POST is a gtc stop sell; it rests unfilled (accepted, then new) with its price."""
    placed = await broker.submit(stop("stop-1", 171.0))
    (post,) = holding.requests_to("POST", "/v2/orders")
    assert post.body is not None
    assert (post.body["type"], post.body["time_in_force"], post.body["side"]) == (
        "stop",
        "gtc",
        "sell",
    )
    assert (post.body["stop_price"], post.body["client_order_id"]) == (171.0, "stop-1")
    assert placed.status is BrokerOrderStatus.ACCEPTED
    assert (placed.stop_price, placed.filled_qty, placed.filled_avg_price) == (171.0, 0, None)
    resting = await broker.order_by_client_id("stop-1")
    assert resting is not None
    assert resting.status is BrokerOrderStatus.NEW
    assert not resting.status.terminal
    assert (resting.qty, resting.side, resting.stop_price) == (HELD, OrderSide.SELL, 171.0)
    assert resting.broker_order_id == placed.broker_order_id
    assert holding.position_qty("AAPL") == HELD


@pytest.mark.parametrize("mode", ["immediate", "partial", "accepted"])
async def test_a_stop_rests_whatever_the_fill_mode(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer, mode: FillMode
) -> None:
    """Market orders fill on submit in "immediate"/"partial"; a stop never does."""
    holding.fill_mode = mode
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    placed = await broker.submit(stop("stop-1", 171.0))
    assert (placed.status, placed.filled_qty) == (BrokerOrderStatus.ACCEPTED, 0)
    (resting,) = holding.open_orders("AAPL")
    assert resting == {
        "id": placed.broker_order_id,
        "client_order_id": "stop-1",
        "symbol": "AAPL",
        "side": "sell",
        "type": "stop",
        "time_in_force": "gtc",
        "qty": HELD,
        "filled_qty": 0,
        "stop_price": 171.0,
        "status": "new",
    }
    assert await broker.account_fills(since) == []
    assert holding.position_qty("AAPL") == HELD


async def test_fill_all_leaves_a_stop_resting(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """fill_all fills open market orders only: stops wait for their price."""
    holding.fill_mode = "accepted"
    await broker.submit(stop("stop-1", 171.0, qty=4))
    await broker.submit(sell("sell-1", qty=6))
    holding.fill_all()
    assert holding.order_status("sell-1") == "filled"
    assert holding.order_status("stop-1") == "new"
    assert holding.position_qty("AAPL") == 4


@pytest.mark.parametrize(
    ("asked", "sent"),
    [
        (123.456, 123.46),
        (123.455, 123.46),  # ties up, on the shortest decimal form
        (123.454, 123.45),
        (1.004, 1.0),
        (0.12345, 0.1235),
        (0.12344, 0.1234),
        (0.99996, 1.0),
    ],
)
async def test_stop_price_is_sent_on_alpacas_tick(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer, asked: float, sent: float
) -> None:
    """Cents at or above $1.00, four decimals below; nearest, half up; the fake accepts it."""
    server.set_position("PENY", 100, 0.5)
    placed = await broker.submit(stop("stop-1", asked, qty=100, symbol="PENY"))
    (post,) = server.requests_to("POST", "/v2/orders")
    assert post.body is not None
    assert post.body["stop_price"] == sent
    assert placed.stop_price == sent
    assert float(stop_tick(asked)) == sent


async def test_a_stop_that_rounds_to_nothing_is_rejected_unsent(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """0.00004 is 0.0000 on the tick: OrderRejected before any request."""
    with pytest.raises(OrderRejected, match="rounds to"):
        await broker.submit(stop("stop-1", 0.00004))
    assert holding.order_posts == 0


async def test_a_second_submit_of_a_stop_is_a_duplicate(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """The same client order id again: DuplicateClientOrderId; one order at the fake."""
    await broker.submit(stop("stop-1", 171.0))
    with pytest.raises(DuplicateClientOrderId):
        await broker.submit(stop("stop-1", 171.0))
    assert holding.orders_for("stop-1") == 1


# ---------------------------------------------------------------- held shares


async def test_a_resting_stop_holds_its_shares_from_a_market_sell(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """With every share under a stop, a market sell is refused: insufficient qty available."""
    await broker.submit(stop("stop-1", 171.0))
    with pytest.raises(OrderRejected, match=r"insufficient qty available.*available: 0"):
        await broker.submit(sell("sell-1"))
    with pytest.raises(OrderRejected, match="insufficient qty"):
        await broker.submit(stop("stop-2", 160.0, qty=1))
    assert holding.position_qty("AAPL") == HELD
    (position,) = await broker.positions()
    assert position.qty == HELD


async def test_shares_not_under_a_stop_can_still_be_sold(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """A stop for 6 of 10 leaves 4 to sell: 5 is refused (available: 4), 4 fills."""
    await broker.submit(stop("stop-1", 171.0, qty=6))
    with pytest.raises(OrderRejected, match=r"requested: 5, available: 4"):
        await broker.submit(sell("sell-1", qty=5))
    sold = await broker.submit(sell("sell-2", qty=4))
    assert sold.status is BrokerOrderStatus.FILLED
    assert holding.position_qty("AAPL") == 6
    assert holding.order_status("stop-1") == "new"


async def test_an_open_market_sell_holds_its_shares_too(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """An unfilled market sell holds its shares: a stop for them is refused."""
    holding.fill_mode = "accepted"
    await broker.submit(sell("sell-1", qty=7))
    with pytest.raises(OrderRejected, match=r"requested: 4, available: 3"):
        await broker.submit(stop("stop-1", 171.0, qty=4))
    placed = await broker.submit(stop("stop-2", 171.0, qty=3))
    assert placed.status is BrokerOrderStatus.ACCEPTED


async def test_a_canceled_stop_frees_its_shares(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """cancel (lookup by client id, DELETE by id) ends the stop; then the market sell fills."""
    await broker.submit(stop("stop-1", 171.0))
    await broker.cancel("stop-1")
    canceled = await broker.order_by_client_id("stop-1")
    assert canceled is not None
    assert canceled.status is BrokerOrderStatus.CANCELED
    assert len(holding.requests_to("DELETE", f"/v2/orders/{canceled.broker_order_id}")) == 1
    assert holding.open_orders() == []
    sold = await broker.submit(sell("sell-1"))
    assert sold.status is BrokerOrderStatus.FILLED
    assert await broker.positions() == []
    await broker.cancel("stop-1")  # already final: left alone, no second DELETE
    assert len(holding.requests_to("DELETE", f"/v2/orders/{canceled.broker_order_id}")) == 1


# ---------------------------------------------------------------- triggering


async def test_a_triggered_stop_fills_at_the_price_and_is_an_account_fill(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """A gap through 171 to 168.5 fills the stop at 168.5; the fill is listed with its order."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    placed = await broker.submit(stop("stop-1", 171.0))
    cash = holding.cash
    assert holding.trigger_stops("AAPL", 168.5) == ["stop-1"]
    filled = await broker.order_by_client_id("stop-1")
    assert filled is not None
    assert filled.status is BrokerOrderStatus.FILLED
    assert (filled.filled_qty, filled.filled_avg_price, filled.stop_price) == (HELD, 168.5, 171.0)
    assert filled.filled_at is not None
    assert await broker.positions() == []
    assert holding.cash == pytest.approx(cash + HELD * 168.5)
    assert holding.prices["AAPL"] == 168.5
    (fill,) = await broker.account_fills(since)
    assert fill.broker_order_id == placed.broker_order_id
    assert (fill.symbol, fill.side, fill.qty, fill.price) == ("AAPL", OrderSide.SELL, HELD, 168.5)


async def test_a_stop_triggers_at_its_price_and_not_above(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """171.01 leaves a 171 stop resting; 171 fills it; other symbols are not touched."""
    holding.set_position("MSFT", 5, 360.0)
    await broker.submit(stop("stop-aapl", 171.0))
    await broker.submit(stop("stop-msft", 350.0, qty=5, symbol="MSFT"))
    assert holding.trigger_stops("AAPL", 171.01) == []
    assert holding.order_status("stop-aapl") == "new"
    assert holding.trigger_stops("AAPL", 171.0) == ["stop-aapl"]
    assert holding.order_status("stop-aapl") == "filled"
    assert holding.order_status("stop-msft") == "new"
    assert holding.trigger_stops("AAPL", 100.0) == []  # nothing open is left


async def test_only_the_stops_reached_fill_oldest_first(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """Three stops on one position: 170 reaches only the 175 one; 150 the other two, in order."""
    await broker.submit(stop("stop-low", 160.0, qty=3))
    await broker.submit(stop("stop-high", 175.0, qty=3))
    await broker.submit(stop("stop-mid", 165.0, qty=4))
    assert holding.trigger_stops("AAPL", 170.0) == ["stop-high"]
    assert holding.position_qty("AAPL") == 7
    assert holding.trigger_stops("AAPL", 150.0) == ["stop-low", "stop-mid"]
    assert holding.position_qty("AAPL") == 0


# ---------------------------------------------------------------- splits


async def test_a_forward_split_doubles_the_stop_and_halves_its_price(
    broker: AlpacaBroker, holding: FakeAlpacaTradingServer
) -> None:
    """2-for-1: position 20 @ 90, price 95, the stop 20 @ 85.50 (still resting, same id)."""
    placed = await broker.submit(stop("stop-1", 171.0))
    holding.split("AAPL", 2.0)
    (position,) = await broker.positions()
    assert (position.qty, position.avg_entry_price) == (2 * HELD, ENTRY / 2)
    assert holding.prices["AAPL"] == 95.0
    adjusted = await broker.order_by_client_id("stop-1")
    assert adjusted is not None
    assert (adjusted.qty, adjusted.stop_price) == (2 * HELD, 85.5)
    assert adjusted.status is BrokerOrderStatus.NEW
    assert adjusted.broker_order_id == placed.broker_order_id
    assert holding.trigger_stops("AAPL", 85.5) == ["stop-1"]
    assert await broker.positions() == []


async def test_a_three_for_two_split_floors_shares_and_rounds_the_stop_down(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """11 shares become 16 plus cash in lieu of half a share; a 170.01 stop becomes 113.34."""
    server.set_position("AAPL", 11, 180.0)
    await broker.submit(stop("stop-1", 170.01, qty=11))
    cash = server.cash
    server.split("AAPL", 1.5)
    assert server.position_qty("AAPL") == 16
    assert server.cash == pytest.approx(cash + 0.5 * 190.0 / 1.5)
    (adjusted,) = server.open_orders("AAPL")
    assert (adjusted["qty"], adjusted["stop_price"]) == (16, 113.34)  # 113.34 = 170.01/1.5 down


async def test_a_reverse_split_cancels_open_stops_unless_told_to_adjust(
    broker: AlpacaBroker, server: FakeAlpacaTradingServer
) -> None:
    """1-for-10: the stop is canceled by default; with cancel_on_reverse=False it is adjusted."""
    server.set_position("AAPL", 100, 18.0)
    server.set_position("MSFT", 100, 36.0)
    await broker.submit(stop("stop-aapl", 17.0, qty=100))
    await broker.submit(stop("stop-msft", 33.33, qty=100, symbol="MSFT"))
    server.split("AAPL", 0.1)
    canceled = await broker.order_by_client_id("stop-aapl")
    assert canceled is not None
    assert canceled.status is BrokerOrderStatus.CANCELED
    assert server.position_qty("AAPL") == 10
    assert server.prices["AAPL"] == pytest.approx(1900.0)
    server.split("MSFT", 0.1, cancel_on_reverse=False)
    adjusted = await broker.order_by_client_id("stop-msft")
    assert adjusted is not None
    assert (adjusted.status, adjusted.qty, adjusted.stop_price) == (
        BrokerOrderStatus.NEW,
        10,
        333.3,
    )


# ---------------------------------------------------------------- the fake's validation


@pytest.mark.parametrize("price", ["123.456", "1.001", "0.12345", "0.00001"])
def test_the_fake_refuses_a_sub_penny_stop(holding: FakeAlpacaTradingServer, price: str) -> None:
    """More decimals than the tick allows: 422 42210000, as Alpaca answers; nothing rests."""
    status, body = post_order(holding, stop_price=price)
    assert (status, body) == (422, {"code": 42210000, "message": SUB_PENNY})
    assert holding.open_orders() == []


@pytest.mark.parametrize("price", ["123.45", "1.00", "0.1234", "0.0001"])
def test_the_fake_takes_a_stop_on_the_tick(holding: FakeAlpacaTradingServer, price: str) -> None:
    """On the tick the stop rests; the answer carries type, time in force and the stop price."""
    status, body = post_order(holding, stop_price=price)
    assert status == 200, body
    assert (body["type"], body["order_type"], body["time_in_force"]) == ("stop", "stop", "gtc")
    assert float(body["stop_price"]) == float(price)
    assert body["status"] == "accepted"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"side": "buy"}, "only stop sell"),
        ({"time_in_force": "day"}, "only gtc stop"),
        ({"stop_price": None}, "invalid stop_price"),
        ({"stop_price": "0"}, "stop_price must be > 0"),
        ({"stop_price": "-1"}, "stop_price must be > 0"),
        ({"type": "market"}, "only day market"),
        ({"type": "limit", "limit_price": "1"}, "only market and stop"),
    ],
)
def test_the_fake_refuses_other_orders(
    holding: FakeAlpacaTradingServer, fields: dict[str, Any], message: str
) -> None:
    """Stops are gtc sells with a positive price; market orders stay day orders."""
    status, body = post_order(holding, **{"stop_price": "150.00", **fields})
    assert status == 422
    assert message in body["message"]
    assert holding.open_orders() == []
