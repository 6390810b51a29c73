"""Daily loss circuit breaker (2 %) and the daily-drawdown kill switch (5 %).

Both measure the loss from the day's start value, ``(start - current) / start``,
and trip only when it is *strictly* greater than the limit: a loss of exactly
2 % does not halt, 2.0001 % does. A 1e-12 tolerance absorbs float rounding so
an exact loss on paper never trips by representation error.

They fail closed: a start value that is not finite and positive, or a
non-finite current value, counts as breached (the loss is unknown).
"""

from __future__ import annotations

import math

_TOLERANCE = 1e-12


def daily_pnl(start_value: float, current_value: float) -> float:
    """Today's return as a ratio (``-0.02`` = 2 % down); NaN when it cannot be measured."""
    if not (math.isfinite(start_value) and math.isfinite(current_value)) or start_value <= 0:
        return math.nan
    return (current_value - start_value) / start_value


def daily_drawdown(start_value: float, current_value: float) -> float:
    """Today's loss as a positive ratio (0 on a gain); NaN when it cannot be measured."""
    pnl = daily_pnl(start_value, current_value)
    return pnl if math.isnan(pnl) else max(0.0, -pnl)


def _loss_exceeds(start_value: float, current_value: float, limit: float) -> bool:
    loss = daily_drawdown(start_value, current_value)
    return math.isnan(loss) or loss > limit + _TOLERANCE


def daily_loss_breached(start_value: float, current_value: float, limit: float) -> bool:
    """True when today's loss is strictly greater than ``limit`` (or unknown): halt entries."""
    return _loss_exceeds(start_value, current_value, limit)


def drawdown_exceeded(start_value: float, current_value: float, limit: float) -> bool:
    """True when today's drawdown is strictly greater than ``limit`` (or unknown): kill switch."""
    return _loss_exceeds(start_value, current_value, limit)
