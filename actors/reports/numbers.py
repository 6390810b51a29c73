"""Numbers for people: money to cents, ratios to 0.1 %, missing as an em dash.

One set of formatters for the daily digest and ``tradectl``'s human output, so a
figure reads the same in both: ``money`` ("$12,345.67"; signed for a P&L,
"+$1.20" / "-$3.40"), ``percent`` of a fraction (0.1234 is "12.3%"), ``ratio``
for the dimensionless ones (Sharpe 1.37), ``count`` and ``quantity`` (shares).
``None``, NaN and ±inf are ``MISSING`` ("—", never "nan"); a value that is not a
number at all is shown as its text. A value that rounds to zero has no sign
("0.0%", not "-0.0%").

``by_key`` formats a field by its name (``equity`` is money, ``heat_after`` a
percent), for records whose names are all the renderer knows: ``tradectl``'s
replies and the details of a rejection (whose ``limit`` means what its reason
says). Only output for people comes here; ``--json`` keeps the raw numbers.

Standard library only: ``tradectl`` imports it without pandas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

MISSING: Final = "—"

Formatter = Callable[[Any], str]


def _finite(value: Any) -> float | str:
    """``value`` as a finite float, or the text to show instead of a number."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return str(value)
    return number if math.isfinite(number) else MISSING


def known(value: Any) -> bool:
    """Whether ``value`` is a finite number (not None, NaN, ±inf or text)."""
    return not isinstance(_finite(value), str)


def _unsigned_zero(number: float) -> float:
    return 0.0 if number == 0 else number  # -0.0 prints as "-0.00"


def money(value: Any, *, signed: bool = False) -> str:
    """Dollars to the cent with thousands separators; ``signed``: "+" on a gain (a P&L)."""
    number = _finite(value)
    if isinstance(number, str):
        return number
    cents = _unsigned_zero(round(number, 2))
    sign = "-" if cents < 0 else ("+" if signed and cents > 0 else "")
    return f"{sign}${abs(cents):,.2f}"


def signed_money(value: Any) -> str:
    """A P&L in dollars: "+$1.20", "-$3.40", "$0.00"."""
    return money(value, signed=True)


def percent(value: Any, *, signed: bool = False) -> str:
    """A fraction as a percent to 0.1 (0.1234 is "12.3%"); ``signed``: "+" when above zero."""
    number = _finite(value)
    if isinstance(number, str):
        return number
    shown = _unsigned_zero(round(number * 100, 1))
    return f"{shown:+,.1f}%" if signed and shown > 0 else f"{shown:,.1f}%"


def signed_percent(value: Any) -> str:
    """A return as a percent: "+0.4%", "-8.3%", "0.0%"."""
    return percent(value, signed=True)


def ratio(value: Any) -> str:
    """A dimensionless ratio (Sharpe, Sortino, Calmar, profit factor) to two decimals."""
    return number(value, 2)


def number(value: Any, digits: int = 2) -> str:
    """A number to ``digits`` decimals with thousands separators."""
    parsed = _finite(value)
    if isinstance(parsed, str):
        return parsed
    return f"{_unsigned_zero(round(parsed, digits)):,.{digits}f}"


def count(value: Any) -> str:
    """A whole number with thousands separators ("1,234")."""
    parsed = _finite(value)
    if isinstance(parsed, str):
        return parsed
    return f"{round(parsed):,d}"


def quantity(value: Any, *, signed: bool = False) -> str:
    """Shares: whole ones as a count ("1,200", not "1200.0"), fractional ones to 4 decimals."""
    parsed = _finite(value)
    if isinstance(parsed, str):
        return parsed
    shown = _unsigned_zero(round(parsed, 4))
    text = f"{shown:,.0f}" if shown.is_integer() else f"{shown:,.4f}".rstrip("0")
    return f"+{text}" if signed and shown > 0 else text


def plain(value: Any) -> str:
    """A number nothing is known about: an int as is (a port, a pid), a float to at most 4
    decimals (1.855, 0.1235); missing as ``MISSING``; anything else as its text."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        return f"{_unsigned_zero(round(value, 4)):.4f}".rstrip("0").rstrip(".")
    return MISSING if value is None else str(value)


# ---------------------------------------------------------------- fields by name

_MONEY = (
    "available",
    "avg_price",
    "broker_cash",
    "broker_equity",
    "cash",
    "equity",
    "exec_price",
    "last_close",
    "last_close_equity",
    "last_equity",
    "last_price",
    "local_cash",
    "mark",
    "market_value",
    "needed",
    "notional",
    "peak_equity",
    "portfolio_value",
    "position_after",
    "price",
    "stop_price",
    "trade_value",
)
_SIGNED_MONEY = ("day_pnl", "pnl", "realized_pnl", "total_pnl", "unrealized_pnl")
_PERCENT = ("collar", "drawdown_from_peak", "exposure", "heat", "heat_after", "heat_limit")
_SIGNED_PERCENT = ("daily_pnl", "day_pnl_pct", "return_pct", "total_return")
_RATIO = ("correlation", "multiplier")
_QUANTITY = ("filled", "filled_qty", "qty", "remaining_qty", "shares", "signal_shares")

FIELDS: Final[Mapping[str, Formatter]] = {
    **dict.fromkeys(_MONEY, money),
    **dict.fromkeys(_SIGNED_MONEY, signed_money),
    **dict.fromkeys(_PERCENT, percent),
    **dict.fromkeys(_SIGNED_PERCENT, signed_percent),
    **dict.fromkeys(_RATIO, ratio),
    **dict.fromkeys(_QUANTITY, quantity),
}

# A rejection's ``limit`` is what its reason limits (risk, cash and order limits).
_LIMITS: Final[Mapping[str, Formatter]] = {
    "heat_limit": percent,
    "max_order_notional": money,
    "max_position_notional": money,
    "max_order_qty": count,
    "max_orders_per_cycle": count,
    "max_orders_per_day": count,
}


def by_key(key: str, value: Any, reason: str | None = None) -> str:
    """``value`` formatted for what the field ``key`` holds (``plain`` for an unknown one);
    ``reason``: the rejection whose details these are (it says what ``limit`` is)."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    fmt = _LIMITS.get(reason or "") if key == "limit" else FIELDS.get(key)
    return plain(value) if fmt is None else fmt(value)


def details(values: Mapping[str, Any], reason: str | None = None) -> str:
    """A record on one line, each field by its name: "heat_after=38.2%, limit=30.0%"."""
    return ", ".join(f"{k}={by_key(str(k), v, reason)}" for k, v in values.items())
