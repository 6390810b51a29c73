"""Catastrophe stops: ``entry - 3 x ATR``, checked against the last price before trading.

A stop triggers when the price is at or below it (inclusive). A missing,
non-finite or non-positive price never triggers: the check is reported with
a reason instead, so the operator sees which positions went unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MIN_STOP = 0.01
"""The lowest stop price: a stop is never placed at or below zero."""

STOP_ATR_MULTIPLE = 3.0
"""The stop's distance in ATRs when nothing says otherwise (``risk.stop_atr_multiple``)."""


@dataclass(frozen=True, slots=True)
class StopCheck:
    """One position's stop against its last price (``price`` is NaN when missing)."""

    symbol: str
    strategy: str
    stop: float
    price: float
    triggered: bool
    reason: str


def stop_price(entry_price: float, atr: float, multiple: float) -> float:
    """``entry_price - multiple x atr``, never below ``MIN_STOP``.

    Raises ``ValueError`` unless the entry price is finite and positive, the
    ATR finite and non-negative, and the multiple finite and positive.
    """
    if not math.isfinite(entry_price) or entry_price <= 0:
        raise ValueError(f"entry price must be finite and positive, got {entry_price!r}")
    if not math.isfinite(atr) or atr < 0:
        raise ValueError(f"ATR must be finite and non-negative, got {atr!r}")
    if not math.isfinite(multiple) or multiple <= 0:
        raise ValueError(f"stop multiple must be finite and positive, got {multiple!r}")
    return max(MIN_STOP, entry_price - multiple * atr)


def check_stops(
    positions: Sequence[tuple[str, str, float]], last_prices: Mapping[str, float]
) -> list[StopCheck]:
    """Check each ``(strategy, symbol, stop_price)`` against ``last_prices``, in order."""
    checks: list[StopCheck] = []
    for strategy, symbol, stop in positions:
        price = last_prices.get(symbol, math.nan)
        if not math.isfinite(stop):
            triggered, reason = False, f"{symbol}: no valid stop ({stop!r}), not checked"
        elif not math.isfinite(price) or price <= 0:
            triggered = False
            reason = f"{symbol}: no valid price ({price!r}), stop {stop:.2f} not checked"
        elif price <= stop:
            triggered, reason = True, f"{symbol}: price {price:.2f} <= stop {stop:.2f}"
        else:
            triggered, reason = False, f"{symbol}: price {price:.2f} > stop {stop:.2f}"
        checks.append(StopCheck(symbol, strategy, stop, float(price), triggered, reason))
    return checks
