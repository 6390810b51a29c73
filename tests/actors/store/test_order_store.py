"""OrderStore: intents, fills with costs, per-strategy positions and local cash."""

from __future__ import annotations

import datetime as dt

import pytest

from actors.messages import IntentKind, IntentStatus
from actors.risk.fill_terms import ReferenceFillTerms
from actors.store.orders import IntentRow, NegativePosition, OrderStore, OverFill
from daemon.store import Store

ASOF = dt.date(2026, 11, 23)
AT = dt.datetime(2026, 11, 23, 15, tzinfo=dt.UTC)


async def _intent(
    orders: OrderStore,
    side: str = "buy",
    qty: int = 10,
    *,
    iid: str | None = None,
    strategy: str = "momentum",
    symbol: str = "AAPL",
    atr: float = 2.0,
    run_id: str = "run-1",
) -> str:
    sid = await orders.strategy_id(strategy)
    intent_id = iid or f"20261123-x-{symbol}-{side}"
    await orders.create_intent(
        intent_id=intent_id,
        run_id=run_id,
        asof=ASOF,
        strategy_id=sid,
        strategy=strategy,
        symbol=symbol,
        side=side,
        qty=qty,
        kind=IntentKind.ENTRY if side == "buy" else IntentKind.EXIT,
        reference_price=100.0,
        atr=atr,
        at=AT,
    )
    return intent_id


async def test_create_intent_is_idempotent(store: Store) -> None:
    """Writing the same intent twice keeps the first row and says it was not created."""
    orders = OrderStore(store, ReferenceFillTerms())
    sid = await orders.strategy_id("momentum")

    async def create(run_id: str, qty: int) -> tuple[IntentRow, bool]:
        return await orders.create_intent(
            intent_id="20261123-mom-AAPL-buy",
            run_id=run_id,
            asof=ASOF,
            strategy_id=sid,
            strategy="momentum",
            symbol="AAPL",
            side="buy",
            qty=qty,
            kind=IntentKind.ENTRY,
            reference_price=100.0,
            at=AT,
        )

    row, created = await create("run-1", 10)
    again, created_again = await create("run-2", 99)
    assert created
    assert not created_again
    assert row.status is IntentStatus.NEW
    assert (again.run_id, again.target_qty) == ("run-1", 10)
    assert [r.intent_id for r in await orders.intents_for(asof=ASOF)] == [row.intent_id]


async def test_open_intents_excludes_terminal(store: Store) -> None:
    """open_intents lists only non-terminal intents."""
    orders = OrderStore(store, ReferenceFillTerms())
    a = await _intent(orders, symbol="AAPL")
    b = await _intent(orders, symbol="MSFT")
    await orders.update_status(b, IntentStatus.REJECTED, at=AT, error_message="no")
    assert [r.intent_id for r in await orders.open_intents()] == [a]
    assert (await orders.status_counts()) == {"NEW": 1, "REJECTED": 1}


async def test_update_status_stamps_times_and_keeps_broker_id(store: Store) -> None:
    """SUBMITTED stamps submitted_at; acceptance stamps acked_at; the broker id is kept."""
    orders = OrderStore(store, ReferenceFillTerms())
    iid = await _intent(orders)
    row = await orders.update_status(iid, IntentStatus.SUBMITTED, at=AT)
    assert row.submitted_at == AT.isoformat()
    row = await orders.update_status(iid, IntentStatus.ACCEPTED, at=AT, broker_order_id="b-1")
    assert row.acked_at == AT.isoformat()
    row = await orders.update_status(iid, IntentStatus.UNKNOWN, at=AT, error_message="x")
    assert row.broker_order_id == "b-1"
    assert row.error_message == "x"


async def test_fill_books_trade_with_costs(store: Store) -> None:
    """10 shares at 100.075: commission 0.05, slippage 7.5 bps of the notional."""
    orders = OrderStore(store, ReferenceFillTerms())
    iid = await _intent(orders)
    row = await orders.book_fill(
        iid, 10, 100.075, status=IntentStatus.FILLED, at=AT, broker_order_id="b-1"
    )
    assert (row.status, row.filled_qty, row.avg_fill_price) == (IntentStatus.FILLED, 10, 100.075)
    [trade] = await orders.trades_for("run-1")
    assert trade["action"] == "BUY"
    assert trade["shares"] == 10
    assert trade["requested_price"] == 100.0
    assert trade["exec_price"] == 100.075
    assert trade["notional"] == pytest.approx(1000.75)
    assert trade["commission_cost"] == pytest.approx(0.05)
    assert trade["slippage_cost"] == pytest.approx(1000.75 * 0.00075)
    assert trade["total_cost"] == pytest.approx(0.05 + 1000.75 * 0.00075)
    assert trade["order_id"] == "b-1"
    assert trade["intent_id"] == iid


async def test_buy_opens_position_with_entry_and_stop(store: Store) -> None:
    """A new position gets the intent's date, its ATR and the stop avg − 3 × ATR."""
    orders = OrderStore(store, ReferenceFillTerms())
    iid = await _intent(orders, atr=2.0)
    await orders.book_fill(iid, 10, 100.0, status=IntentStatus.FILLED, at=AT)
    [pos] = await orders.positions()
    assert pos["strategy"] == "momentum"
    assert (pos["symbol"], pos["shares"], pos["avg_price"]) == ("AAPL", 10, 100.0)
    assert pos["entry_date"] == "2026-11-23"
    assert pos["atr_at_entry"] == 2.0
    assert pos["stop_price"] == pytest.approx(94.0)


async def test_partial_fills_weight_the_average_price(store: Store) -> None:
    """Two partial fills give the volume-weighted average on intent and position."""
    orders = OrderStore(store, ReferenceFillTerms())
    iid = await _intent(orders, qty=10, atr=1.0)
    await orders.book_fill(iid, 4, 100.0, status=IntentStatus.PARTIALLY_FILLED, at=AT)
    row = await orders.book_fill(iid, 6, 105.0, status=IntentStatus.FILLED, at=AT)
    assert row.avg_fill_price == pytest.approx(103.0)
    [pos] = await orders.positions()
    assert pos["shares"] == 10
    assert pos["avg_price"] == pytest.approx(103.0)
    assert pos["stop_price"] == pytest.approx(100.0)
    assert await orders.held(row.strategy_id, "AAPL") == 10


async def test_sell_reduces_and_deletes_at_zero(store: Store) -> None:
    """A sell removes shares; selling the last share deletes the position."""
    orders = OrderStore(store, ReferenceFillTerms())
    buy = await _intent(orders, qty=10)
    await orders.book_fill(buy, 10, 100.0, status=IntentStatus.FILLED, at=AT)
    sell = await _intent(orders, "sell", qty=10)
    row = await orders.book_fill(sell, 4, 110.0, status=IntentStatus.PARTIALLY_FILLED, at=AT)
    assert await orders.held(row.strategy_id, "AAPL") == 6
    [pos] = await orders.positions()
    assert pos["avg_price"] == 100.0
    await orders.book_fill(sell, 6, 110.0, status=IntentStatus.FILLED, at=AT)
    assert await orders.positions() == []


async def test_sell_beyond_position_is_refused_and_nothing_written(store: Store) -> None:
    """A sell larger than the position raises and leaves trades, intent and position alone."""
    orders = OrderStore(store, ReferenceFillTerms())
    buy = await _intent(orders, qty=5)
    await orders.book_fill(buy, 5, 100.0, status=IntentStatus.FILLED, at=AT)
    sell = await _intent(orders, "sell", qty=10)
    with pytest.raises(NegativePosition):
        await orders.book_fill(sell, 10, 100.0, status=IntentStatus.FILLED, at=AT)
    row = await orders.get(sell)
    assert row is not None
    assert (row.filled_qty, row.status) == (0, IntentStatus.NEW)
    assert len(await orders.trades_for("run-1")) == 1
    assert await orders.held(row.strategy_id, "AAPL") == 5


async def test_fill_beyond_target_is_refused(store: Store) -> None:
    """More shares than the intent asked for is refused."""
    orders = OrderStore(store, ReferenceFillTerms())
    iid = await _intent(orders, qty=5)
    with pytest.raises(OverFill):
        await orders.book_fill(iid, 6, 100.0, status=IntentStatus.FILLED, at=AT)


async def test_positions_are_per_strategy(store: Store) -> None:
    """Two strategies holding the same symbol have separate positions."""
    orders = OrderStore(store, ReferenceFillTerms())
    a = await _intent(orders, strategy="momentum", iid="a")
    b = await _intent(orders, strategy="ma_crossover", iid="b")
    await orders.book_fill(a, 10, 100.0, status=IntentStatus.FILLED, at=AT)
    await orders.book_fill(b, 3, 101.0, status=IntentStatus.FILLED, at=AT)
    got = {(p["strategy"], p["symbol"]): p["shares"] for p in await orders.positions()}
    assert got == {("ma_crossover", "AAPL"): 3, ("momentum", "AAPL"): 10}


async def test_local_cash_adds_trade_cash(store: Store) -> None:
    """Cash = baseline − buys' (notional + commission) + sells' (notional − commission)."""
    orders = OrderStore(store, ReferenceFillTerms())
    buy = await _intent(orders, qty=10)
    await orders.book_fill(buy, 10, 100.0, status=IntentStatus.FILLED, at=AT)
    sell = await _intent(orders, "sell", qty=4)
    await orders.book_fill(sell, 4, 110.0, status=IntentStatus.FILLED, at=AT)
    expected = 10_000.0 - (1000.0 + 0.05) + (440.0 - 0.02)
    assert await orders.local_cash(10_000.0) == pytest.approx(expected)


async def test_strategy_id_does_not_touch_existing_rows(store: Store) -> None:
    """Looking a strategy up keeps its configured capital."""
    await store.execute(
        "INSERT INTO strategies (name, capital_allocation) VALUES ('momentum', 2500.0)"
    )
    orders = OrderStore(store, ReferenceFillTerms())
    sid = await orders.strategy_id("momentum")
    row = await store.fetchone(
        "SELECT id, capital_allocation FROM strategies WHERE name = 'momentum'"
    )
    assert row is not None
    assert (row["id"], row["capital_allocation"]) == (sid, 2500.0)


async def test_last_resting_stop_is_the_lots_latest_stop_in_any_state(store: Store) -> None:
    """The latest stop of the strategy's lot, whatever its status; None for a lot without one."""
    orders = OrderStore(store, ReferenceFillTerms())
    sid = await orders.strategy_id("momentum")
    for n in (1, 2):
        await orders.create_intent(
            intent_id=f"20261123-mom-AAPL-stop-{n}",
            run_id="run-1",
            asof=ASOF,
            strategy_id=sid,
            strategy="momentum",
            symbol="AAPL",
            side="sell",
            qty=10,
            kind=IntentKind.STOP,
            reference_price=90.0 + n,
            stop_price=90.0 + n,
            at=AT,
        )
    await orders.update_status("20261123-mom-AAPL-stop-2", IntentStatus.CANCELED, at=AT)
    await _intent(orders, "sell", symbol="AAPL")  # not a stop
    last = await orders.last_resting_stop(sid, "AAPL")
    assert last is not None
    assert (last.intent_id, last.status) == ("20261123-mom-AAPL-stop-2", IntentStatus.CANCELED)
    assert await orders.last_resting_stop(sid, "MSFT") is None
