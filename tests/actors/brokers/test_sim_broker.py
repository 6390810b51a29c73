"""SimBroker: Alpaca-like order handling over the store, fills at the session open."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from actors.brokers.base import (
    AccountBlocked,
    Broker,
    BrokerOrder,
    BrokerOrderStatus,
    DuplicateClientOrderId,
    LooksUpManyOrders,
    OrderRejected,
    OrderRequest,
    OrderSide,
    ReadsBook,
)
from actors.brokers.sim import MARK_LOOKBACK_SESSIONS, SimBroker, sim_broker_order_id
from actors.market.calendar import ExchangeCalendar
from actors.store import open_store
from daemon.clock import SimClock
from daemon.store import Store

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
FRI = dt.date(2024, 1, 5)
MON = dt.date(2024, 1, 8)
TUE = dt.date(2024, 1, 9)
WED = dt.date(2024, 1, 10)
MON_OPEN = dt.datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
TUE_OPEN = dt.datetime(2024, 1, 9, 14, 30, tzinfo=UTC)
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def et(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """A New York wall-clock time on ``day`` as an aware UTC datetime."""
    return dt.datetime.combine(day, dt.time(hour, minute), NY).astimezone(UTC)


class FakePrices:
    """A dict-backed price source; a missing entry is a price not known yet."""

    def __init__(self) -> None:
        self.opens: dict[tuple[str, dt.date], float] = {}
        self.closes: dict[tuple[str, dt.date], float] = {}

    async def open_price(self, symbol: str, session: dt.date) -> float | None:
        return self.opens.get((symbol, session))

    async def close_price(self, symbol: str, session: dt.date) -> float | None:
        return self.closes.get((symbol, session))


@pytest.fixture(scope="module")
def calendar() -> ExchangeCalendar:
    return ExchangeCalendar("XNYS", start=dt.date(2023, 6, 1), end=dt.date(2024, 12, 31)).load()


@pytest.fixture
def clock() -> SimClock:
    return SimClock(et(MON, 9))


@pytest.fixture
def prices() -> FakePrices:
    p = FakePrices()
    p.closes[("AAA", FRI)] = 99.0
    return p


@pytest.fixture
def broker(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: FakePrices
) -> SimBroker:
    return SimBroker(store, clock=clock, calendar=calendar, prices=prices)


def order(coid: str, side: OrderSide, qty: int, symbol: str = "AAA") -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol=symbol, side=side, qty=qty)


async def lookup(broker: SimBroker, coid: str) -> BrokerOrder:
    found = await broker.order_by_client_id(coid)
    assert found is not None
    return found


# ---------------------------------------------------------------- fills


def test_sim_broker_speaks_the_broker_protocol(broker: SimBroker) -> None:
    """SimBroker satisfies the Broker protocol and is named "sim"."""
    assert isinstance(broker, Broker)
    assert broker.name == "sim"


async def test_buy_before_the_open_fills_at_that_sessions_open_with_costs(
    broker: SimBroker, prices: FakePrices
) -> None:
    """A buy before the open fills at once at the session's known open plus slippage."""
    prices.opens[("AAA", MON)] = 100.0
    placed = await broker.submit(order("b1", BUY, 10))
    assert placed.status is BrokerOrderStatus.FILLED
    assert placed.filled_qty == 10
    assert placed.filled_avg_price == pytest.approx(100.075, abs=1e-9)
    assert placed.filled_at == MON_OPEN
    assert placed.broker_order_id == sim_broker_order_id("b1")
    account = await broker.account()
    assert account.cash == pytest.approx(100_000 - 1000.75 - 0.05, abs=1e-6)
    assert round(account.cash, 2) == 98_999.20
    [position] = await broker.positions()
    assert (position.symbol, position.qty) == ("AAA", 10)
    assert position.avg_entry_price == pytest.approx(100.075, abs=1e-9)


async def test_buy_without_a_known_open_stays_accepted_and_fills_on_settle(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """Without the open price the order waits ACCEPTED; settle fills it once the price is known."""
    placed = await broker.submit(order("b1", BUY, 10))
    assert placed.status is BrokerOrderStatus.ACCEPTED
    assert placed.filled_qty == 0
    assert (await broker.account()).cash == 100_000
    assert await broker.positions() == []

    prices.opens[("AAA", MON)] = 100.0
    clock.set_time(et(MON, 10))
    await broker.settle()
    filled = await lookup(broker, "b1")
    assert filled.status is BrokerOrderStatus.FILLED
    assert filled.filled_avg_price == pytest.approx(100.075, abs=1e-9)
    assert (await broker.account()).cash == pytest.approx(98_999.20, abs=1e-6)


async def test_reading_an_order_settles_it(broker: SimBroker, prices: FakePrices) -> None:
    """order_by_client_id settles first, so a newly known open price shows as a fill."""
    await broker.submit(order("b1", BUY, 10))
    prices.opens[("AAA", MON)] = 100.0
    assert (await lookup(broker, "b1")).status is BrokerOrderStatus.FILLED


async def test_many_orders_read_together_are_the_orders_read_one_by_one(
    broker: SimBroker, prices: FakePrices
) -> None:
    """One settle, then each id as ``order_by_client_id`` answers it (unknown: None)."""
    assert isinstance(broker, LooksUpManyOrders)
    prices.closes[("BBB", FRI)] = 50.0
    await broker.submit(order("m1", BUY, 10))  # no open known yet: accepted
    await broker.submit(order("m2", BUY, 5, symbol="BBB"))
    prices.opens[("AAA", MON)] = 100.0  # m1 fills at the next settle, m2 stays accepted
    together = await broker.orders_by_client_ids(["m1", "m2", "nope"])
    m1, m2 = together["m1"], together["m2"]
    assert m1 is not None
    assert m1.status is BrokerOrderStatus.FILLED
    assert m2 is not None
    assert m2.status is BrokerOrderStatus.ACCEPTED
    assert together["nope"] is None
    assert together == {c: await broker.order_by_client_id(c) for c in ("m1", "m2", "nope")}


async def test_sell_reduces_the_position_and_adds_cash(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """A sell fills at the open less slippage, pays commission, and shrinks the position."""
    prices.opens[("AAA", MON)] = 100.0
    prices.opens[("AAA", TUE)] = 110.0
    await broker.submit(order("b1", BUY, 10))
    clock.set_time(et(TUE, 9))
    sold = await broker.submit(order("s1", SELL, 4))
    assert sold.status is BrokerOrderStatus.FILLED
    assert sold.filled_avg_price == pytest.approx(109.9175, abs=1e-9)
    assert sold.filled_at == TUE_OPEN
    account = await broker.account()
    assert account.cash == pytest.approx(98_999.20 + 4 * 109.9175 - 0.02, abs=1e-6)
    [position] = await broker.positions()
    assert position.qty == 6
    assert position.avg_entry_price == pytest.approx(100.075, abs=1e-9)


async def test_selling_the_whole_position_closes_it(broker: SimBroker, prices: FakePrices) -> None:
    """Selling every share removes the position."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    await broker.submit(order("s1", SELL, 10))
    assert await broker.positions() == []


async def test_buys_average_the_entry_price(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """Two buys give a position whose entry price is the share-weighted average fill."""
    prices.opens[("AAA", MON)] = 100.0
    prices.opens[("AAA", TUE)] = 200.0
    await broker.submit(order("b1", BUY, 10))
    clock.set_time(et(TUE, 9))
    await broker.submit(order("b2", BUY, 30))
    [position] = await broker.positions()
    assert position.qty == 40
    assert position.avg_entry_price == pytest.approx((10 * 100.075 + 30 * 200.15) / 40, abs=1e-9)


# ---------------------------------------------------------------- trade session


@pytest.mark.parametrize(
    ("submitted", "fills_at"),
    [
        (et(MON, 8), MON_OPEN),  # before the open: today's open
        (et(MON, 11), MON_OPEN),  # market open: today's open (documented approximation)
        (et(MON, 16, 30), TUE_OPEN),  # after the close: the next session
        (et(dt.date(2024, 1, 6), 12), MON_OPEN),  # Saturday: Monday
        (et(dt.date(2024, 1, 15), 10), dt.datetime(2024, 1, 16, 14, 30, tzinfo=UTC)),  # MLK Day
    ],
)
async def test_an_order_fills_at_the_open_of_its_trade_session(
    store: Store,
    calendar: ExchangeCalendar,
    prices: FakePrices,
    submitted: dt.datetime,
    fills_at: dt.datetime,
) -> None:
    """The trade session follows the exchange-local time of submission."""
    session = fills_at.astimezone(NY).date()
    prices.opens[("AAA", session)] = 50.0
    sim = SimBroker(store, clock=SimClock(submitted), calendar=calendar, prices=prices)
    placed = await sim.submit(order("b1", BUY, 1))
    assert placed.status is BrokerOrderStatus.FILLED
    assert placed.filled_at == fills_at


# ---------------------------------------------------------------- refusals


async def test_a_sell_for_more_than_held_is_rejected(broker: SimBroker, prices: FakePrices) -> None:
    """No shorting: selling more than the position is rejected and does not use the id."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    with pytest.raises(OrderRejected, match="insufficient qty"):
        await broker.submit(order("s1", SELL, 11))
    with pytest.raises(OrderRejected, match="insufficient qty"):
        await broker.submit(order("s2", SELL, 1, symbol="BBB"))
    assert await broker.order_by_client_id("s1") is None
    assert (await broker.submit(order("s1", SELL, 10))).status is BrokerOrderStatus.FILLED


async def test_shares_held_for_accepted_sells_cannot_be_sold_twice(
    broker: SimBroker, store: Store, calendar: ExchangeCalendar, prices: FakePrices
) -> None:
    """Shares promised to an accepted, unfilled sell are not available to another sell."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    late = SimBroker(store, clock=SimClock(et(MON, 17)), calendar=calendar, prices=prices)
    assert (await late.submit(order("s1", SELL, 6))).status is BrokerOrderStatus.ACCEPTED
    with pytest.raises(OrderRejected, match=r"insufficient qty .*available 4"):
        await late.submit(order("s2", SELL, 5))


async def test_a_buy_beyond_cash_is_rejected(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: FakePrices
) -> None:
    """A buy whose cost with slippage and commission exceeds cash is rejected."""
    prices.opens[("AAA", MON)] = 100.0
    sim = SimBroker(store, clock=clock, calendar=calendar, prices=prices, initial_cash=1000.0)
    with pytest.raises(OrderRejected, match="insufficient buying power"):
        await sim.submit(order("b1", BUY, 10))  # 1000.75 + 0.05 > 1000
    assert (await sim.submit(order("b2", BUY, 9))).status is BrokerOrderStatus.FILLED
    assert await sim.order_by_client_id("b1") is None


async def test_accepted_buys_hold_cash_for_later_buys(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: FakePrices
) -> None:
    """Cash promised to an accepted, unfilled buy (at the last close) is not spent twice."""
    sim = SimBroker(store, clock=clock, calendar=calendar, prices=prices, initial_cash=2000.0)
    assert (await sim.submit(order("b1", BUY, 10))).status is BrokerOrderStatus.ACCEPTED
    with pytest.raises(OrderRejected, match="insufficient buying power"):
        await sim.submit(order("b2", BUY, 11))  # 10 x 99 + 11 x 99, with costs, > 2000


async def test_a_buy_of_a_symbol_without_any_price_is_rejected(broker: SimBroker) -> None:
    """A buy that cannot be priced at all is refused rather than accepted blind."""
    with pytest.raises(OrderRejected, match="no price known for ZZZ"):
        await broker.submit(order("b1", BUY, 1, symbol="ZZZ"))


async def test_a_reused_client_order_id_is_a_duplicate_forever(
    broker: SimBroker, prices: FakePrices
) -> None:
    """An id once used is refused again, whether that order filled or was canceled."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    with pytest.raises(DuplicateClientOrderId):
        await broker.submit(order("b1", BUY, 10))
    with pytest.raises(DuplicateClientOrderId):
        await broker.submit(order("b1", SELL, 1))
    del prices.opens[("AAA", MON)]
    await broker.submit(order("b2", BUY, 1))
    await broker.cancel("b2")
    with pytest.raises(DuplicateClientOrderId):
        await broker.submit(order("b2", BUY, 1))
    [position] = await broker.positions()
    assert position.qty == 10


async def test_a_blocked_account_refuses_orders(broker: SimBroker, prices: FakePrices) -> None:
    """trading_blocked makes submit raise AccountBlocked until it is lifted."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.set_trading_blocked(True)
    account = await broker.account()
    assert account.trading_blocked
    assert not account.can_trade
    with pytest.raises(AccountBlocked):
        await broker.submit(order("b1", BUY, 1))
    await broker.set_trading_blocked(False)
    assert (await broker.submit(order("b1", BUY, 1))).status is BrokerOrderStatus.FILLED


@pytest.mark.parametrize("qty", [0, -1])
def test_orders_are_for_positive_whole_shares(qty: int) -> None:
    """OrderRequest refuses a quantity that is not a positive whole number."""
    with pytest.raises(ValueError, match="positive whole number"):
        order("b1", BUY, qty)


# ---------------------------------------------------------------- cancel and expiry


async def test_cancel_an_accepted_order(broker: SimBroker, prices: FakePrices) -> None:
    """A canceled order never fills, even when its price turns up."""
    await broker.submit(order("b1", BUY, 10))
    await broker.cancel("b1")
    prices.opens[("AAA", MON)] = 100.0
    assert (await lookup(broker, "b1")).status is BrokerOrderStatus.CANCELED
    assert (await broker.account()).cash == 100_000
    assert await broker.positions() == []


async def test_cancel_of_a_filled_or_unknown_order_changes_nothing(
    broker: SimBroker, prices: FakePrices
) -> None:
    """Cancelling a terminal order or an unknown id is a no-op."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    await broker.cancel("b1")
    await broker.cancel("nope")
    assert (await lookup(broker, "b1")).status is BrokerOrderStatus.FILLED


async def test_a_day_order_whose_session_passed_without_a_price_expires(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """An order still unpriced when the next session opens is EXPIRED and frees its cash."""
    await broker.submit(order("b1", BUY, 10))
    clock.set_time(et(MON, 17))
    assert (await lookup(broker, "b1")).status is BrokerOrderStatus.ACCEPTED  # late bar grace
    clock.set_time(TUE_OPEN)
    expired = await lookup(broker, "b1")
    assert expired.status is BrokerOrderStatus.EXPIRED
    assert expired.filled_qty == 0
    prices.opens[("AAA", MON)] = 100.0
    assert (await lookup(broker, "b1")).status is BrokerOrderStatus.EXPIRED
    assert (await broker.account()).cash == 100_000


async def test_a_late_open_price_still_fills_before_the_next_session(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """A daily feed that learns Monday's open after the close still fills Monday's order."""
    await broker.submit(order("b1", BUY, 10))
    clock.set_time(et(TUE, 8))
    prices.opens[("AAA", MON)] = 100.0
    filled = await lookup(broker, "b1")
    assert filled.status is BrokerOrderStatus.FILLED
    assert filled.filled_at == MON_OPEN


async def test_a_sell_whose_shares_vanished_is_rejected_at_fill(
    broker: SimBroker, prices: FakePrices
) -> None:
    """If the shares are gone when an accepted sell fills, it is rejected, never shorted."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    del prices.opens[("AAA", MON)]
    await broker.submit(order("s1", SELL, 10))
    await broker.adjust_position("AAA", 3, 100.075)
    prices.opens[("AAA", MON)] = 100.0
    rejected = await lookup(broker, "s1")
    assert rejected.status is BrokerOrderStatus.REJECTED
    assert rejected.reject_reason is not None
    assert "insufficient qty" in rejected.reject_reason
    [position] = await broker.positions()
    assert position.qty == 3


# ---------------------------------------------------------------- restart


async def test_a_new_broker_on_the_same_store_sees_the_same_book(
    tmp_path: Path, calendar: ExchangeCalendar, prices: FakePrices, clock: SimClock
) -> None:
    """After a restart every order, fill, position, flag and the cash are exactly as they were."""
    path = tmp_path / "restart.db"
    prices.opens[("AAA", MON)] = 100.0
    store = await open_store(path)
    try:
        first = SimBroker(store, clock=clock, calendar=calendar, prices=prices)
        await first.submit(order("b1", BUY, 10))
        clock.set_time(et(MON, 17))
        pending = await first.submit(order("s1", SELL, 4))
        await first.set_trading_blocked(True)
        before = (await first.account(), await first.positions(), await lookup(first, "b1"))
    finally:
        await store.close()
    assert pending.status is BrokerOrderStatus.ACCEPTED

    store = await open_store(path)
    try:
        second = SimBroker(store, clock=clock, calendar=calendar, prices=prices, initial_cash=5.0)
        after = (await second.account(), await second.positions(), await lookup(second, "b1"))
        assert after == before
        assert (await lookup(second, "s1")).status is BrokerOrderStatus.ACCEPTED
        with pytest.raises(DuplicateClientOrderId):
            await second.submit(order("b1", BUY, 1))
        prices.opens[("AAA", TUE)] = 110.0
        assert (await lookup(second, "s1")).status is BrokerOrderStatus.FILLED
        [position] = await second.positions()
        assert position.qty == 6
    finally:
        await store.close()


# ---------------------------------------------------------------- valuation


async def test_a_new_account_starts_with_its_initial_cash(broker: SimBroker) -> None:
    """A fresh account has cash, equity, buying power and last_equity all at the initial cash."""
    account = await broker.account()
    assert (account.cash, account.equity, account.last_equity, account.buying_power) == (
        100_000,
        100_000,
        100_000,
        100_000,
    )
    assert account.can_trade


async def test_equity_marks_positions_at_the_last_closed_sessions_close(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """Positions are marked at the latest close whose session has ended, never a future one."""
    prices.opens[("AAA", MON)] = 100.0
    prices.closes[("AAA", MON)] = 120.0  # known to the source, but Monday has not closed
    await broker.submit(order("b1", BUY, 10))
    clock.set_time(et(MON, 11))
    account = await broker.account()
    assert account.equity == pytest.approx(98_999.20 + 10 * 99.0, abs=1e-6)
    [position] = await broker.positions()
    assert position.market_value == pytest.approx(990.0)
    clock.set_time(et(MON, 16, 1))
    assert (await broker.account()).equity == pytest.approx(98_999.20 + 1200.0, abs=1e-6)


async def test_a_position_without_any_close_is_marked_at_its_entry_price(
    broker: SimBroker,
) -> None:
    """With no close known, a position counts at its average entry price."""
    await broker.adjust_position("ZZZ", 5, 20.0)
    assert (await broker.account()).equity == pytest.approx(100_100.0)


async def test_last_equity_is_the_equity_at_the_previous_close(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """last_equity values the book at the previous session's close, fills since then backed out."""
    prices.opens[("AAA", MON)] = 100.0
    prices.closes[("AAA", MON)] = 102.0
    prices.opens[("AAA", TUE)] = 103.0
    await broker.submit(order("b1", BUY, 10))  # fills at Monday's open, before any read
    monday = await broker.account()
    assert monday.last_equity == pytest.approx(100_000.0, abs=1e-6)  # Friday's close: all cash
    clock.set_time(et(MON, 17))
    evening = await broker.account()
    assert evening.equity == pytest.approx(98_999.20 + 1020.0, abs=1e-6)
    assert evening.last_equity == pytest.approx(100_000.0, abs=1e-6)

    clock.set_time(et(TUE, 9))
    await broker.submit(order("s1", SELL, 10))  # Tuesday's fill happens before the first read
    tuesday = await broker.account()
    assert tuesday.last_equity == pytest.approx(98_999.20 + 1020.0, abs=1e-6)
    assert tuesday.equity == pytest.approx(tuesday.cash, abs=1e-9)


async def test_last_equity_is_snapshotted_once_per_session(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """Once taken, the snapshot holds for the session; later changes behind our back stay out."""
    prices.opens[("AAA", MON)] = 100.0
    prices.closes[("AAA", MON)] = 102.0
    await broker.submit(order("b1", BUY, 10))
    clock.set_time(et(TUE, 9))
    snapshot = (await broker.account()).last_equity
    assert snapshot == pytest.approx(98_999.20 + 1020.0, abs=1e-6)
    await broker.adjust_position("AAA", 100, 100.075)
    clock.set_time(et(TUE, 15))
    account = await broker.account()
    assert account.last_equity == snapshot
    assert account.equity == pytest.approx(98_999.20 + 10_200.0, abs=1e-6)
    clock.set_time(et(WED, 9))
    assert (await broker.account()).last_equity == pytest.approx(98_999.20 + 100 * 102.0)


async def test_last_equity_waits_for_the_previous_close_to_be_known(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """Until the previous session's close is known, last_equity is provisional and not kept."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    clock.set_time(et(TUE, 9))
    provisional = await broker.account()
    assert provisional.last_equity == pytest.approx(98_999.20 + 10 * 99.0, abs=1e-6)  # Friday
    prices.closes[("AAA", MON)] = 102.0
    settled = await broker.account()
    assert settled.last_equity == pytest.approx(98_999.20 + 1020.0, abs=1e-6)


# ---------------------------------------------------------------- clock


async def test_clock_during_market_hours(broker: SimBroker, clock: SimClock) -> None:
    """While the market is open, next_close is today's close and next_open tomorrow's open."""
    clock.set_time(et(MON, 10))
    market = await broker.clock()
    assert market.is_open
    assert market.timestamp == et(MON, 10)
    assert market.next_close == et(MON, 16)
    assert market.next_open == TUE_OPEN


@pytest.mark.parametrize(
    ("now", "next_open", "next_close"),
    [
        (et(MON, 8), MON_OPEN, et(MON, 16)),
        (et(MON, 16), TUE_OPEN, et(TUE, 16)),
        (et(dt.date(2024, 1, 6), 12), MON_OPEN, et(MON, 16)),
    ],
)
async def test_clock_outside_market_hours(
    store: Store,
    calendar: ExchangeCalendar,
    prices: FakePrices,
    now: dt.datetime,
    next_open: dt.datetime,
    next_close: dt.datetime,
) -> None:
    """Before the open, after the close and at weekends the market is closed until the next open."""
    sim = SimBroker(store, clock=SimClock(now), calendar=calendar, prices=prices)
    market = await sim.clock()
    assert not market.is_open
    assert (market.next_open, market.next_close) == (next_open, next_close)


# ---------------------------------------------------------------- hooks


async def test_adjust_position_shows_in_positions(broker: SimBroker) -> None:
    """A position changed behind our back is what positions() reports; qty 0 removes it."""
    await broker.adjust_position("AAA", 7, 95.0)
    [position] = await broker.positions()
    assert (position.symbol, position.qty, position.avg_entry_price) == ("AAA", 7, 95.0)
    assert (await broker.account()).cash == 100_000
    await broker.adjust_position("AAA", 0, 0.0)
    assert await broker.positions() == []
    with pytest.raises(ValueError, match="short"):
        await broker.adjust_position("AAA", -1, 95.0)


async def test_reset_starts_a_fresh_account(broker: SimBroker, prices: FakePrices) -> None:
    """reset() wipes orders and positions and opens the account with the given cash."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    await broker.set_trading_blocked(True)
    await broker.reset(5_000.0)
    account = await broker.account()
    assert (account.cash, account.equity, account.last_equity) == (5_000.0, 5_000.0, 5_000.0)
    assert not account.trading_blocked
    assert await broker.positions() == []
    assert await broker.order_by_client_id("b1") is None


def test_broker_order_ids_are_deterministic() -> None:
    """The broker order id is "sim-" plus 16 hex digits of sha256 of the client id."""
    assert sim_broker_order_id("abc") == "sim-ba7816bf8f01cfea"
    assert sim_broker_order_id("abc") != sim_broker_order_id("abd")


# ---------------------------------------------------------------- closing equity

THU = dt.date(2024, 1, 4)
SAT = dt.date(2024, 1, 6)
SLIP = 7.5 / 10_000  # the reference system's slippage, as a fraction of the price
FEE = 0.005  # commission per share


@pytest.fixture
def three_days(prices: FakePrices) -> FakePrices:
    """Opens and closes for Thursday, Friday and Monday, and Tuesday's opens."""
    prices.opens.update({("AAA", THU): 100.0, ("BBB", FRI): 50.0, ("AAA", MON): 104.0})
    prices.closes.update({("AAA", THU): 101.0, ("AAA", FRI): 103.0, ("BBB", FRI): 49.0})
    prices.closes.update({("AAA", MON): 105.0, ("BBB", MON): 52.0})
    prices.opens.update({("BBB", TUE): 53.0})
    return prices


async def trade_three_days(broker: SimBroker, clock: SimClock) -> None:
    """Thursday buy 10 AAA, Friday buy 5 BBB, Monday sell the 10 AAA, each at that open."""
    for day, request in (
        (THU, order("b-thu", BUY, 10, "AAA")),
        (FRI, order("b-fri", BUY, 5, "BBB")),
        (MON, order("s-mon", SELL, 10, "AAA")),
    ):
        clock.set_time(et(day, 9))
        assert (await broker.submit(request)).status is BrokerOrderStatus.FILLED


def by_hand() -> dict[dt.date, float]:
    """The equity at each close: cash after that day's fill plus the shares held at its closes."""
    cash_thu = 100_000 - 10 * 100.0 * (1 + SLIP) - 10 * FEE
    cash_fri = cash_thu - 5 * 50.0 * (1 + SLIP) - 5 * FEE
    cash_mon = cash_fri + 10 * 104.0 * (1 - SLIP) - 10 * FEE
    return {
        THU: cash_thu + 10 * 101.0,
        FRI: cash_fri + 10 * 103.0 + 5 * 49.0,
        MON: cash_mon + 5 * 52.0,
    }


async def test_closing_equity_is_cash_plus_holdings_at_each_close(
    store: Store, calendar: ExchangeCalendar, three_days: FakePrices
) -> None:
    """After trades on three sessions, each close's equity is that day's cash plus qty x close."""
    clock = SimClock(et(THU, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=three_days)
    await trade_three_days(broker, clock)
    clock.set_time(et(TUE, 8))
    closes = await broker.closing_equity([THU, FRI, MON])
    assert closes == pytest.approx(by_hand(), abs=1e-6)


async def test_closing_equity_is_the_same_before_and_after_later_fills(
    store: Store, calendar: ExchangeCalendar, three_days: FakePrices
) -> None:
    """Reading on Monday evening and again after Tuesday's fill gives the same numbers."""
    clock = SimClock(et(THU, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=three_days)
    await trade_three_days(broker, clock)
    clock.set_time(et(MON, 17))
    evening = await broker.closing_equity([THU, FRI, MON])
    clock.set_time(et(TUE, 9))
    await broker.account()  # takes Monday's last_equity snapshot
    assert (await broker.submit(order("b-tue", BUY, 3, "BBB"))).status is BrokerOrderStatus.FILLED
    clock.set_time(et(TUE, 11))
    after = await broker.closing_equity([THU, FRI, MON])
    assert after == pytest.approx(evening, abs=1e-9)  # the Tuesday fill backed out
    assert evening == pytest.approx(by_hand(), abs=1e-6)
    assert (await broker.account()).last_equity == after[MON]


async def test_closing_equity_omits_a_session_that_has_not_closed(
    store: Store, calendar: ExchangeCalendar, three_days: FakePrices
) -> None:
    """During Monday's session only Friday's close is told, though the source knows Monday's."""
    clock = SimClock(et(THU, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=three_days)
    await trade_three_days(broker, clock)
    clock.set_time(et(MON, 15, 59))
    assert await broker.closing_equity([FRI, MON, TUE]) == pytest.approx(
        {FRI: by_hand()[FRI]}, abs=1e-6
    )


async def test_closing_equity_omits_a_session_with_a_held_close_unknown(
    store: Store, calendar: ExchangeCalendar, three_days: FakePrices
) -> None:
    """Without Friday's BBB close, Friday is omitted; Thursday and Monday are still told."""
    del three_days.closes[("BBB", FRI)]
    clock = SimClock(et(THU, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=three_days)
    await trade_three_days(broker, clock)
    clock.set_time(et(TUE, 8))
    expected = by_hand()
    del expected[FRI]
    assert await broker.closing_equity([THU, FRI, MON]) == pytest.approx(expected, abs=1e-6)


async def test_closing_equity_omits_days_that_are_not_sessions(
    broker: SimBroker, clock: SimClock
) -> None:
    """A Saturday and a date the calendar cannot cover are omitted, not an error."""
    clock.set_time(et(TUE, 8))
    closes = await broker.closing_equity([SAT, dt.date(1600, 1, 3), FRI])
    assert closes == {FRI: 100_000.0}


async def test_closing_equity_agrees_with_the_last_equity_snapshot(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """The snapshot session answers with last_equity, also after a change behind our back."""
    prices.opens[("AAA", MON)] = 100.0
    prices.closes[("AAA", MON)] = 102.0
    await broker.submit(order("b1", BUY, 10))
    clock.set_time(et(TUE, 9))
    snapshot = (await broker.account()).last_equity
    await broker.adjust_position("AAA", 100, 100.075)
    assert await broker.closing_equity([MON]) == {MON: snapshot}


class ManyCloses(FakePrices):
    """FakePrices that also look up many closes at once, and count those lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[list[str], dt.date]] = []

    async def close_prices(self, symbols: Sequence[str], session: dt.date) -> list[float | None]:
        self.batches.append((list(symbols), session))
        return [self.closes.get((s, session)) for s in symbols]


async def test_marks_are_looked_up_together_from_a_source_that_can(
    store: Store, clock: SimClock, calendar: ExchangeCalendar
) -> None:
    """One lookup per session for every position still without a close: the same marks."""
    many = ManyCloses()
    for symbol, close in (("AAA", 10.0), ("BBB", 20.0)):
        many.closes[(symbol, FRI)] = close
    many.closes[("CCC", dt.date(2024, 1, 4))] = 30.0  # Thursday: no close on Friday
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=many)
    for symbol in ("AAA", "BBB", "CCC", "ZZZ"):
        await broker.adjust_position(symbol, 2, 1.0)
    held = await broker.positions()
    assert [p.market_value for p in held] == [20.0, 40.0, 60.0, 2.0]
    assert many.batches[:2] == [
        (["AAA", "BBB", "CCC", "ZZZ"], FRI),
        (["CCC", "ZZZ"], dt.date(2024, 1, 4)),
    ]
    assert len(many.batches) == MARK_LOOKBACK_SESSIONS  # ZZZ has no close at all
    plain = FakePrices()
    plain.closes.update(many.closes)
    other = SimBroker(store, clock=clock, calendar=calendar, prices=plain)
    assert await other.positions() == held
    assert (await other.account()).equity == (await broker.account()).equity


async def test_a_broker_sees_another_brokers_write_on_the_same_store_at_once(
    broker: SimBroker, store: Store, calendar: ExchangeCalendar, prices: FakePrices
) -> None:
    """What one broker read is not kept past another broker's write on the same store."""
    prices.opens[("AAA", MON)] = 100.0
    assert await broker.positions() == []
    cash = (await broker.account()).cash
    other = SimBroker(store, clock=SimClock(et(MON, 10)), calendar=calendar, prices=prices)
    await other.submit(order("b1", BUY, 10))
    [position] = await broker.positions()
    assert position.qty == 10
    assert (await broker.account()).cash < cash
    assert (await lookup(broker, "b1")).status is BrokerOrderStatus.FILLED


async def test_reads_without_a_write_in_between_ask_the_store_nothing(
    broker: SimBroker, store: Store, prices: FakePrices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Account, positions and orders read again, with nothing written, are not queries."""
    prices.opens[("AAA", MON)] = 100.0
    await broker.submit(order("b1", BUY, 10))
    await broker.submit(OrderRequest("stop", "AAA", SELL, 10, 90.0))
    await broker.account()  # writes the last_equity snapshot
    first = (await broker.account(), await broker.positions(), await lookup(broker, "stop"))
    queries: list[str] = []
    for name in ("fetchone", "fetchall"):
        read = getattr(store, name)

        async def counted(sql: str, params: Sequence[Any] = (), _read: Any = read) -> Any:
            queries.append(sql)
            return await _read(sql, params)

        monkeypatch.setattr(store, name, counted)
    again = (await broker.account(), await broker.positions(), await lookup(broker, "stop"))
    assert again == first
    assert await broker.order_by_client_id("b1") is not None
    assert await broker.order_by_client_id("b1") is not None
    assert len(queries) == 1  # the filled b1, once


async def test_the_book_is_account_and_positions_read_together(
    broker: SimBroker, prices: FakePrices, clock: SimClock
) -> None:
    """``book()`` answers what ``account()`` and ``positions()`` answer at the same instant."""
    prices.opens[("AAA", MON)] = 100.0
    prices.closes[("AAA", MON)] = 120.0
    await broker.submit(order("b1", BUY, 10))
    await broker.adjust_position("ZZZ", 5, 20.0)
    clock.set_time(et(TUE, 9))
    account, positions = await broker.book()
    assert isinstance(broker, ReadsBook)
    assert (account, positions) == (await broker.account(), await broker.positions())
    assert [p.market_value for p in positions] == [1200.0, 100.0]
