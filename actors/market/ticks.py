"""A US equity price on the exchange's tick (pure): whole cents from $1, 1/100 cent below."""

from __future__ import annotations

import math


def stop_tick(price: float) -> float:
    """``price`` on the tick, rounded to the nearest (Rule 612's minimum increments).

    Nearest, not down: a stop half a cent lower or higher is the same protection, and
    always rounding down would drift a replaced or split-adjusted stop a cent a time.
    """
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"a stop price must be positive, got {price!r}")
    return round(price, 2) if price >= 1.0 else max(0.0001, round(price, 4))
