"""SimBroker's resting protective stops: GTC stop sells filled during a session.

A gap down through the stop fills at the open; a session whose low reaches the
stop fills at the stop; slippage and commission as for any sell. A resting stop
holds its shares (no second sell of them), survives a restart, never expires,
and a cancel takes it off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from actors.brokers.base import BrokerOrderStatus, OrderRejected, OrderRequest, OrderSide
from actors.brokers.sim import SimBroker
from actors.brokers.sim_stops import quiet_key, stop_fill
from actors.market.calendar import ExchangeCalendar
from actors.store.sim_broker import SimActionRow, SimOrderRow
from daemon.clock import SimClock
from daemon.store import Store
from tests.actors.brokers.test_sim_broker import MON, TUE, WED, FakePrices, et, order

THU = dt.date(2024, 1, 11)
FRI2 = dt.date(2024, 1, 12)


@pytest.fixture(scope="module")
def calendar() -> ExchangeCalendar:
    return ExchangeCalendar("XNYS", start=dt.date(2023, 6, 1), end=dt.date(2024, 12, 31)).load()


@pytest.fixture
def clock() -> SimClock:
    return SimClock(et(MON, 8))


class LowPrices(FakePrices):
    """FakePrices that also know each session's low."""

    def __init__(self) -> None:
        super().__init__()
        self.lows: dict[tuple[str, dt.date], float] = {}

    async def low_price(self, symbol: str, session: dt.date) -> float | None:
        return self.lows.get((symbol, session))


def day(prices: LowPrices, session: dt.date, open_: float, low: float, close: float) -> None:
    prices.opens[("AAA", session)] = open_
    prices.lows[("AAA", session)] = low
    prices.closes[("AAA", session)] = close


async def holding(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> SimBroker:
    """100 AAA bought at Monday's open, and a stop at 90 resting from Tuesday."""
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=prices)
    day(prices, MON, 100.0, 98.0, 99.0)
    await broker.submit(order("buy", OrderSide.BUY, 100))
    clock.set_time(et(MON, 17))
    stop = await broker.submit(OrderRequest("stop-AAA", "AAA", OrderSide.SELL, 100, 90.0))
    assert stop.status is BrokerOrderStatus.ACCEPTED
    assert stop.stop_price == 90.0
    return broker


def test_the_fill_rule() -> None:
    assert stop_fill(90.0, 85.0, 80.0) == 85.0  # gap through the stop: the open
    assert stop_fill(90.0, 95.0, 89.0) == 90.0  # the low reaches it: the stop
    assert stop_fill(90.0, 95.0, 90.5) is None
    assert stop_fill(90.0, 95.0, None) is None


async def test_a_gap_down_fills_at_the_open(
    store: Store, clock: SimClock, calendar: ExchangeCalendar
) -> None:
    prices = LowPrices()
    broker = await holding(store, clock, calendar, prices)
    day(prices, TUE, 96.0, 95.0, 95.5)
    day(prices, WED, 80.0, 78.0, 79.0)  # opens far below the stop
    clock.set_time(et(WED, 10))
    filled = await broker.order_by_client_id("stop-AAA")
    assert filled is not None
    assert filled.status is BrokerOrderStatus.FILLED
    assert filled.filled_avg_price == pytest.approx(80.0 * (1 - 7.5e-4))
    assert await broker.positions() == []


async def test_a_low_through_the_stop_fills_at_the_stop_after_the_close(
    store: Store, clock: SimClock, calendar: ExchangeCalendar
) -> None:
    prices = LowPrices()
    broker = await holding(store, clock, calendar, prices)
    day(prices, TUE, 96.0, 89.0, 93.0)  # trades down to 89 during the day
    clock.set_time(et(TUE, 12))
    during = await broker.order_by_client_id("stop-AAA")
    assert during is not None
    assert during.status is BrokerOrderStatus.ACCEPTED  # the low is known after the close
    clock.set_time(et(TUE, 17))
    filled = await broker.order_by_client_id("stop-AAA")
    assert filled is not None
    assert filled.status is BrokerOrderStatus.FILLED
    assert filled.filled_avg_price == pytest.approx(90.0 * (1 - 7.5e-4))


async def test_a_resting_stop_holds_its_shares_survives_a_restart_and_never_expires(
    store: Store, clock: SimClock, calendar: ExchangeCalendar
) -> None:
    prices = LowPrices()
    broker = await holding(store, clock, calendar, prices)
    with pytest.raises(OrderRejected, match="insufficient qty"):
        await broker.submit(order("exit", OrderSide.SELL, 100))
    for session in (TUE, WED, THU):
        day(prices, session, 95.0, 92.0, 94.0)
    clock.set_time(et(THU, 17))
    again = SimBroker(store, clock=clock, calendar=calendar, prices=prices)
    resting = await again.order_by_client_id("stop-AAA")
    assert resting is not None
    assert resting.status is BrokerOrderStatus.ACCEPTED
    day(prices, FRI2, 91.0, 88.0, 89.0)
    clock.set_time(et(FRI2, 17))
    filled = await again.order_by_client_id("stop-AAA")
    assert filled is not None
    assert filled.status is BrokerOrderStatus.FILLED


async def test_a_cancelled_stop_frees_its_shares(
    store: Store, clock: SimClock, calendar: ExchangeCalendar
) -> None:
    prices = LowPrices()
    broker = await holding(store, clock, calendar, prices)
    await broker.cancel("stop-AAA")
    cancelled = await broker.order_by_client_id("stop-AAA")
    assert cancelled is not None
    assert cancelled.status is BrokerOrderStatus.CANCELED
    day(prices, TUE, 80.0, 78.0, 79.0)
    clock.set_time(et(TUE, 10))
    sold = await broker.submit(order("exit", OrderSide.SELL, 100))
    assert sold.status is BrokerOrderStatus.FILLED


def test_a_stop_order_is_a_protective_sell() -> None:
    with pytest.raises(ValueError, match="side must be sell"):
        OrderRequest("s", "AAA", OrderSide.BUY, 1, 90.0)
    with pytest.raises(ValueError, match="stop price must be positive"):
        OrderRequest("s", "AAA", OrderSide.SELL, 1, 0.0)


class CountingPrices(LowPrices):
    """LowPrices that count the opens asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, dt.date]] = []

    async def open_price(self, symbol: str, session: dt.date) -> float | None:
        self.asked.append((symbol, session))
        return await super().open_price(symbol, session)


async def test_an_untouched_stop_is_not_looked_at_again_before_the_close(
    store: Store, clock: SimClock, calendar: ExchangeCalendar
) -> None:
    """An open above the stop is asked once; the stop waits for the close, then fills on its low."""
    prices = CountingPrices()
    broker = await holding(store, clock, calendar, prices)
    day(prices, TUE, 96.0, 89.0, 93.0)
    clock.set_time(et(TUE, 10))
    await broker.settle()
    asked = prices.asked.count(("AAA", TUE))
    assert asked == 1
    for hour in (11, 12, 15):
        clock.set_time(et(TUE, hour))
        await broker.positions()
        await broker.account()
        resting = await broker.order_by_client_id("stop-AAA")
        assert resting is not None
        assert resting.status is BrokerOrderStatus.ACCEPTED
    assert prices.asked.count(("AAA", TUE)) == asked
    clock.set_time(et(TUE, 17))
    filled = await broker.order_by_client_id("stop-AAA")
    assert filled is not None
    assert filled.status is BrokerOrderStatus.FILLED
    assert filled.filled_avg_price == pytest.approx(90.0 * (1 - 7.5e-4))


async def test_a_stop_whose_open_is_unknown_is_looked_at_every_time(
    store: Store, clock: SimClock, calendar: ExchangeCalendar
) -> None:
    """While its session's open is not known, each call asks again; a gap then fills it."""
    prices = CountingPrices()
    broker = await holding(store, clock, calendar, prices)
    clock.set_time(et(TUE, 10))
    await broker.settle()
    await broker.settle()
    assert prices.asked.count(("AAA", TUE)) == 2
    day(prices, TUE, 85.0, 84.0, 86.0)
    filled = await broker.order_by_client_id("stop-AAA")
    assert filled is not None
    assert filled.status is BrokerOrderStatus.FILLED
    assert filled.filled_avg_price == pytest.approx(85.0 * (1 - 7.5e-4))


def test_the_quiet_key_is_the_stop_in_its_sessions_terms() -> None:
    """A split applied after the stop's session changes the stop it is checked at."""
    stop = SimOrderRow("s", "sim-s", "AAA", "sell", 100, 0, None, "accepted", TUE, et(MON, 17))
    stop = replace(stop, stop_price=90.0)
    split = SimActionRow(
        "a", "forward_split", "AAA", None, WED, 2.0, 100, 200, 0.0, None, credited=True
    )
    assert quiet_key(stop, []) == ("AAA", TUE, 90.0)
    assert quiet_key(stop, [split]) == ("AAA", TUE, 180.0)
    assert quiet_key(replace(stop, trade_date=WED), [split]) == ("AAA", WED, 90.0)
    assert quiet_key(stop, [split], WED) == ("AAA", WED, 90.0)
