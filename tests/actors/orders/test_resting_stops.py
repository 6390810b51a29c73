"""Protective stops resting at the broker, kept by the OrderManager over the simulated broker.

One stop per lot, placed after the entry fills; a second sync changes nothing, nor
does a restart; a crash after the stop is written sends it once; a changed stop is
cancelled (confirmed) before the next is placed; the daemon's own exit cancels the
lot's stop first, and sells nothing when the stop sold first; a stop cancelled
behind the daemon's back is repaired and alerted; a lot the broker holds fewer
shares of is left alone; a cancel the broker does not confirm keeps the exit unsent.
The arithmetic (``stop_tick``, ``judge``) is tested without asyncio.
"""

from __future__ import annotations

import datetime as dt

import pytest

from actors.brokers.base import BrokerOrderStatus, OrderRejected, OrderRequest, OrderSide
from actors.brokers.sim import SimBroker
from actors.market.calendar import ExchangeCalendar
from actors.market.ticks import stop_tick
from actors.messages import (
    GetStatus,
    IntentKind,
    IntentStatus,
    OrderIntentSpec,
    PlaceOrders,
    RestingStopsReport,
    SettleOrders,
    StopAction,
    SyncRestingStops,
)
from actors.orders.intents import resting_stop_id
from actors.orders.manager import OrderManager
from actors.orders.resting_stops import (
    CANCEL_REQUESTED,
    CANCELED_BY_US,
    Seen,
    Want,
    judge,
    want_for,
)
from actors.risk.fill_terms import ReferenceFillTerms
from actors.store.orders import IntentRow, OrderStore
from daemon.clock import SimClock
from daemon.store import Store
from tests.actors.brokers.test_sim_broker import MON, TUE, WED, et
from tests.actors.brokers.test_sim_broker_stops import LowPrices, day

STRATEGY = "ma_crossover"
ATR = 3.0


@pytest.fixture(scope="module")
def calendar() -> ExchangeCalendar:
    return ExchangeCalendar("XNYS", start=dt.date(2023, 6, 1), end=dt.date(2024, 12, 31)).load()


@pytest.fixture
def clock() -> SimClock:
    return SimClock(et(MON, 8))


@pytest.fixture
def prices() -> LowPrices:
    prices = LowPrices()
    day(prices, MON, 100.0, 98.0, 99.0)
    return prices


def manager(store: Store, broker: SimBroker, clock: SimClock) -> OrderManager:
    return OrderManager(
        store=store,
        broker=broker,
        clock=clock,
        terms=ReferenceFillTerms(stop_atr_multiple=3.0),
        broker_stops=True,
    )


def spec(side: str, qty: int, kind: IntentKind) -> OrderIntentSpec:
    return OrderIntentSpec(STRATEGY, "AAA", side, qty, kind, reference_price=100.0, atr=ATR)


async def bought(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> tuple[SimBroker, OrderManager]:
    """100 AAA bought at Monday's open, and the manager that bought them (started)."""
    broker = SimBroker(store, clock=clock, calendar=calendar, prices=prices)
    mgr = manager(store, broker, clock)
    await mgr.on_start()
    await mgr.place(PlaceOrders("r1", MON, (spec("buy", 100, IntentKind.ENTRY),)))
    return broker, mgr


async def resting(store: Store) -> list[IntentRow]:
    return [r for r in await OrderStore(store).intents_for() if r.resting]


async def at_broker(store: Store) -> list[tuple[str, str, int, float]]:
    """The simulated broker's working stop orders: (id, status, qty, stop)."""
    rows = await store.fetchall(
        "SELECT client_order_id, status, qty, stop_price FROM sim_orders"
        " WHERE stop_price IS NOT NULL AND status = 'accepted' ORDER BY rowid"
    )
    return [(r[0], r[1], int(r[2]), float(r[3])) for r in rows]


async def book_stop(store: Store) -> float:
    row = await store.fetchone("SELECT stop_price FROM positions WHERE symbol = 'AAA'")
    assert row is not None
    return float(row[0])


async def sync(mgr: OrderManager) -> RestingStopsReport:
    return await mgr.sync_stops(SyncRestingStops("test"))


# ---------------------------------------------------------------- pure


def test_the_tick() -> None:
    assert stop_tick(91.0749) == 91.07
    assert stop_tick(91.076) == 91.08
    assert stop_tick(0.123456) == 0.1235
    with pytest.raises(ValueError, match="positive"):
        stop_tick(0.0)


def test_want_and_judge() -> None:
    assert want_for(0, 90.0) is None
    assert want_for(10, None) is None
    want = Want(10, 90.0)
    row = object.__new__(IntentRow)
    same = Seen(row, (10, 90.0), (10, 90.004))
    assert judge(want, [same], vanished=False) is None
    assert judge(None, [same], vanished=False) is StopAction.CANCELED
    assert judge(want, [], vanished=False) is StopAction.PLACED
    assert judge(want, [], vanished=True) is StopAction.REPAIRED
    ours = Seen(row, (20, 80.0), (20, 80.0))  # as we placed it: the book changed
    assert judge(want, [ours], vanished=False) is StopAction.REPLACED
    theirs = Seen(row, (10, 90.0), (10, 70.0))  # changed at the broker
    assert judge(want, [theirs], vanished=False) is StopAction.REPAIRED
    assert judge(want, [same, same], vanished=False) is StopAction.REPAIRED


# ---------------------------------------------------------------- placing


async def test_an_entry_gets_one_stop_and_syncs_and_restarts_change_nothing(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    broker, mgr = await bought(store, clock, calendar, prices)
    report = await sync(mgr)
    stop = stop_tick(await book_stop(store))
    assert [(c.action, c.qty, c.stop_price) for c in report.changes] == [
        (StopAction.PLACED, 100, stop)
    ]
    sid = resting_stop_id(MON, STRATEGY, "AAA", 1)
    assert await at_broker(store) == [(sid, "accepted", 100, stop)]
    assert (await sync(mgr)).changes == ()
    again = manager(store, broker, clock)  # a restart
    await again.on_start()
    assert (await sync(again)).changes == ()
    assert await at_broker(store) == [(sid, "accepted", 100, stop)]
    status = await again.status(GetStatus())
    assert status["resting_stops"][0]["stop_price"] == stop
    assert status["open"] == []


async def test_a_crash_after_the_stop_is_written_sends_it_once(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    """Written NEW, then the process died before sending: the restart sends that one."""
    broker, _ = await bought(store, clock, calendar, prices)
    orders = OrderStore(store)
    strategy_id = await orders.strategy_id(STRATEGY)
    sid = resting_stop_id(MON, STRATEGY, "AAA", 1)
    stop = stop_tick(await book_stop(store))
    await orders.create_intent(
        intent_id=sid,
        run_id="crashed",
        asof=MON,
        strategy_id=strategy_id,
        strategy=STRATEGY,
        symbol="AAA",
        side="sell",
        qty=100,
        kind=IntentKind.STOP,
        reference_price=stop,
        stop_price=stop,
        at=clock.now(),
    )
    again = manager(store, broker, clock)
    await again.on_start()
    await sync(again)
    assert await at_broker(store) == [(sid, "accepted", 100, stop)]
    assert [r.intent_id for r in await resting(store)] == [sid]


async def test_a_crash_after_the_broker_took_the_stop_adopts_it(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    """SUBMITTED, the broker has it, the answer was lost: adopted, never sent twice."""
    broker, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    [row] = await resting(store)
    await store.execute(
        "UPDATE order_intents SET status = 'SUBMITTED' WHERE intent_id = ?", (row.intent_id,)
    )
    again = manager(store, broker, clock)
    await again.on_start()
    assert (await sync(again)).changes == ()
    assert len(await at_broker(store)) == 1
    [after] = await resting(store)
    assert after.status is IntentStatus.ACCEPTED


async def test_a_crash_between_our_cancel_and_its_confirmation_is_no_loss(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    """The cancel was requested (durable) and sent, then the process died: the restart
    finds it cancelled, as ours, places the replacement once and alerts nobody."""
    broker, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    [row] = await resting(store)
    await OrderStore(store).update_status(
        row.intent_id, row.status, at=clock.now(), error_code=CANCEL_REQUESTED
    )
    await broker.cancel(row.intent_id)  # ... and here the kill
    await store.execute("UPDATE positions SET stop_price = 95.0 WHERE symbol = 'AAA'")
    again = manager(store, broker, clock)
    await again.on_start()
    report = await sync(again)
    assert report.alerts == ()
    first, second = await resting(store)
    assert (first.status, first.error_code) == (IntentStatus.CANCELED, CANCELED_BY_US)
    assert await at_broker(store) == [(second.intent_id, "accepted", 100, 95.0)]


# ---------------------------------------------------------------- changing


async def test_a_changed_stop_is_cancelled_first_then_replaced(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    _, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    await store.execute("UPDATE positions SET stop_price = 95.0 WHERE symbol = 'AAA'")
    report = await sync(mgr)
    assert [c.action for c in report.changes] == [StopAction.REPLACED]
    assert report.alerts == ()
    assert (await sync(mgr)).changes == ()  # our own cancel is no loss to repair
    first, second = await resting(store)
    assert first.status is IntentStatus.CANCELED
    assert (second.status, second.target_qty, second.stop_price) == (
        IntentStatus.ACCEPTED,
        100,
        95.0,
    )
    assert await at_broker(store) == [(second.intent_id, "accepted", 100, 95.0)]


async def test_our_exit_cancels_the_stop_first_and_a_partial_exit_keeps_one_for_the_rest(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    _, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    day(prices, TUE, 99.0, 98.5, 99.5)
    clock.set_time(et(TUE, 8))
    results = await mgr.place(PlaceOrders("r2", TUE, (spec("sell", 40, IntentKind.EXIT),)))
    assert [(r.status, r.filled_qty) for r in results.results] == [(IntentStatus.FILLED, 40)]
    [cancelled] = await resting(store)
    assert cancelled.status is IntentStatus.CANCELED
    assert await at_broker(store) == []
    report = await sync(mgr)
    assert [(c.action, c.qty) for c in report.changes] == [(StopAction.PLACED, 60)]
    [(_, _, qty, _)] = await at_broker(store)
    assert qty == 60


async def test_a_stop_that_sold_first_leaves_our_exit_nothing_to_sell(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    """Tuesday opens through the stop: the stop sells at the open; our exit sells nothing."""
    broker, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    day(prices, TUE, 80.0, 79.0, 81.0)
    clock.set_time(et(TUE, 9, 45))
    results = await mgr.place(PlaceOrders("r2", TUE, (spec("sell", 100, IntentKind.EXIT),)))
    [exit_] = results.results
    assert exit_.status is IntentStatus.CANCELED
    assert "resting stop at the broker sold it first" in (exit_.error or "")
    [stop] = await resting(store)
    assert (stop.status, stop.filled_qty, stop.kind) == (IntentStatus.FILLED, 100, IntentKind.STOP)
    assert stop.avg_fill_price is not None
    assert stop.avg_fill_price < 80.0
    trades = await OrderStore(store).trades_for_intent(stop.intent_id)
    assert [(t["action"], t["shares"]) for t in trades] == [("SELL", 100)]
    assert await broker.positions() == []
    sells = await store.fetchall("SELECT * FROM sim_orders WHERE side = 'sell'")
    assert len(sells) == 1  # the stop only: nothing was sold on top of it


async def test_a_stop_filled_between_cycles_is_booked_at_its_price(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    """Tuesday's low reaches the stop: filled at the stop (slipped), booked at the next settle."""
    _, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    stop = stop_tick(await book_stop(store))
    day(prices, TUE, 99.0, stop - 1.0, 95.0)
    clock.set_time(et(WED, 8))
    await mgr.settle(SettleOrders("poll"))
    [row] = await resting(store)
    assert row.status is IntentStatus.FILLED
    assert row.avg_fill_price == pytest.approx(stop, rel=0.002)
    fills = await OrderStore(store).resting_stop_fills()
    assert [(f["shares"], f["stop_price"]) for f in fills] == [(100, stop)]
    assert (await sync(mgr)).changes == ()


# ---------------------------------------------------------------- repairs and refusals


async def test_a_stop_cancelled_behind_our_back_is_repaired_and_alerted(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    broker, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    [row] = await resting(store)
    await broker.cancel(row.intent_id)  # the owner, in the broker's app
    await mgr.settle(SettleOrders("poll"))  # a poll hears of it first
    report = await sync(mgr)
    assert [c.action for c in report.changes] == [StopAction.REPAIRED]
    assert report.alerts == report.changes
    assert "cancelled or lost at the broker" in report.changes[0].detail
    assert len(await at_broker(store)) == 1


async def test_fewer_shares_at_the_broker_leave_the_stop_alone(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    _, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    before = await at_broker(store)
    await store.execute("UPDATE positions SET shares = 200 WHERE symbol = 'AAA'")
    report = await sync(mgr)
    assert [c.action for c in report.changes] == [StopAction.HELD]
    assert "the broker holds 100 AAA, the book 200" in report.changes[0].detail
    assert await at_broker(store) == before


class StubbornBroker(SimBroker):
    """A simulated broker whose cancels never take (the request is lost)."""

    async def cancel(self, client_order_id: str) -> None:
        return None


async def test_an_unconfirmed_cancel_keeps_our_exit_unsent(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    broker = StubbornBroker(store, clock=clock, calendar=calendar, prices=prices)
    mgr = manager(store, broker, clock)
    await mgr.on_start()
    await mgr.place(PlaceOrders("r1", MON, (spec("buy", 100, IntentKind.ENTRY),)))
    await sync(mgr)
    day(prices, TUE, 99.0, 98.5, 99.5)
    clock.set_time(et(TUE, 8))
    results = await mgr.place(PlaceOrders("r2", TUE, (spec("sell", 100, IntentKind.EXIT),)))
    [exit_] = results.results
    assert exit_.status is IntentStatus.NEW
    assert exit_.error is not None
    assert "not sent" in exit_.error
    market_sells = await store.fetchall(
        "SELECT * FROM sim_orders WHERE side = 'sell' AND stop_price IS NULL"
    )
    assert market_sells == []
    assert len(await at_broker(store)) == 1
    found = await broker.order_by_client_id(resting_stop_id(MON, STRATEGY, "AAA", 1))
    assert found is not None
    assert found.status is BrokerOrderStatus.ACCEPTED


async def test_a_stop_for_more_than_is_held_is_refused_by_the_broker(
    store: Store, clock: SimClock, calendar: ExchangeCalendar, prices: LowPrices
) -> None:
    """The broker's own guard: a second stop on shares a stop already holds is refused."""
    broker, mgr = await bought(store, clock, calendar, prices)
    await sync(mgr)
    with pytest.raises(OrderRejected):
        await broker.submit(OrderRequest("extra-stop", "AAA", OrderSide.SELL, 100, 50.0))
