"""When a resting protective stop sell fills, on daily bars (pure).

A stop sell becomes a market sell once the price trades at or below it. From one
session's open and low: an open at or below the stop fills at the open (a gap
down goes through the stop: the seller gets the open, not the stop); else a low
at or below it fills at the stop. Slippage and commission are the cost model's,
applied by the broker.
"""

from __future__ import annotations


def stop_fill(stop: float, open_price: float, low: float | None) -> float | None:
    """The fill price of a stop sell at ``stop`` in a session, or None when untouched."""
    if open_price <= stop:
        return open_price
    if low is not None and low <= stop:
        return stop
    return None
