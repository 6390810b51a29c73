"""rewind_to: positions rebuilt from earlier trades carry the stop the live store booked."""

from __future__ import annotations

import datetime as dt

from actors.messages import IntentKind, IntentStatus
from actors.risk.fill_terms import ReferenceFillTerms
from actors.store.orders import OrderStore
from actors.store.rewind import rewind_to
from daemon.store import Store

DAY1 = dt.date(2026, 11, 20)
DAY2 = dt.date(2026, 11, 23)


async def _buy(
    orders: OrderStore,
    asof: dt.date,
    symbol: str,
    price: float,
    *,
    atr: float,
    multiple: float | None,
) -> None:
    sid = await orders.strategy_id("momentum")
    at = dt.datetime.combine(asof, dt.time(15), tzinfo=dt.UTC)
    iid = f"{asof:%Y%m%d}-mom-{symbol}-buy"
    await orders.create_intent(
        intent_id=iid,
        run_id=f"run-{asof}",
        asof=asof,
        strategy_id=sid,
        strategy="momentum",
        symbol=symbol,
        side="buy",
        qty=10,
        kind=IntentKind.ENTRY,
        reference_price=price,
        atr=atr,
        at=at,
        stop_atr_multiple=multiple,
    )
    await orders.book_fill(iid, 10, price, status=IntentStatus.FILLED, at=at)


async def _stops(store: Store) -> dict[str, float | None]:
    rows = await store.fetchall("SELECT symbol, stop_price FROM positions")
    return {str(r["symbol"]): r["stop_price"] for r in rows}


async def test_rewound_positions_keep_the_booked_stops(store: Store) -> None:
    """Each entry's own multiple, the configured default, and the floor: as booked live."""
    terms = ReferenceFillTerms(stop_atr_multiple=2.0)
    orders = OrderStore(store, terms)
    await _buy(orders, DAY1, "AAPL", 100.0, atr=3.0, multiple=4.0)  # its own k: 100 - 12
    await _buy(orders, DAY1, "MSFT", 50.0, atr=5.0, multiple=None)  # the default k: 50 - 10
    await _buy(orders, DAY1, "PENY", 1.0, atr=2.0, multiple=None)  # below zero: the floor
    await _buy(orders, DAY2, "GOOG", 80.0, atr=1.0, multiple=None)  # the rewound day
    booked = await _stops(store)
    assert booked == {"AAPL": 88.0, "MSFT": 40.0, "PENY": 0.01, "GOOG": 78.0}

    rebuilt = await rewind_to(store, DAY2, terms=terms)

    assert sorted(p.symbol for p in rebuilt) == ["AAPL", "MSFT", "PENY"]
    assert await _stops(store) == {k: v for k, v in booked.items() if k != "GOOG"}
