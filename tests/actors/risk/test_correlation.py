"""Tests for ``actors.risk.correlation``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.data_feed.panel import FloatArray
from actors.risk.correlation import (
    HIGH_CORRELATION,
    correlation_filter,
    pairwise_correlation,
    simple_returns,
    size_multiplier,
)
from actors.risk.params import CorrelationParams

P = CorrelationParams()
corrs = st.floats(min_value=-1, max_value=1, allow_nan=False)


def _closes(returns: FloatArray) -> FloatArray:
    """Closes (T+1, N) starting at 100 whose simple returns are ``returns`` (T, N)."""
    start = np.full((1, returns.shape[1]), 100.0)
    return np.vstack([start, 100.0 * np.cumprod(1.0 + returns, axis=0)])


def _with_correlation(x: FloatArray, rho: float, seed: int) -> FloatArray:
    """A series whose sample correlation with ``x`` is exactly ``rho`` (same mean and std)."""
    noise = np.random.default_rng(seed).normal(size=x.size)
    xc = x - x.mean()
    nc = noise - noise.mean()
    nc -= (nc @ xc) / (xc @ xc) * xc
    nc *= np.linalg.norm(xc) / np.linalg.norm(nc)
    out: FloatArray = x.mean() + rho * xc + math.sqrt(1 - rho * rho) * nc
    return out


def _market(rows: int = 60, seed: int = 1) -> FloatArray:
    return np.random.default_rng(seed).normal(0.0005, 0.01, size=rows)


# -- size_multiplier -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("corr", "expected"),
    [
        (-0.95, 1.0),
        (0.0, 1.0),
        (0.5, 1.0),
        (0.5001, 1.0 - 0.0001 / 0.3 * 0.75),
        (0.65, 0.625),
        (0.8, 0.25),
        (0.8001, 0.0),
        (1.0, 0.0),
    ],
)
def test_multiplier_boundaries(corr: float, expected: float) -> None:
    """<= 0.5 full, linear 1.0 -> 0.25 up to 0.8 inclusive, rejected above 0.8."""
    multiplier, _ = size_multiplier(corr, P)
    assert multiplier == pytest.approx(expected, abs=1e-12)


def test_multiplier_at_reject_is_exactly_the_floor() -> None:
    """At exactly 0.8 the multiplier is the 0.25 floor, not a rejection."""
    assert size_multiplier(0.8, P)[0] == 0.25


def test_multiplier_of_nan_is_full_size() -> None:
    """An unmeasurable correlation gets full size and says so."""
    assert size_multiplier(math.nan, P) == (1.0, "correlation not measurable: full size")


@given(corrs)
def test_multiplier_is_zero_or_between_floor_and_one(corr: float) -> None:
    """The multiplier is always 0 or within [0.25, 1]."""
    multiplier, _ = size_multiplier(corr, P)
    assert multiplier == 0.0 or 0.25 <= multiplier <= 1.0


@given(corrs, corrs)
def test_multiplier_never_rises_with_correlation(a: float, b: float) -> None:
    """A higher correlation never gives a larger multiplier."""
    assert size_multiplier(max(a, b), P)[0] <= size_multiplier(min(a, b), P)[0]


# -- the vectorised correlation --------------------------------------------------------------


def test_pairwise_matches_pandas_with_gaps() -> None:
    """The matrix equals pandas' pairwise-complete Pearson correlation, gaps included."""
    rng = np.random.default_rng(7)
    data = rng.normal(size=(60, 6))
    data[:, 3] += data[:, 0]
    data[rng.random(size=data.shape) < 0.15] = np.nan
    got = pairwise_correlation(data[:, :2], data[:, 2:], min_rows=10)
    want = pd.DataFrame(data).corr(min_periods=10).to_numpy()[:2, 2:]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_pairwise_needs_min_rows_and_variance() -> None:
    """Too few overlapping rows or a constant series give NaN, without warnings."""
    x = np.arange(12.0)[:, None]
    y = np.column_stack([np.arange(12.0) ** 2, np.ones(12), np.r_[np.full(4, np.nan), x[4:, 0]]])
    corr = pairwise_correlation(x, y, min_rows=10)
    assert 0.9 < corr[0, 0] <= 1.0
    assert math.isnan(corr[0, 1])
    assert math.isnan(corr[0, 2])


def test_simple_returns_mask_bad_closes() -> None:
    """Returns next to NaN or non-positive closes are NaN."""
    close = np.array([[100.0], [110.0], [np.nan], [120.0], [0.0], [5.0]])
    rets = simple_returns(close)
    assert rets[0, 0] == pytest.approx(0.1)
    assert np.isnan(rets[1:, 0]).all()


# -- correlation_filter ----------------------------------------------------------------------


def test_known_correlation_is_attenuated() -> None:
    """A candidate built with correlation 0.65 to the held symbol gets 62.5 % size."""
    x = _market()
    y = np.concatenate([_with_correlation(x[:40], 0.0, seed=2), _with_correlation(x[40:], 0.65, 3)])
    close = _closes(np.column_stack([x, y]))
    (d,) = correlation_filter(close, ["HELD", "CAND"], ["CAND"], ["HELD"], P)
    assert d.max_corr == pytest.approx(0.65, abs=1e-9)
    assert (d.with_symbol, d.window) == ("HELD", 20)
    assert d.multiplier == pytest.approx(0.625, abs=1e-8)
    assert not d.rejected
    assert d.code is None


def test_near_copy_is_rejected() -> None:
    """y = x + small noise is rejected with the high_correlation code."""
    x = _market()
    y = x + np.random.default_rng(3).normal(0, 0.001, size=x.size)
    close = _closes(np.column_stack([x, y]))
    (d,) = correlation_filter(close, ["MSFT", "AAPL"], ["AAPL"], ["MSFT"], P)
    assert d.rejected
    assert d.multiplier == 0.0
    assert d.max_corr > 0.95
    assert d.code == HIGH_CORRELATION
    assert "MSFT" in d.reason


def test_negative_correlation_is_a_hedge() -> None:
    """A strongly negatively correlated candidate gets full size."""
    x = _market()
    close = _closes(np.column_stack([x, -x]))
    (d,) = correlation_filter(close, ["A", "B"], ["B"], ["A"], P)
    assert d.multiplier == 1.0
    assert d.max_corr == pytest.approx(-1.0)


def test_short_window_catches_a_recent_shift() -> None:
    """Uncorrelated over 60 days but correlated in the last 20: the 20-day window decides."""
    x = _market(seed=4)
    y = np.concatenate([_with_correlation(x[:40], -0.6, seed=5), x[40:]])
    close = _closes(np.column_stack([x, y]))
    long_corr = np.corrcoef(x, y)[0, 1]
    assert long_corr < 0.5
    (d,) = correlation_filter(close, ["A", "B"], ["B"], ["A"], P)
    assert d.window == 20
    assert d.max_corr == pytest.approx(1.0)
    assert d.rejected


def test_long_window_decides_when_higher() -> None:
    """When the 60-day correlation is the higher one it decides and is reported."""
    x = _market(seed=8)
    y = np.concatenate([x[:40], _with_correlation(x[40:], 0.0, seed=9)])
    close = _closes(np.column_stack([x, y]))
    (d,) = correlation_filter(close, ["A", "B"], ["B"], ["A"], P)
    assert d.window == 60
    assert d.max_corr == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)


def test_highest_held_correlation_decides() -> None:
    """Among several held symbols, the most correlated one decides."""
    x = _market(seed=10)
    cand = _with_correlation(x, 0.7, seed=11)
    other = np.random.default_rng(12).normal(0, 0.01, size=x.size)
    close = _closes(np.column_stack([other, x, cand]))
    (d,) = correlation_filter(close, ["OTHER", "X", "C"], ["C"], ["OTHER", "X"], P)
    assert d.with_symbol == "X"
    assert 0.6 < d.max_corr < 0.8


def test_no_held_positions_is_full_size() -> None:
    """With nothing held every candidate gets full size."""
    close = _closes(np.column_stack([_market(), _market(seed=2)]))
    decisions = correlation_filter(close, ["A", "B"], ["A", "B"], [], P)
    assert [d.multiplier for d in decisions] == [1.0, 1.0]
    assert all(d.with_symbol is None and d.window is None for d in decisions)
    assert all(math.isnan(d.max_corr) for d in decisions)
    assert "no other held positions" in decisions[0].reason


def test_a_held_candidate_is_not_compared_with_itself() -> None:
    """A candidate already held is compared only with the other held symbols."""
    x = _market()
    other = np.random.default_rng(13).normal(0, 0.01, size=x.size)
    close = _closes(np.column_stack([x, other]))
    (alone,) = correlation_filter(close, ["A", "B"], ["A"], ["A"], P)
    assert alone.multiplier == 1.0
    assert alone.with_symbol is None
    (d,) = correlation_filter(close, ["A", "B"], ["A"], ["A", "B"], P)
    assert d.with_symbol == "B"


def test_short_history_ignores_the_long_window() -> None:
    """With 25 returns the 60-day window (needs 30) is ignored and the 20-day one decides."""
    x = _market(rows=25)
    y = _with_correlation(x, 0.9, seed=14)
    close = _closes(np.column_stack([x, y]))
    (d,) = correlation_filter(close, ["A", "B"], ["B"], ["A"], P)
    assert d.window == 20
    assert d.rejected


def test_too_little_history_is_unmeasured() -> None:
    """With fewer than 10 overlapping returns the candidate is unmeasured and full size."""
    x = _market(rows=9)
    close = _closes(np.column_stack([x, x]))
    (d,) = correlation_filter(close, ["A", "B"], ["B"], ["A"], P)
    assert d.multiplier == 1.0
    assert d.with_symbol is None
    assert "not enough overlapping history" in d.reason


def test_gaps_are_pairwise_complete() -> None:
    """Missing closes drop only the affected days from the pair."""
    x = _market()
    y = x + np.random.default_rng(15).normal(0, 0.001, size=x.size)
    close = _closes(np.column_stack([x, y]))
    close[10:14, 1] = np.nan
    (d,) = correlation_filter(close, ["A", "B"], ["B"], ["A"], P)
    assert d.rejected
    assert d.max_corr > 0.95


def test_unknown_symbols_are_unmeasured() -> None:
    """Candidates or held symbols outside the panel have no history and get full size."""
    close = _closes(np.column_stack([_market(), _market(seed=2)]))
    decisions = correlation_filter(close, ["A", "B"], ["ZZZ", "A"], ["B", "YYY"], P)
    assert [d.symbol for d in decisions] == ["ZZZ", "A"]
    assert decisions[0].multiplier == 1.0
    assert decisions[0].with_symbol is None
    assert decisions[1].with_symbol == "B"


def test_many_candidates_in_order() -> None:
    """One decision per candidate, in input order, duplicates included."""
    rng = np.random.default_rng(16)
    close = _closes(rng.normal(0, 0.01, size=(60, 5)))
    syms = ["A", "B", "C", "D", "E"]
    decisions = correlation_filter(close, syms, ["E", "B", "E"], ["A", "C"], P)
    assert [d.symbol for d in decisions] == ["E", "B", "E"]
    assert decisions[0] == decisions[2]


def test_shape_mismatch_is_an_error() -> None:
    """close must have one column per symbol."""
    with pytest.raises(ValueError, match="shape"):
        correlation_filter(np.ones((5, 2)), ["A"], ["A"], [], P)


def test_no_candidates_gives_no_decisions() -> None:
    """An empty candidate list gives an empty answer."""
    assert correlation_filter(np.ones((5, 1)), ["A"], [], ["A"], P) == []
