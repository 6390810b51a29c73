"""Numbers for people: money to cents, fractions to 0.1 %, missing as an em dash."""

from __future__ import annotations

import math
from typing import Any

import pytest

from actors.reports import numbers
from actors.reports.numbers import MISSING

NOT_NUMBERS = [None, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize(
    ("value", "plain", "signed"),
    [
        (12345.678, "$12,345.68", "+$12,345.68"),
        (1.2, "$1.20", "+$1.20"),
        (-3.4, "-$3.40", "-$3.40"),
        (-0.001, "$0.00", "$0.00"),
        (0, "$0.00", "$0.00"),
        (1e12, "$1,000,000,000,000.00", "+$1,000,000,000,000.00"),
        ("7.5", "$7.50", "+$7.50"),
    ],
)
def test_money_has_separators_and_cents(value: Any, plain: str, signed: str) -> None:
    """Dollars to the cent with thousands separators; a P&L signed, a zero not."""
    assert numbers.money(value) == plain
    assert numbers.signed_money(value) == signed


@pytest.mark.parametrize(
    ("fraction", "plain", "signed"),
    [
        (0.123456789, "12.3%", "+12.3%"),
        (-0.083, "-8.3%", "-8.3%"),
        (0.0042, "0.4%", "+0.4%"),
        (-0.0004, "0.0%", "0.0%"),
        (12.5, "1,250.0%", "+1,250.0%"),
    ],
)
def test_percent_is_a_fraction_to_a_tenth(fraction: float, plain: str, signed: str) -> None:
    """A fraction times 100 to one decimal; no "-0.0%"."""
    assert numbers.percent(fraction) == plain
    assert numbers.signed_percent(fraction) == signed


def test_ratios_counts_and_quantities() -> None:
    """Ratios to two decimals, counts whole, shares whole unless fractional."""
    assert numbers.ratio(1.23456789) == "1.23"
    assert numbers.ratio(-0.004) == "0.00"
    assert numbers.ratio(123456.789) == "123,456.79"
    assert numbers.count(7056.0) == "7,056"
    assert numbers.quantity(16.0) == "16"
    assert numbers.quantity(0.5) == "0.5"
    assert numbers.quantity(2, signed=True) == "+2"
    assert numbers.quantity(-2, signed=True) == "-2"


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_missing_and_non_finite_are_a_dash(value: Any) -> None:
    """None, NaN and ±inf are "—" in every formatter, never "nan" or "inf"."""
    for fmt in (
        numbers.money,
        numbers.signed_money,
        numbers.percent,
        numbers.ratio,
        numbers.count,
        numbers.quantity,
        numbers.plain,
    ):
        assert fmt(value) == MISSING, fmt
    assert not numbers.known(value)


def test_text_is_shown_as_it_is() -> None:
    """A value that is not a number is shown as its text."""
    assert numbers.money("pending") == "pending"
    assert numbers.percent(True) == "true"


def test_plain_keeps_ints_and_rounds_floats() -> None:
    """Unknown numbers: ints as they are (a pid, a port), floats to at most 4 decimals."""
    assert numbers.plain(36149) == "36149"
    assert numbers.plain(0.003260828326602702) == "0.0033"
    assert numbers.plain(1.855) == "1.855"
    assert numbers.plain(1.0) == "1"
    assert numbers.plain(-0.00001) == "0"


def test_fields_by_name_and_limits_by_reason() -> None:
    """A field's name says its unit; a rejection's reason says what its ``limit`` is."""
    assert numbers.by_key("equity", 99919.0) == "$99,919.00"
    assert numbers.by_key("day_pnl", -81.0) == "-$81.00"
    assert numbers.by_key("drawdown_from_peak", -0.0123) == "-1.2%"
    assert numbers.by_key("stop_price", 466.1859027609555) == "$466.19"
    assert numbers.by_key("shares", 160.0) == "160"
    assert numbers.by_key("uptime_s", 3.3) == "3.3"
    assert numbers.by_key("limit", 0.3, "heat_limit") == "30.0%"
    assert numbers.by_key("limit", 25000.0, "max_order_notional") == "$25,000.00"
    assert numbers.by_key("limit", 20.0, "max_orders_per_day") == "20"
    assert numbers.by_key("limit", 20.0) == "20"
    assert numbers.details(
        {"heat_after": 0.3823, "limit": 0.3, "trade_value": 9333.85}, "heat_limit"
    ) == ("heat_after=38.2%, limit=30.0%, trade_value=$9,333.85")
    assert numbers.details({"switches": ["trading_halted"]}) == 'switches=["trading_halted"]'
