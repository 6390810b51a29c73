"""Hard pre-trade limits (the pure check, the order manager's last check before a buy),
and the order manager's flatten, which cancels open orders before it sells.

Each limit refuses a buy that breaks it, with its code and numbers; a buy within them
passes; sells are never refused (a limit that keeps a position from closing adds risk).
The order manager refuses such a buy from any path (a re-run, an operator's command)
before it writes or sends anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from actors.brokers.base import BrokerAccount
from actors.brokers.sim import SimBroker
from actors.market.calendar import ExchangeCalendar
from actors.messages import (
    Flatten,
    IntentKind,
    IntentStatus,
    OrderIntentSpec,
    PlaceOrders,
    StopAction,
    SyncRestingStops,
)
from actors.orders import limits
from actors.orders.limits import LimitsParams, OrderCheck, breach
from actors.orders.manager import OrderManager
from actors.risk.fill_terms import ReferenceFillTerms
from daemon.clock import SimClock
from daemon.store import Store
from tests.actors.brokers.test_sim_broker import MON, TUE, et
from tests.actors.brokers.test_sim_broker_stops import LowPrices, day

LIMITS = LimitsParams(
    max_order_notional=10_000.0,
    max_order_qty=500,
    max_position_notional=15_000.0,
    price_collar_pct=0.05,
    max_orders_per_cycle=3,
    max_orders_per_day=5,
    restricted_symbols=("gme",),
)


def check(**changes: object) -> OrderCheck:
    base: dict[str, object] = {"symbol": "AAA", "qty": 50, "price": 100.0, "last_close": 100.0}
    return OrderCheck(**(base | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({}, None),
        ({"symbol": "GME"}, limits.RESTRICTED),
        ({"qty": 501, "price": 1.0, "last_close": 1.0}, limits.ORDER_QTY),
        ({"qty": 101}, limits.ORDER_NOTIONAL),
        ({"held_notional": 10_001.0}, limits.POSITION_NOTIONAL),
        ({"price": 106.0, "last_close": 100.0}, limits.PRICE_COLLAR),
        ({"price": 94.0, "last_close": 100.0}, limits.PRICE_COLLAR),
        ({"price": 104.0, "last_close": None}, None),  # no close to collar against
        ({"orders_this_cycle": 3}, limits.ORDERS_PER_CYCLE),
        ({"orders_today": 5}, limits.ORDERS_PER_DAY),
    ],
)
def test_each_limit(changes: dict[str, object], code: str | None) -> None:
    hit = breach(check(**changes), LIMITS)
    assert (hit.code if hit else None) == code
    if hit is not None:
        assert hit.code in hit.describe()


def test_restricted_symbols_are_read_as_a_list_or_a_comma_list() -> None:
    assert LimitsParams.model_validate({"restricted_symbols": "gme, amc"}).restricted_symbols == (
        "GME",
        "AMC",
    )
    with pytest.raises(ValueError, match="max_order_qty"):
        LimitsParams.model_validate({"max_order_qty": 0})


async def test_the_manager_refuses_a_buy_beyond_a_limit_and_lets_a_sell_through(
    store: Store,
) -> None:
    calendar = ExchangeCalendar(
        "XNYS", start=MON.replace(month=1, day=1), end=MON.replace(month=12, day=31)
    ).load()
    prices = LowPrices()
    day(prices, MON, 100.0, 99.0, 100.0)
    clock = SimClock(et(MON, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=prices)
    mgr = OrderManager(
        store=store,
        broker=broker,
        clock=clock,
        terms=ReferenceFillTerms(stop_atr_multiple=3.0),
        limits=LimitsParams(max_order_notional=5_000.0),
    )
    await mgr.on_start()

    def spec(side: str, qty: int) -> OrderIntentSpec:
        kind = IntentKind.ENTRY if side == "buy" else IntentKind.FLATTEN
        return OrderIntentSpec("ma_crossover", "AAA", side, qty, kind, 100.0, atr=3.0)

    [big] = (await mgr.place(PlaceOrders("r1", MON, (spec("buy", 60),)))).results
    assert big.status is IntentStatus.REJECTED
    assert big.error_code == "limit:max_order_notional"
    assert "max_order_notional (notional 6000, limit 5000)" in (big.error or "")
    assert await store.fetchall("SELECT * FROM order_intents") == []
    assert await broker.positions() == []
    [small] = (await mgr.place(PlaceOrders("r1", MON, (spec("buy", 40),)))).results
    assert small.status is IntentStatus.FILLED
    # A sell is never refused by a limit: 40 shares out, whatever the caps say.
    tight = OrderManager(
        store=store,
        broker=broker,
        clock=clock,
        terms=ReferenceFillTerms(stop_atr_multiple=3.0),
        limits=LimitsParams(max_order_notional=1.0, max_order_qty=1),
    )
    [out] = (await tight.place(PlaceOrders("r2", MON, (spec("sell", 40),)))).results
    assert (out.status, out.filled_qty) == (IntentStatus.FILLED, 40)


async def test_a_flatten_cancels_open_orders_first_then_sells(store: Store) -> None:
    """An evening buy for tomorrow is still open: a flatten cancels it, then sells the rest."""
    calendar = ExchangeCalendar("XNYS", start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31))
    calendar.load()
    prices = LowPrices()
    day(prices, MON, 100.0, 99.0, 100.0)
    clock = SimClock(et(MON, 8))
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=prices)
    mgr = OrderManager(
        store=store, broker=broker, clock=clock, terms=ReferenceFillTerms(stop_atr_multiple=3.0)
    )
    await mgr.on_start()
    held = OrderIntentSpec("ma_crossover", "AAA", "buy", 10, IntentKind.ENTRY, 100.0, atr=3.0)
    await mgr.place(PlaceOrders("r1", MON, (held,)))
    clock.set_time(et(MON, 18))  # after the close: tomorrow's buy rests, unfilled
    later = OrderIntentSpec("momentum", "BBB", "buy", 5, IntentKind.ENTRY, 50.0, atr=2.0)
    prices.closes[("BBB", MON)] = 50.0
    [rest] = (await mgr.place(PlaceOrders("r2", TUE, (later,)))).results
    assert rest.status is IntentStatus.ACCEPTED
    day(prices, TUE, 101.0, 100.0, 101.0)
    clock.set_time(et(TUE, 9, 45))
    done = await mgr.flatten(Flatten("flat", TUE, None, "test"))
    assert [(r.symbol, r.side, r.status) for r in done.results] == [
        ("BBB", "buy", IntentStatus.CANCELED),
        ("AAA", "sell", IntentStatus.FILLED),
    ]
    assert await broker.positions() == []


class SmallMarginAccount(SimBroker):
    """A simulated account that reports $20,000 of equity and three day trades used."""

    async def account(self) -> BrokerAccount:
        real = await super().account()
        return dataclasses.replace(real, equity=20_000.0, daytrade_count=3)


async def test_the_pattern_day_trader_rule_holds_todays_sells_and_stops(store: Store) -> None:
    """Under $25,000 with no day trade left: a sell (or a resting stop) of today's buy waits
    for the next session, with the reason; the next session places the stop."""
    calendar = ExchangeCalendar("XNYS", start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31))
    calendar.load()
    prices = LowPrices()
    day(prices, MON, 100.0, 99.0, 100.0)
    day(prices, TUE, 100.0, 99.0, 100.0)
    clock = SimClock(et(MON, 8))
    broker = SmallMarginAccount(store, clock=clock, calendar=calendar, prices=prices)
    mgr = OrderManager(
        store=store,
        broker=broker,
        clock=clock,
        terms=ReferenceFillTerms(stop_atr_multiple=3.0),
        broker_stops=True,
    )
    await mgr.on_start()
    buy = OrderIntentSpec("ma_crossover", "AAA", "buy", 10, IntentKind.ENTRY, 100.0, atr=3.0)
    await mgr.place(PlaceOrders("r1", MON, (buy,)))
    report = await mgr.sync_stops(SyncRestingStops("t"))
    assert [c.action for c in report.changes] == [StopAction.HELD]
    assert "pattern_day_trader" in report.changes[0].detail
    sell = OrderIntentSpec("ma_crossover", "AAA", "sell", 10, IntentKind.EXIT, 100.0)
    [refused] = (await mgr.place(PlaceOrders("r1", MON, (sell,)))).results
    assert refused.status is IntentStatus.REJECTED
    assert refused.error_code == "limit:pattern_day_trader"
    assert "day trade" in (refused.error or "")
    clock.set_time(et(TUE, 8))
    report = await mgr.sync_stops(SyncRestingStops("t"))
    assert [c.action for c in report.changes] == [StopAction.PLACED]
