"""ATR position sizing: examples and properties."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from actors.strategies.sizing import atr_position_size

money = st.floats(min_value=1.0, max_value=1e9, allow_nan=False, allow_infinity=False)
prices = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)
atrs = st.floats(min_value=1e-4, max_value=1e4, allow_nan=False, allow_infinity=False)
risks = st.floats(min_value=1e-4, max_value=0.1, allow_nan=False, allow_infinity=False)
multiples = st.floats(min_value=0.1, max_value=10.0, allow_nan=False, allow_infinity=False)


def test_risk_rule_example() -> None:
    """1% of 100k risked at a 3 x 2.00 stop buys floor(1000 / 6) = 166 shares."""
    assert atr_position_size(100_000.0, 95.0, 2.0) == 166


def test_capped_by_capital() -> None:
    """A tiny ATR would size beyond the cash; the cap is floor(capital / price)."""
    assert atr_position_size(10_000.0, 300.0, 0.01) == 33


def test_exact_quotient_is_whole() -> None:
    """A budget that is an exact multiple of the stop distance gives that multiple."""
    assert atr_position_size(30_000.0, 10.0, 1.0, risk_per_trade=0.01, stop_atr_multiple=3.0) == 100


def test_price_above_capital_gives_zero() -> None:
    """A share dearer than the capital cannot be bought."""
    assert atr_position_size(500.0, 600.0, 1.0) == 0


def test_bad_inputs_give_zero() -> None:
    """Non-finite or non-positive inputs size to 0 shares."""
    for args in [
        (math.nan, 10.0, 1.0),
        (1e5, math.nan, 1.0),
        (1e5, 10.0, math.nan),
        (1e5, 10.0, math.inf),
        (0.0, 10.0, 1.0),
        (-1e5, 10.0, 1.0),
        (1e5, 0.0, 1.0),
        (1e5, -10.0, 1.0),
        (1e5, 10.0, 0.0),
        (1e5, 10.0, -1.0),
    ]:
        assert atr_position_size(*args) == 0, args
    assert atr_position_size(1e5, 10.0, 1.0, risk_per_trade=0.0) == 0
    assert atr_position_size(1e5, 10.0, 1.0, stop_atr_multiple=math.nan) == 0


@given(money, prices, atrs, risks, multiples)
def test_never_exceeds_capital(
    capital: float, price: float, atr: float, risk: float, multiple: float
) -> None:
    """Shares never cost more than the capital."""
    shares = atr_position_size(capital, price, atr, risk, multiple)
    assert shares <= capital / price
    assert shares * price <= capital * (1 + 1e-12)


@given(money, prices, atrs, risks, multiples)
def test_never_negative_and_whole(
    capital: float, price: float, atr: float, risk: float, multiple: float
) -> None:
    """Shares are a non-negative int."""
    shares = atr_position_size(capital, price, atr, risk, multiple)
    assert isinstance(shares, int)
    assert shares >= 0


@given(money, prices, atrs, risks, multiples)
def test_risk_at_stop_within_budget(
    capital: float, price: float, atr: float, risk: float, multiple: float
) -> None:
    """The loss at the stop never exceeds capital * risk_per_trade."""
    shares = atr_position_size(capital, price, atr, risk, multiple)
    budget = capital * risk
    assert shares * (multiple * atr) <= budget * (1 + 1e-12)


@given(money, prices, atrs, atrs, risks, multiples)
def test_monotone_in_atr(
    capital: float, price: float, atr_a: float, atr_b: float, risk: float, multiple: float
) -> None:
    """A wider ATR never buys more shares."""
    low, high = sorted((atr_a, atr_b))
    assert atr_position_size(capital, price, high, risk, multiple) <= atr_position_size(
        capital, price, low, risk, multiple
    )


@given(money, prices, atrs, risks, multiples)
def test_one_more_share_breaks_a_bound(
    capital: float, price: float, atr: float, risk: float, multiple: float
) -> None:
    """The size is maximal: one more share breaks the risk or the cash bound (exact arithmetic)."""
    shares = atr_position_size(capital, price, atr, risk, multiple)
    more = shares + 1
    by_cash = more * Fraction(price) > Fraction(capital)
    by_risk = more * Fraction(multiple * atr) > Fraction(capital * risk)
    assert by_cash or by_risk
