"""SimBroker applies a corporate action to the shares it held at the ex date, however late
it hears of it, and its resting stops follow a split (FINRA Rule 5330) or go at a rename.

A broker can first hear of an action after its ex date (the symbol bought after the
split; an announcement that came late). Shares bought on or after the ex date were
bought at the new prices: they are not split again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from actors.brokers.base import OrderRequest, OrderSide
from actors.brokers.sim import SimBroker
from actors.market.calendar import ExchangeCalendar
from actors.market.corporate_actions import ActionKind, CorporateAction
from daemon.clock import SimClock
from daemon.store import Store
from tests.actors.brokers.test_sim_broker import MON, TUE, WED, et, order
from tests.actors.brokers.test_sim_broker_stops import THU, LowPrices, day


class LateNews:
    """A source of actions that reports them only once ``known`` is set."""

    def __init__(self, actions: Sequence[CorporateAction]) -> None:
        self.actions = list(actions)
        self.known = False

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        if not self.known:
            return []
        return [a for a in self.actions if a.symbol in symbols and start <= a.ex_date <= end]


@pytest.fixture(scope="module")
def calendar() -> ExchangeCalendar:
    return ExchangeCalendar("XNYS", start=dt.date(2023, 6, 1), end=dt.date(2024, 12, 31)).load()


def split(ratio: float, ex: dt.date = TUE) -> CorporateAction:
    kind = ActionKind.FORWARD_SPLIT if ratio > 1 else ActionKind.REVERSE_SPLIT
    return CorporateAction(kind, "AAA", ex, "test", ratio=ratio)


def priced() -> LowPrices:
    prices = LowPrices()
    day(prices, MON, 100.0, 99.0, 100.0)
    day(prices, TUE, 50.0, 49.0, 50.0)  # the 2:1 split's ex date
    day(prices, WED, 50.0, 49.0, 50.0)
    day(prices, THU, 50.0, 49.0, 50.0)
    return prices


async def qty(broker: SimBroker) -> int:
    positions = {p.symbol: p.qty for p in await broker.positions()}
    return positions.get("AAA", 0)


async def test_shares_bought_after_the_ex_date_are_not_split_again(
    store: Store, calendar: ExchangeCalendar
) -> None:
    news = LateNews([split(2.0)])
    clock = SimClock(et(WED, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=priced(), actions=news)
    await broker.submit(order("buy-wed", OrderSide.BUY, 100))  # at Wednesday's open, 50
    news.known = True
    clock.set_time(et(THU, 8))
    assert await qty(broker) == 100


async def test_a_late_split_splits_the_shares_held_at_the_ex_date_only(
    store: Store, calendar: ExchangeCalendar
) -> None:
    news = LateNews([split(2.0)])
    clock = SimClock(et(MON, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=priced(), actions=news)
    await broker.submit(order("buy-mon", OrderSide.BUY, 100))  # before the split, at 100
    clock.set_time(et(WED, 8))
    await broker.submit(order("buy-wed", OrderSide.BUY, 50))  # after it, at 50
    news.known = True
    clock.set_time(et(THU, 8))
    assert await qty(broker) == 250  # 100 x 2 + 50
    account = await broker.account()
    assert account.equity == pytest.approx(account.cash + 250 * 50.0, rel=1e-6)


async def test_a_split_adjusts_the_resting_stop_and_a_rename_cancels_it(
    store: Store, calendar: ExchangeCalendar
) -> None:
    rename = CorporateAction(ActionKind.RENAME, "AAA", THU, "test", new_symbol="AAB")
    news = LateNews([split(0.1), rename])
    news.known = True
    clock = SimClock(et(MON, 8))
    prices = priced()
    day(prices, TUE, 1000.0, 990.0, 1000.0)  # a 1:10 reverse split this time
    day(prices, WED, 1000.0, 990.0, 1000.0)
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=prices, actions=news)
    await broker.submit(order("buy-mon", OrderSide.BUY, 105))
    clock.set_time(et(MON, 17))
    await broker.submit(OrderRequest("stop-1", "AAA", OrderSide.SELL, 105, 90.0))
    clock.set_time(et(TUE, 8))
    stop = await broker.order_by_client_id("stop-1")
    assert stop is not None
    assert (stop.qty, stop.stop_price) == (10, 900.0)  # floor(105 x 0.1) at 90 / 0.1
    clock.set_time(et(THU, 8))
    stop = await broker.order_by_client_id("stop-1")
    assert stop is not None
    assert stop.status.value == "canceled"
    assert {p.symbol: p.qty for p in await broker.positions()} == {"AAB": 10}


async def test_a_close_from_before_a_split_marks_in_todays_terms(
    store: Store, calendar: ExchangeCalendar
) -> None:
    """No bar since Monday: Monday's close, halved by Tuesday's 2:1 split, marks Wednesday."""
    news = LateNews([split(2.0)])
    news.known = True
    prices = LowPrices()
    day(prices, MON, 100.0, 99.0, 100.0)
    clock = SimClock(et(MON, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=prices, actions=news)
    await broker.submit(order("buy-mon", OrderSide.BUY, 100))
    clock.set_time(et(WED, 17))
    (position,) = await broker.positions()
    assert position.qty == 200
    assert position.market_value == pytest.approx(200 * 50.0)
    account = await broker.account()
    assert account.equity == pytest.approx(account.cash + 200 * 50.0)
