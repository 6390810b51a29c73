"""Tests for ``actors.risk.daily_loss``."""

from __future__ import annotations

import math

import pytest

from actors.risk.daily_loss import (
    daily_drawdown,
    daily_loss_breached,
    daily_pnl,
    drawdown_exceeded,
)


def test_pnl_is_a_ratio() -> None:
    """Daily P&L is (current - start) / start."""
    assert daily_pnl(100_000, 98_500) == pytest.approx(-0.015)
    assert daily_pnl(100_000, 101_000) == pytest.approx(0.01)


@pytest.mark.parametrize("start", [0.0, -5.0, math.nan, math.inf])
def test_pnl_of_a_bad_start_is_nan(start: float) -> None:
    """A start value that is not finite and positive gives NaN."""
    assert math.isnan(daily_pnl(start, 100.0))


def test_drawdown_is_the_positive_loss() -> None:
    """Drawdown is the loss as a positive ratio, 0 on a gain."""
    assert daily_drawdown(100_000, 97_000) == pytest.approx(0.03)
    assert daily_drawdown(100_000, 103_000) == 0.0
    assert math.isnan(daily_drawdown(0.0, 1.0))


def test_exactly_two_percent_is_not_breached() -> None:
    """A loss of exactly 2 % does not halt."""
    assert not daily_loss_breached(100_000, 98_000, 0.02)


def test_exactly_two_percent_on_awkward_values_is_not_breached() -> None:
    """An exact 2 % loss on values that are not round is not breached by rounding."""
    start = 123_456.78
    assert not daily_loss_breached(start, start * 0.98, 0.02)


def test_just_over_two_percent_is_breached() -> None:
    """A loss of 2.001 % halts."""
    assert daily_loss_breached(100_000, 97_999, 0.02)


def test_a_gain_is_never_breached() -> None:
    """A gain never trips the breaker."""
    assert not daily_loss_breached(100_000, 150_000, 0.02)


@pytest.mark.parametrize(("start", "current"), [(0.0, 1.0), (100.0, math.nan), (math.nan, 1.0)])
def test_unknown_loss_fails_closed(start: float, current: float) -> None:
    """When the loss cannot be measured the breaker and the kill switch trip."""
    assert daily_loss_breached(start, current, 0.02)
    assert drawdown_exceeded(start, current, 0.05)


def test_drawdown_boundary_is_strict() -> None:
    """Exactly 5 % drawdown does not trip the kill switch; 5.01 % does."""
    assert not drawdown_exceeded(100_000, 95_000, 0.05)
    assert drawdown_exceeded(100_000, 94_990, 0.05)
