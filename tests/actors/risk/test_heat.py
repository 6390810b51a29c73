"""Tests for ``actors.risk.heat``."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.risk.heat import HEAT_LIMIT, heat_check, portfolio_heat

money = st.floats(min_value=0, max_value=1e9, allow_nan=False)


def test_heat_is_exposure_over_value() -> None:
    """Heat is gross exposure divided by portfolio value."""
    assert portfolio_heat(25_000, 100_000) == 0.25


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_heat_of_a_bad_value_is_infinite(value: float) -> None:
    """A non-positive or non-finite portfolio value fails closed as infinite heat."""
    assert portfolio_heat(1_000, value) == math.inf


def test_nan_exposure_is_infinite_heat() -> None:
    """An unknown exposure fails closed."""
    assert portfolio_heat(math.nan, 100_000) == math.inf


def test_exactly_at_the_limit_is_allowed() -> None:
    """Reaching the limit exactly is allowed (inclusive)."""
    d = heat_check(5_000, 25_000, 100_000, 0.30)
    assert d.allowed
    assert (d.heat_before, d.heat_after, d.limit) == (0.25, 0.30, 0.30)
    assert d.code is None


def test_float_sums_at_the_limit_are_allowed() -> None:
    """Float rounding in exposure + trade does not refuse a trade landing on the limit."""
    assert heat_check(0.2, 0.1, 1.0, 0.3).allowed


def test_one_cent_over_the_limit_is_refused() -> None:
    """A trade one cent beyond the limit is refused with the heat_limit code."""
    d = heat_check(5_000.01, 25_000, 100_000, 0.30)
    assert not d.allowed
    assert d.code == HEAT_LIMIT
    assert "> limit 30.00%" in d.reason


def test_zero_limit_refuses_any_trade() -> None:
    """A crisis limit of 0 refuses every positive trade."""
    assert not heat_check(1.0, 0.0, 100_000, 0.0).allowed


@pytest.mark.parametrize("trade", [-1.0, math.nan, math.inf])
def test_bad_trade_value_is_refused(trade: float) -> None:
    """Negative or non-finite trade values are refused."""
    d = heat_check(trade, 0.0, 100_000, 0.30)
    assert not d.allowed
    assert d.heat_after == math.inf


def test_unknown_portfolio_value_is_refused() -> None:
    """A zero portfolio value refuses the trade and says the heat is unknown."""
    d = heat_check(1.0, 0.0, 0.0, 0.30)
    assert not d.allowed
    assert "unknown" in d.reason


@given(money, money, money, st.floats(min_value=1, max_value=1e9))
def test_allowed_is_monotone_in_trade_value(
    a: float, b: float, exposure: float, value: float
) -> None:
    """If a trade is refused, every larger trade is refused too."""
    small, large = min(a, b), max(a, b)
    if heat_check(large, exposure, value, 0.3).allowed:
        assert heat_check(small, exposure, value, 0.3).allowed


@given(money, money, st.floats(min_value=1, max_value=1e9))
def test_heat_is_monotone_in_exposure(a: float, b: float, value: float) -> None:
    """More exposure never means less heat."""
    assert portfolio_heat(min(a, b), value) <= portfolio_heat(max(a, b), value)
