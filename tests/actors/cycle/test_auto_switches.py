"""Tests for ``actors.cycle.kill_switches``."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from actors.cycle.kill_switches import (
    AUTO_SWITCHES,
    BAD_DATA,
    CONSECUTIVE_FAILURES,
    DAILY_DRAWDOWN,
    ORDER_REJECTION_RATE,
    RECONCILIATION_FAILED,
    RiskContext,
    disabled_strategies,
    entries_blocked,
    evaluate,
    strategy_switch,
)
from actors.messages import SwitchView
from actors.risk.params import KillSwitchParams

P = KillSwitchParams()
CALM = RiskContext(
    reconciliation_passed=True,
    daily_drawdown=0.0,
    consecutive_failures=0,
    rejected_orders=0,
    total_orders=0,
    stale_data=False,
    bad_data_reason=None,
)


def _names(ctx: RiskContext) -> list[str]:
    return [name for name, _ in evaluate(ctx, P)]


def test_calm_day_trips_nothing() -> None:
    """A healthy context trips no switch."""
    assert evaluate(CALM, P) == []


def test_switch_names_are_the_documented_ones() -> None:
    """The exported names are the ones operators see."""
    assert AUTO_SWITCHES == (
        "reconciliation_failed",
        "daily_drawdown",
        "consecutive_failures",
        "order_rejection_rate",
        "bad_data",
        "max_drawdown",
        "broker_blocked",
    )


@pytest.mark.parametrize(("passed", "trips"), [(False, True), (True, False), (None, False)])
def test_reconciliation(passed: bool | None, trips: bool) -> None:
    """Only a failed reconciliation trips; not-yet-run does not."""
    assert (RECONCILIATION_FAILED in _names(replace(CALM, reconciliation_passed=passed))) is trips


@pytest.mark.parametrize(("dd", "trips"), [(0.0499, False), (0.05, False), (0.0501, True)])
def test_drawdown_is_strict(dd: float, trips: bool) -> None:
    """Drawdown trips only strictly above 5 %."""
    assert (DAILY_DRAWDOWN in _names(replace(CALM, daily_drawdown=dd))) is trips


def test_unknown_drawdown_trips() -> None:
    """A NaN drawdown fails closed."""
    assert _names(replace(CALM, daily_drawdown=math.nan)) == [DAILY_DRAWDOWN]


@pytest.mark.parametrize(("n", "trips"), [(2, False), (3, True), (4, True)])
def test_consecutive_failures(n: int, trips: bool) -> None:
    """Three or more consecutive failures trip."""
    assert (CONSECUTIVE_FAILURES in _names(replace(CALM, consecutive_failures=n))) is trips


@pytest.mark.parametrize(
    ("rejected", "total", "trips"),
    [(5, 8, True), (5, 10, False), (4, 4, False), (6, 11, True), (5, 0, False)],
)
def test_rejection_rate(rejected: int, total: int, trips: bool) -> None:
    """At least 5 rejected and strictly more than half: 5 at 62.5 % trips, 4 at 100 % not."""
    ctx = replace(CALM, rejected_orders=rejected, total_orders=total)
    assert (ORDER_REJECTION_RATE in _names(ctx)) is trips


def test_five_rejections_at_sixty_percent_reason_has_numbers() -> None:
    """The reason carries the counts and the rate."""
    ctx = replace(CALM, rejected_orders=6, total_orders=10)
    ((name, reason),) = evaluate(ctx, P)
    assert name == ORDER_REJECTION_RATE
    assert "6/10" in reason
    assert "60%" in reason


@pytest.mark.parametrize(
    ("stale", "why", "trips"),
    [(True, None, True), (False, "gaps in AAPL", True), (False, "", False)],
)
def test_bad_data(stale: bool, why: str | None, trips: bool) -> None:
    """Stale data or a data-quality reason trips bad_data."""
    names = _names(replace(CALM, stale_data=stale, bad_data_reason=why))
    assert (BAD_DATA in names) is trips


def test_every_rule_trips_together_in_order() -> None:
    """All conditions at once trip all switches, in rule order, with numbers in reasons."""
    ctx = RiskContext(False, 0.07, 3, 5, 5, True, "NaN closes", 0.2, 150_000.0)
    tripped = evaluate(ctx, P)
    # broker_blocked is tripped by the cycle from the broker's answer, not by a threshold
    assert [n for n, _ in tripped] == [
        "reconciliation_failed",
        "daily_drawdown",
        "consecutive_failures",
        "order_rejection_rate",
        "max_drawdown",
        "bad_data",
    ]
    assert "20.00% below its high-water mark 150,000.00 > 15.00%" in dict(tripped)["max_drawdown"]
    reasons = dict(tripped)
    assert "7.00%" in reasons[DAILY_DRAWDOWN]
    assert "stale" in reasons[BAD_DATA]
    assert "NaN closes" in reasons[BAD_DATA]


def test_automatic_switches_block_entries() -> None:
    """Every automatic switch blocks all entries on the switch board."""
    views = [SwitchView(name, "x", "risk") for name in AUTO_SWITCHES]
    assert entries_blocked(views, "momentum") == views


@pytest.mark.parametrize(("drawdown", "trips"), [(0.15, False), (0.1501, True), (0.3, True)])
def test_max_drawdown_strictly_beyond_the_limit(drawdown: float, trips: bool) -> None:
    """max_drawdown trips only strictly beyond 15 % below the high-water mark."""
    names = _names(replace(CALM, drawdown_from_peak=drawdown, peak_equity=100_000.0))
    assert ("max_drawdown" in names) is trips


def test_disabled_strategies_are_named_by_their_switches() -> None:
    """Only ``strategy_disabled:`` switches disable strategies, each its own."""
    views = [
        SwitchView(strategy_switch("momentum"), "x", "config"),
        SwitchView(BAD_DATA, "x", "risk"),
    ]
    assert disabled_strategies(views) == {"momentum"}
