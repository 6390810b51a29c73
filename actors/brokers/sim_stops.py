"""When a resting protective stop sell fills, on daily bars (pure).

A stop sell becomes a market sell once the price trades at or below it. From one
session's open and low: an open at or below the stop fills at the open (a gap
down goes through the stop: the seller gets the open, not the stop); else a low
at or below it fills at the stop. Slippage and commission are the cost model's,
applied by the broker.
"""

from __future__ import annotations

import datetime as dt

from actors.brokers.sim_actions import scale_since
from actors.store.sim_broker import SimActionRow, SimOrderRow

#: What whether a resting stop triggers at its next session depends on, besides the
#: prices and the time: symbol, that session, the stop in that session's terms.
QuietKey = tuple[str, dt.date, float]


def stop_fill(stop: float, open_price: float, low: float | None) -> float | None:
    """The fill price of a stop sell at ``stop`` in a session, or None when untouched."""
    if open_price <= stop:
        return open_price
    if low is not None and low <= stop:
        return stop
    return None


def quiet_key(
    order: SimOrderRow, applied: list[SimActionRow], session: dt.date | None = None
) -> QuietKey:
    """The ``QuietKey`` of a resting stop checked at ``session`` (default: its trade
    date), given the corporate actions ``applied``."""
    assert order.stop_price is not None
    session = order.trade_date if session is None else session
    return order.symbol, session, order.stop_price * scale_since(applied, order.symbol, session)
