"""The pure reconciliation rules: per-symbol and cash tolerances, at their boundaries."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.messages import Discrepancy
from actors.reconciliation.compare import compare

TOL = 0.01


@pytest.mark.parametrize(
    ("local", "broker", "passes"),
    [
        (100, 100, True),
        (100, 99, True),
        (99, 100, True),
        (100, 98, False),
        (98, 100, False),
        (1, 0, False),
        (0, 1, False),
        (300, 303, True),
        (300, 304, False),
    ],
)
def test_position_tolerance_boundaries(local: int, broker: int, passes: bool) -> None:
    """A position passes when |broker − local| ≤ 1% of the larger side, exactly at the limit too."""
    passed, found = compare({"AAPL": local}, {"AAPL": broker}, 1000.0, 1000.0, tolerance=TOL)
    assert passed is passes
    assert bool(found) is not passes


def test_symbol_on_one_side_only_is_a_discrepancy_with_zero_on_the_other() -> None:
    """A symbol only the broker holds, and one only we hold, are both reported against 0."""
    passed, found = compare({"MSFT": 10}, {"NVDA": 5}, 0.0, 0.0, tolerance=TOL)
    assert not passed
    assert found == [
        Discrepancy("position", "MSFT", 10.0, 0.0),
        Discrepancy("position", "NVDA", 0.0, 5.0),
    ]


def test_discrepancy_carries_local_broker_and_signed_diff() -> None:
    """A mismatch names the symbol with both quantities; diff is broker minus local."""
    _, found = compare({"XOM": 50}, {"XOM": 40}, 0.0, 0.0, tolerance=TOL)
    assert found == [Discrepancy("position", "XOM", 50.0, 40.0)]
    assert found[0].diff == -10.0


@pytest.mark.parametrize(
    ("local_cash", "broker_cash", "passes"),
    [
        (100_000.0, 100_000.0, True),
        (99_000.0, 100_000.0, True),
        (101_000.0, 100_000.0, True),
        (98_999.0, 100_000.0, False),
        (101_001.0, 100_000.0, False),
        (0.01, 0.0, True),
        (0.0, 0.02, False),
    ],
)
def test_cash_tolerance_boundaries(local_cash: float, broker_cash: float, passes: bool) -> None:
    """Cash passes when |broker − local| ≤ 1% of max(|broker cash|, $1)."""
    passed, found = compare({}, {}, local_cash, broker_cash, tolerance=TOL)
    assert passed is passes
    if not passes:
        assert found == [Discrepancy("cash", None, local_cash, broker_cash)]


def test_cash_discrepancy_comes_after_the_positions() -> None:
    """Position discrepancies are sorted by symbol and the cash one is last."""
    _, found = compare({"B": 1, "A": 1}, {}, 0.0, 500.0, tolerance=TOL)
    assert [(d.kind, d.symbol) for d in found] == [
        ("position", "A"),
        ("position", "B"),
        ("cash", None),
    ]


def test_zero_tolerance_demands_exact_equality() -> None:
    """With tolerance 0 a one-share or one-cent difference fails."""
    assert not compare({"A": 100}, {"A": 101}, 0.0, 0.0, tolerance=0.0)[0]
    assert not compare({}, {}, 10.0, 10.01, tolerance=0.0)[0]
    assert compare({"A": 100}, {"A": 100}, 10.0, 10.0, tolerance=0.0)[0]


def test_non_finite_cash_is_a_mismatch() -> None:
    """A NaN or infinite cash figure never passes."""
    assert not compare({}, {}, 100.0, math.nan, tolerance=TOL)[0]
    assert not compare({}, {}, math.inf, 100.0, tolerance=TOL)[0]


def test_negative_tolerance_is_refused() -> None:
    """A negative tolerance is a programming error."""
    with pytest.raises(ValueError, match="tolerance"):
        compare({}, {}, 0.0, 0.0, tolerance=-0.01)


@given(
    positions=st.dictionaries(st.sampled_from("ABCDEFGH"), st.integers(-(10**6), 10**6)),
    cash=st.floats(-1e9, 1e9, allow_nan=False),
    tolerance=st.floats(0.0, 0.5),
)
def test_identical_books_always_pass(
    positions: dict[str, int], cash: float, tolerance: float
) -> None:
    """Local and broker that agree exactly pass at any tolerance."""
    assert compare(positions, dict(positions), cash, cash, tolerance=tolerance) == (True, [])


@given(
    local=st.integers(0, 10**6),
    broker=st.integers(0, 10**6),
    tolerance=st.floats(0.0, 0.5),
)
def test_position_rule_is_symmetric(local: int, broker: int, tolerance: float) -> None:
    """Swapping local and broker quantities never changes the verdict."""
    forward = compare({"A": local}, {"A": broker}, 0.0, 0.0, tolerance=tolerance)[0]
    backward = compare({"A": broker}, {"A": local}, 0.0, 0.0, tolerance=tolerance)[0]
    assert forward == backward
