"""Tests for ``actors.risk.stops``."""

from __future__ import annotations

import math

import pytest

from actors.risk.stops import MIN_STOP, check_stops, stop_price


def test_stop_is_entry_minus_three_atr() -> None:
    """The stop sits multiple x ATR below the entry."""
    assert stop_price(100.0, 2.0, 3.0) == 94.0


def test_stop_never_below_a_cent() -> None:
    """A huge ATR floors the stop at one cent."""
    assert stop_price(10.0, 5.0, 3.0) == MIN_STOP


@pytest.mark.parametrize(
    ("entry", "atr", "multiple"),
    [
        (0.0, 1.0, 3.0),
        (math.nan, 1.0, 3.0),
        (100.0, -1.0, 3.0),
        (100.0, math.nan, 3.0),
        (100, 1, 0),
    ],
)
def test_bad_inputs_raise(entry: float, atr: float, multiple: float) -> None:
    """Non-positive entries, negative or NaN ATRs and non-positive multiples raise."""
    with pytest.raises(ValueError, match="must be"):
        stop_price(entry, atr, multiple)


def test_price_exactly_at_stop_triggers() -> None:
    """A price equal to the stop triggers (inclusive)."""
    (check,) = check_stops([("momentum", "AAPL", 94.0)], {"AAPL": 94.0})
    assert check.triggered
    assert (check.strategy, check.symbol, check.stop, check.price) == (
        "momentum",
        "AAPL",
        94.0,
        94.0,
    )


def test_price_a_cent_above_does_not_trigger() -> None:
    """A price one cent above the stop does not trigger; one cent below does."""
    checks = check_stops([("s", "A", 94.0), ("s", "B", 94.0)], {"A": 94.01, "B": 93.99})
    assert [c.triggered for c in checks] == [False, True]


@pytest.mark.parametrize("prices", [{}, {"AAPL": math.nan}, {"AAPL": 0.0}])
def test_missing_price_is_reported_not_triggered(prices: dict[str, float]) -> None:
    """A missing, NaN or zero price never triggers, and the reason says so."""
    (check,) = check_stops([("s", "AAPL", 94.0)], prices)
    assert not check.triggered
    assert "no valid price" in check.reason


def test_nan_stop_is_reported_not_triggered() -> None:
    """A position without a valid stop is reported as unchecked."""
    (check,) = check_stops([("s", "AAPL", math.nan)], {"AAPL": 1.0})
    assert not check.triggered
    assert "no valid stop" in check.reason


def test_checks_keep_position_order() -> None:
    """One check per position, in the order given."""
    positions = [("a", "X", 1.0), ("b", "Y", 2.0), ("c", "X", 3.0)]
    checks = check_stops(positions, {"X": 2.5, "Y": 2.5})
    assert [(c.strategy, c.triggered) for c in checks] == [("a", False), ("b", False), ("c", True)]
