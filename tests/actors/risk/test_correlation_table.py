"""``CorrelationTable`` and ``pairwise_correlation`` against the filter as it was, bit for bit.

The reference (``correlation_reference``) is the code the pipeline ran before
the table: one ``correlation_filter`` per entry over the whole history of the
candidate's and the held symbols' columns. Every number must be equal with
``==`` (NaN where the reference has NaN), not merely close: a correlation one
ulp away can cross the 0.5 or 0.8 threshold and change a trade.
"""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.data_feed.panel import FloatArray
from actors.risk.correlation import (
    CorrelationDecision,
    CorrelationTable,
    correlation_filter,
    pairwise_correlation,
    simple_returns,
)
from actors.risk.params import CorrelationParams
from tests.actors.risk import correlation_reference as ref

PARAMS = [CorrelationParams(), CorrelationParams(long_window=15, short_window=10)]


def _panel(seed: int, rows: int, cols: int) -> tuple[FloatArray, list[str]]:
    """Closes sharing a market factor, with gaps, bad prints, copies and flat lines."""
    rng = np.random.default_rng(seed)
    beta = rng.uniform(-1.5, 1.5, size=cols)
    rets = rng.normal(0, 0.01, size=(rows, 1)) * beta + rng.normal(0, 0.01, size=(rows, cols))
    close = 100.0 * np.cumprod(1.0 + rets, axis=0, dtype=np.float64)
    close[rng.random(close.shape) < rng.uniform(0.0, 0.3)] = np.nan
    close[rng.random(close.shape) < 0.02] = rng.choice([0.0, -1.0, np.inf])
    if cols > 2:
        close[:, 1] = close[:, 0]  # an exact copy: correlation 1, ties
        close[:, 2] = 50.0  # flat: no variance
    return close, [f"S{i}" for i in range(cols)]


def _same(got: CorrelationDecision, want: CorrelationDecision) -> bool:
    """Field by field; NaN equals NaN, every other number with ==."""
    for f in dataclasses.fields(CorrelationDecision):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(a, float) and math.isnan(a):
            if not (isinstance(b, float) and math.isnan(b)):
                return False
        elif a != b:
            return False
    return True


panels = st.tuples(
    st.integers(0, 2**32 - 1), st.integers(1, 90), st.integers(1, 30), st.sampled_from(PARAMS)
)


@settings(max_examples=150, deadline=None)
@given(panels, st.randoms(use_true_random=False))
def test_filter_equals_the_reference(
    panel: tuple[int, int, int, CorrelationParams], rnd: random.Random
) -> None:
    """``correlation_filter`` decides as the reference, unknown symbols and duplicates too."""
    seed, rows, cols, params = panel
    close, symbols = _panel(seed, rows, cols)
    pool = [*symbols, "ZZZ"]
    candidates = rnd.choices(pool, k=rnd.randint(0, 8))
    held = rnd.sample(pool, k=rnd.randint(0, len(pool)))
    got = correlation_filter(close, symbols, candidates, held, params)
    want = ref.correlation_filter(close, symbols, candidates, held, params)
    assert len(got) == len(want)
    assert all(_same(g, w) for g, w in zip(got, want, strict=True))


@settings(max_examples=150, deadline=None)
@given(panels, st.randoms(use_true_random=False))
def test_a_session_equals_one_filter_per_entry(
    panel: tuple[int, int, int, CorrelationParams], rnd: random.Random
) -> None:
    """One table per session, held growing as entries are taken, equals one filter per entry."""
    seed, rows, cols, params = panel
    close, symbols = _panel(seed, rows, cols)
    pool = [*symbols, "ZZZ"]
    held = set(rnd.sample(pool, k=rnd.randint(0, min(len(pool), 12))))
    entries = rnd.choices(pool, k=rnd.randint(1, 12))
    foreseen = entries[: rnd.randint(0, len(entries))]  # the rest arrive unforeseen
    table = CorrelationTable(close, symbols, params, candidates=foreseen, held=held)
    for sym in entries:
        mine = sorted(held - {sym})
        got = table.decide(sym, mine)
        want = ref.pipeline_decision(close, symbols, sym, sorted(held), params)
        assert _same(got, want), (sym, mine)
        if rnd.random() < 0.5:
            held.add(sym)


@settings(max_examples=150, deadline=None)
@given(panels, st.randoms(use_true_random=False))
def test_pairwise_equals_the_reference(
    panel: tuple[int, int, int, CorrelationParams], rnd: random.Random
) -> None:
    """Every pair equals the reference's number for the columns the old filter passed it."""
    seed, rows, cols, params = panel
    close, symbols = _panel(seed, rows, cols)
    cand = rnd.choice(symbols)
    held = rnd.sample(symbols, k=rnd.randint(1, len(symbols)))
    want = ref.correlation_matrices(close, symbols, [cand], held, params)
    index = {s: i for i, s in enumerate(symbols)}
    returns = simple_returns(close)
    for w, window in enumerate((params.long_window, params.short_window)):
        tail = returns[-window:]
        got = pairwise_correlation(
            tail[:, [index[cand]]], tail[:, [index[s] for s in held]], max(10, window // 2)
        )
        got[0, [s == cand for s in held]] = np.nan
        assert np.array_equal(got, want[w], equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(panels, st.randoms(use_true_random=False))
def test_a_pair_does_not_depend_on_its_neighbours(
    panel: tuple[int, int, int, CorrelationParams], rnd: random.Random
) -> None:
    """Any block of the full matrix, C-ordered input or not, equals that slice of it."""
    seed, rows, cols, _ = panel
    returns = simple_returns(_panel(seed, rows, cols)[0])
    full = pairwise_correlation(returns, returns, 10)
    r = rnd.sample(range(cols), k=rnd.randint(1, cols))
    c = rnd.sample(range(cols), k=rnd.randint(1, cols))
    block = pairwise_correlation(returns[:, r], np.ascontiguousarray(returns[:, c]), 10)
    assert np.array_equal(block, full[np.ix_(r, c)], equal_nan=True)


@pytest.mark.parametrize("held_count", [1, 2, 399])
def test_a_wide_session_equals_the_reference(held_count: int) -> None:
    """400 symbols, up to 399 held: every candidate's decision equals the reference's."""
    close, symbols = _panel(11, 300, 400)
    params = CorrelationParams()
    held = symbols[:held_count]
    entries = symbols[-30:]
    table = CorrelationTable(close, symbols, params, candidates=entries, held=held)
    for sym in entries:
        want = ref.pipeline_decision(close, symbols, sym, held, params)
        assert _same(table.decide(sym, sorted(set(held) - {sym})), want)


def test_the_table_reads_only_the_last_window() -> None:
    """Closes before the last long_window + 1 rows change nothing."""
    close, symbols = _panel(3, 120, 6)
    params = CorrelationParams()
    garbage = close.copy()
    garbage[: 120 - 61] = np.nan
    for table_close in (close, garbage):
        table = CorrelationTable(table_close, symbols, params, candidates=["S5"], held=["S0"])
        want = ref.pipeline_decision(close, symbols, "S5", ["S0", "S3"], params)
        assert _same(table.decide("S5", ["S0", "S3"]), want)


def test_an_unforeseen_candidate_and_column_are_added() -> None:
    """A candidate or a held symbol the table was not built for is measured on demand."""
    close, symbols = _panel(5, 80, 5)
    params = CorrelationParams()
    table = CorrelationTable(close, symbols, params, candidates=[], held=[])
    for sym, held in [("S4", ["S0"]), ("S3", ["S0", "S4"]), ("S4", ["S0", "S3"])]:
        assert _same(
            table.decide(sym, held), ref.pipeline_decision(close, symbols, sym, held, params)
        )


def test_table_shape_mismatch_is_an_error() -> None:
    """close must have one column per symbol."""
    with pytest.raises(ValueError, match="shape"):
        CorrelationTable(np.ones((5, 2)), ["A"], CorrelationParams(), candidates=[], held=[])
