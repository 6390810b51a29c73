"""Tests for ``actors.risk.pipeline``: the correlation table a session's strategies share."""

from __future__ import annotations

import numpy as np

from actors.data_feed.panel import FloatArray
from actors.messages import Signal, SignalAction
from actors.risk import pipeline
from actors.risk.cash import CashLedger
from actors.risk.correlation import CorrelationTable
from actors.risk.params import CorrelationParams, RegimeParams
from actors.risk.regime import detect_regime

SYMBOLS = ["HELD", "X", "COPY", "OTHER"]


def _close() -> FloatArray:
    """61 closes: COPY moves exactly like X, OTHER and HELD on their own."""
    rng = np.random.default_rng(3)
    rets = rng.normal(0, 0.01, size=(60, 4))
    rets[:, 2] = rets[:, 1]
    close: FloatArray = 100.0 * np.vstack([np.ones((1, 4)), np.cumprod(1.0 + rets, axis=0)])
    return close


def _buy(strategy: str, symbol: str) -> Signal:
    return Signal(strategy, symbol, SignalAction.BUY, 0.9, 100.0, 2.0, 10, "test")


def _book() -> pipeline.Book:
    cash = CashLedger({"a": 50_000.0, "b": 50_000.0}, 100_000.0)
    return pipeline.Book(100_000.0, 0.0, cash, held_symbols={"HELD"})


def _decide(
    strategy: str, signals: list[Signal], book: pipeline.Book, table: CorrelationTable
) -> list[pipeline.Decision]:
    decisions, _ = pipeline.decide(
        strategy,
        signals,
        breakout=False,
        blocking=[],
        regime=detect_regime(None, None, RegimeParams()),
        book=book,
        correlations=table,
    )
    return decisions


def test_an_entry_accepted_by_one_strategy_is_held_for_the_next() -> None:
    """Strategy b's copy of the symbol strategy a just bought is rejected, naming it."""
    book = _book()
    a, b = [_buy("a", "X")], [_buy("b", "COPY"), _buy("b", "OTHER")]
    table = pipeline.session_correlations(
        [*a, *b], close=_close(), symbols=SYMBOLS, book=book, params=CorrelationParams()
    )
    (first,) = _decide("a", a, book, table)
    assert first.accepted
    copy, other = _decide("b", b, book, table)
    assert copy.rejection is not None
    assert copy.rejection.reason_code == "high_correlation"
    assert copy.rejection.details["with_symbol"] == "X"
    assert other.accepted
    assert book.held_symbols == {"HELD", "X", "OTHER"}


def test_the_table_is_measured_for_entries_only() -> None:
    """Exits are not candidates: only the session's buys are rows of the table."""
    sell = Signal("a", "OTHER", SignalAction.SELL, 0.9, 100.0, 2.0, 10, "test")
    table = pipeline.session_correlations(
        [sell, _buy("a", "X")],
        close=_close(),
        symbols=SYMBOLS,
        book=_book(),
        params=CorrelationParams(),
    )
    assert table.candidates == ("X",)
