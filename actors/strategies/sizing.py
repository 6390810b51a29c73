"""ATR position sizing: risk a fixed share of capital at a stop placed N ATRs away.

The reference system's ``calculate_position_size``: a position is sized so that
a move of ``stop_atr_multiple`` ATRs against it loses ``risk_per_trade`` of the
*risk base*, and never buys more than the strategy's capital pays for. Whole
shares only. The reference targets "1% portfolio risk": the risk base is the
portfolio's equity (``risk.sizing_base = "portfolio"``, the default); with
``"strategy"`` it is the strategy's own capital (a quarter of that with four
strategies).
"""

from __future__ import annotations

import math
from fractions import Fraction


def atr_position_size(  # noqa: PLR0917 - the reference system's positional signature
    capital: float,
    price: float,
    atr: float,
    risk_per_trade: float = 0.01,
    stop_atr_multiple: float = 3.0,
    risk_capital: float | None = None,
) -> int:
    """Whole shares risking ``risk_capital * risk_per_trade`` at a ``stop_atr_multiple`` ATR stop.

    ``floor(risk_capital * risk_per_trade / (stop_atr_multiple * atr))``, capped at
    ``floor(capital / price)``; ``risk_capital`` defaults to ``capital``. 0 when any
    input is non-finite or not positive.
    The quotients are floored in exact rational arithmetic, so binary rounding of
    a quotient just below an integer can never add a share beyond either bound.
    """
    base = capital if risk_capital is None else risk_capital
    inputs = (capital, base, price, atr, risk_per_trade, stop_atr_multiple)
    if not all(math.isfinite(x) and x > 0 for x in inputs):
        return 0
    budget = base * risk_per_trade
    stop_distance = stop_atr_multiple * atr
    if not (math.isfinite(budget) and math.isfinite(stop_distance)) or stop_distance <= 0:
        return 0
    by_risk = _whole_units(budget, stop_distance)
    by_cash = _whole_units(capital, price)
    return min(by_risk, by_cash)


def _whole_units(amount: float, unit_cost: float) -> int:
    """The largest whole ``n`` with ``n * unit_cost <= amount``, computed exactly."""
    return max(math.floor(Fraction(amount) / Fraction(unit_cost)), 0)
