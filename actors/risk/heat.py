"""Portfolio heat: gross exposure as a share of portfolio value, capped by the regime.

A trade is allowed iff the heat *after* it is at most the limit (inclusive:
exactly 30 % of a 30 % limit is allowed). An absolute tolerance of 1e-12 (a
share of portfolio value) absorbs float rounding, so a trade that reaches the
limit exactly on paper is not refused.
Non-finite inputs and a non-positive portfolio value fail closed (heat = inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HEAT_LIMIT = "heat_limit"
"""Reason code of a trade refused by the heat check (a parkable block)."""

_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class HeatDecision:
    """Outcome of :func:`heat_check`; heats are shares of portfolio value."""

    allowed: bool
    heat_before: float
    heat_after: float
    limit: float
    reason: str

    @property
    def code(self) -> str | None:
        """``HEAT_LIMIT`` when refused, else None."""
        return None if self.allowed else HEAT_LIMIT


def portfolio_heat(exposure: float, portfolio_value: float) -> float:
    """``exposure / portfolio_value``; inf when the value is <= 0 or anything is non-finite."""
    if not (math.isfinite(exposure) and math.isfinite(portfolio_value)) or portfolio_value <= 0:
        return math.inf
    return exposure / portfolio_value


def heat_check(
    trade_value: float, exposure: float, portfolio_value: float, limit: float
) -> HeatDecision:
    """Whether adding ``trade_value`` of exposure keeps heat at or below ``limit``."""
    before = portfolio_heat(exposure, portfolio_value)
    if not math.isfinite(trade_value) or trade_value < 0:
        after = math.inf
        reason = f"trade value {trade_value:g} is not a non-negative amount: refused"
    else:
        after = portfolio_heat(exposure + trade_value, portfolio_value)
        if not math.isfinite(after):
            reason = f"heat unknown (exposure {exposure:g}, value {portfolio_value:g}): refused"
        else:
            op = "<=" if after <= limit + _TOLERANCE else ">"
            reason = f"heat {before:.2%} -> {after:.2%} {op} limit {limit:.2%}"
    return HeatDecision(
        allowed=after <= limit + _TOLERANCE,
        heat_before=before,
        heat_after=after,
        limit=limit,
        reason=reason,
    )
