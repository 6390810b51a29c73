"""Data validation rules on hand-built panels: each rule, its boundary, and the halt logic."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from actors.data_feed import validator as v
from actors.data_feed.panel import BarPanel
from actors.data_feed.params import ValidationParams

ROWS = 120
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
DATES = pd.bdate_range("2026-06-01", periods=ROWS)
SESSIONS = [d.date() for d in DATES]
LAST = SESSIONS[-1]
ASOF = (DATES[-1] + pd.offsets.BDay(1)).date()
PARAMS = ValidationParams()


def clean_arrays() -> dict[str, np.ndarray]:
    """Gentle deterministic bars: consistent OHLC, moves far below any limit, volume > 0."""
    t = np.arange(ROWS)[:, None]
    k = np.arange(len(SYMBOLS))[None, :]
    close = 100.0 + 10.0 * k + np.sin(t / 5.0 + k)
    open_ = close + 0.3 * np.cos(t / 3.0 + k)
    high = np.maximum(open_, close) + 0.5
    low = np.minimum(open_, close) - 0.5
    volume = 1e6 + 1e4 * ((t + k) % 7)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def make_panel(arrays: dict[str, np.ndarray], dates: pd.DatetimeIndex = DATES) -> BarPanel:
    return BarPanel(dates=dates, symbols=SYMBOLS, **arrays)


def run(
    panel: BarPanel,
    *,
    min_bars: int = 100,
    params: ValidationParams = PARAMS,
    universe: tuple[str, ...] | None = None,
    sessions: list[dt.date] | None = None,
    expected: dt.date = LAST,
) -> v.ValidationReport:
    return v.validate(
        panel,
        asof=ASOF,
        expected_last_session=expected,
        sessions=SESSIONS if sessions is None else sessions,
        min_bars=min_bars,
        params=params,
        universe=universe,
    )


def rejection(report: v.ValidationReport, symbol: str) -> tuple[str, str] | None:
    for r in report.rejected:
        if r.symbol == symbol:
            return r.reason_code, r.details
    return None


def reason(report: v.ValidationReport, symbol: str) -> str | None:
    found = rejection(report, symbol)
    return None if found is None else found[0]


def test_clean_panel_passes_every_rule() -> None:
    """Consistent, complete, fresh bars produce no rejection and no halt."""
    report = run(make_panel(clean_arrays()))
    assert report.valid_symbols == SYMBOLS
    assert report.rejected == ()
    assert not report.stale
    assert report.failed_share == 0.0
    assert not report.halt
    assert report.halt_reason is None


def test_stale_symbol_names_its_last_bar() -> None:
    """A symbol whose last bar is before the expected session is stale, with both dates."""
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[-2:, 0] = np.nan
    report = run(make_panel(arrays))
    assert rejection(report, "AAA") == (
        v.STALE,
        f"last bar {SESSIONS[-3].isoformat()}, expected {LAST.isoformat()}",
    )
    assert "AAA" not in report.valid_symbols


def test_insufficient_history() -> None:
    """Fewer valid closes than min_bars is insufficient_history; exactly min_bars is fine."""
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[:30, 1] = np.nan
    report = run(make_panel(arrays), min_bars=91)
    assert rejection(report, "BBB") == (v.INSUFFICIENT_HISTORY, "90 valid closes, need 91")
    assert reason(run(make_panel(arrays), min_bars=90), "BBB") is None


def test_recent_listing_is_not_missing_sessions() -> None:
    """Sessions before a symbol's first bar are not counted as missing."""
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[:30, 1] = np.nan
    assert reason(run(make_panel(arrays), min_bars=50), "BBB") is None


def test_missing_sessions_boundary() -> None:
    """max_missing_sessions gaps are tolerated; one more is rejected with the count."""
    arrays = clean_arrays()
    limit = PARAMS.max_missing_sessions
    for arr in arrays.values():
        arr[50 : 50 + limit, 2] = np.nan
    assert reason(run(make_panel(arrays)), "CCC") is None
    for arr in arrays.values():
        arr[50 + limit, 2] = np.nan
    code, details = rejection(run(make_panel(arrays)), "CCC") or ("", "")
    assert code == v.MISSING_SESSIONS
    assert f"{limit + 1} of {ROWS} expected sessions missing" in details
    assert f"first {SESSIONS[50].isoformat()}" in details


def test_session_absent_from_panel_counts_as_missing() -> None:
    """An expected session with no row at all in the panel is missing for every symbol."""
    arrays = clean_arrays()
    extra = [SESSIONS[0] - dt.timedelta(days=d) for d in (7, 6, 5, 4, 3, 2)]
    report = run(make_panel(arrays), sessions=[*extra, *SESSIONS])
    # before the first bar, so not counted
    assert report.rejected == ()
    holes = [dt.date(2026, 6, 6), dt.date(2026, 6, 7)]  # a weekend: never in the panel
    report = run(
        make_panel(arrays),
        sessions=[*SESSIONS, *holes],
        params=ValidationParams(max_missing_sessions=1),
    )
    assert {r.reason_code for r in report.rejected} == {v.MISSING_SESSIONS}
    assert len(report.rejected) == len(SYMBOLS)


def test_partial_bar_is_nan_values() -> None:
    """A bar with a close but no open is nan_values, dated in the details."""
    arrays = clean_arrays()
    arrays["open"][70, 3] = np.nan
    code, details = rejection(run(make_panel(arrays)), "DDD") or ("", "")
    assert code == v.NAN_VALUES
    assert SESSIONS[70].isoformat() in details
    assert "open=nan" in details


def test_missing_volume_alone_is_nan_values() -> None:
    """Prices without volume is a partial bar too."""
    arrays = clean_arrays()
    arrays["volume"][10, 0] = np.nan
    assert reason(run(make_panel(arrays)), "AAA") == v.NAN_VALUES


def test_non_positive_price() -> None:
    """A zero or negative price is rejected as non_positive_price."""
    arrays = clean_arrays()
    arrays["low"][40, 4] = 0.0
    code, details = rejection(run(make_panel(arrays)), "EEE") or ("", "")
    assert code == v.NON_POSITIVE_PRICE
    assert "low=0" in details


def test_high_below_low() -> None:
    """high < low is high_below_low."""
    arrays = clean_arrays()
    arrays["high"][60, 0], arrays["low"][60, 0] = arrays["low"][60, 0], arrays["high"][60, 0]
    assert reason(run(make_panel(arrays)), "AAA") == v.HIGH_BELOW_LOW


def test_close_above_high_is_inconsistent_ohlc() -> None:
    """A close above the high (or open below the low) is inconsistent_ohlc."""
    arrays = clean_arrays()
    arrays["close"][60, 1] = arrays["high"][60, 1] + 0.01
    arrays["open"][61, 2] = arrays["low"][61, 2] - 0.01
    report = run(make_panel(arrays))
    assert reason(report, "BBB") == v.INCONSISTENT_OHLC
    assert reason(report, "CCC") == v.INCONSISTENT_OHLC


def test_close_equal_to_high_is_consistent() -> None:
    """Bars touching their high or low exactly are fine."""
    arrays = clean_arrays()
    arrays["high"][:, 0] = np.maximum(arrays["open"][:, 0], arrays["close"][:, 0])
    arrays["low"][:, 0] = np.minimum(arrays["open"][:, 0], arrays["close"][:, 0])
    assert run(make_panel(arrays)).rejected == ()


def test_zero_volume_run_boundary() -> None:
    """Exactly max_zero_volume_run zero-volume days pass; one more fails."""
    arrays = clean_arrays()
    limit = PARAMS.max_zero_volume_run
    arrays["volume"][80 : 80 + limit, 3] = 0.0
    arrays["volume"][90 : 90 + limit, 3] = 0.0
    assert reason(run(make_panel(arrays)), "DDD") is None
    arrays["volume"][80 + limit, 3] = 0.0
    code, details = rejection(run(make_panel(arrays)), "DDD") or ("", "")
    assert code == v.ZERO_VOLUME_RUN
    assert details == (
        f"{limit + 1} consecutive zero-volume sessions ending "
        f"{SESSIONS[80 + limit].isoformat()} (limit {limit})"
    )


def set_close(arrays: dict[str, np.ndarray], row: int, col: int, price: float) -> None:
    """Set a whole bar to one price so OHLC stays consistent."""
    for name in ("open", "high", "low", "close"):
        arrays[name][row, col] = price


def test_move_exactly_at_limit_is_plausible() -> None:
    """|close/prev - 1| equal to max_one_day_move passes; just above it fails."""
    arrays = clean_arrays()
    set_close(arrays, 99, 4, 100.0)
    set_close(arrays, 100, 4, 150.0)
    set_close(arrays, 101, 4, 100.0)
    assert reason(run(make_panel(arrays)), "EEE") is None
    set_close(arrays, 100, 4, 150.5)
    code, details = rejection(run(make_panel(arrays)), "EEE") or ("", "")
    assert code == v.IMPLAUSIBLE_MOVE
    assert "+50.5%" in details
    assert "100 -> 150.5" in details
    assert SESSIONS[100].isoformat() in details


def test_move_across_a_gap_is_measured_from_the_last_close() -> None:
    """A jump hidden behind a missing day is still caught."""
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[50, 0] = np.nan
    set_close(arrays, 49, 0, 100.0)
    set_close(arrays, 51, 0, 40.0)
    assert reason(run(make_panel(arrays)), "AAA") == v.IMPLAUSIBLE_MOVE


def test_first_failing_rule_wins() -> None:
    """A symbol breaking several rules is reported once, under the earliest in RULES."""
    arrays = clean_arrays()
    arrays["volume"][10:20, 0] = 0.0
    arrays["close"][30, 0] = -5.0
    report = run(make_panel(arrays))
    assert [r.reason_code for r in report.rejected] == [v.NON_POSITIVE_PRICE]


def test_halt_when_failed_share_exceeds_limit() -> None:
    """Rejecting more than max_failed_share of the universe halts the cycle."""
    arrays = clean_arrays()
    arrays["close"][60, 0] = np.nan  # one of five: 20%, at the limit
    report = run(make_panel(arrays))
    assert report.failed_share == pytest.approx(0.2)
    assert not report.halt
    arrays["close"][60, 1] = np.nan  # two of five: 40%
    report = run(make_panel(arrays))
    assert report.failed_share == pytest.approx(0.4)
    assert report.halt
    assert report.halt_reason == "2 of 5 symbols (40.0%) failed validation, limit 20.0%"
    assert report.valid_symbols == ("CCC", "DDD", "EEE")


def test_halt_when_whole_feed_is_stale() -> None:
    """When no symbol reaches the expected session the feed is stale and the cycle halts."""
    panel = make_panel(clean_arrays()).until(DATES[-4])
    report = run(panel)
    assert report.stale
    assert report.halt
    assert report.halt_reason == (
        f"feed stale: newest bar {SESSIONS[-4].isoformat()}, expected {LAST.isoformat()}"
    )
    assert {r.reason_code for r in report.rejected} == {v.STALE}


def test_look_ahead_bar_raises() -> None:
    """A bar dated on asof (or later) is look-ahead and refused."""
    dates = pd.bdate_range(DATES[0], periods=ROWS + 1)
    arrays = {k: np.vstack([a, a[-1:]]) for k, a in clean_arrays().items()}
    with pytest.raises(ValueError, match="look-ahead"):
        run(make_panel(arrays, dates=dates))


def test_expected_session_on_asof_raises() -> None:
    """expected_last_session must be before asof."""
    with pytest.raises(ValueError, match="not before asof"):
        run(make_panel(clean_arrays()), expected=ASOF)


def test_universe_symbol_without_bars_is_no_data() -> None:
    """A universe symbol absent from the panel, or with only NaN, is no_data."""
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[:, 4] = np.nan
    report = run(make_panel(arrays), universe=("AAA", "ZZZ", "EEE"))
    assert [(r.symbol, r.reason_code) for r in report.rejected] == [
        ("ZZZ", v.NO_DATA),
        ("EEE", v.NO_DATA),
    ]
    assert report.valid_symbols == ("AAA",)
    assert report.failed_share == pytest.approx(2 / 3)


def test_panel_columns_outside_universe_are_ignored() -> None:
    """With a universe, other panel columns are neither validated nor returned."""
    arrays = clean_arrays()
    arrays["close"][5, 1] = -1.0
    report = run(make_panel(arrays), universe=("AAA", "CCC"))
    assert report.valid_symbols == ("AAA", "CCC")
    assert report.rejected == ()


def test_empty_panel_halts() -> None:
    """No bars at all: every universe symbol is no_data and the feed is stale."""
    report = run(BarPanel.empty(), universe=("AAA", "BBB"))
    assert [r.reason_code for r in report.rejected] == [v.NO_DATA, v.NO_DATA]
    assert report.stale
    assert report.halt
    assert report.halt_reason is not None
    assert "newest bar none" in report.halt_reason


def test_panel_without_drops_rejected_symbols() -> None:
    """panel_without keeps the panel's order and drops exactly the rejected symbols."""
    arrays = clean_arrays()
    arrays["close"][60, 2] = np.nan
    panel = make_panel(arrays)
    report = run(panel)
    kept = v.panel_without(panel, report.rejected)
    assert kept.symbols == report.valid_symbols == ("AAA", "BBB", "DDD", "EEE")
    np.testing.assert_array_equal(kept.close[:, 2], panel.close[:, 3])


def test_many_symbols_one_bad() -> None:
    """Checks run across thousands of columns at once and single out the one bad symbol."""
    rng = np.random.default_rng(3)
    n = 2000
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (ROWS, n)), axis=0))
    close[77, 1234] = close[76, 1234] * 1.9
    bars = {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close}
    symbols = tuple(f"S{i:04d}" for i in range(n))
    panel = BarPanel(dates=DATES, symbols=symbols, volume=np.full((ROWS, n), 1e5), **bars)
    report = v.validate(
        panel,
        asof=ASOF,
        expected_last_session=LAST,
        sessions=SESSIONS,
        min_bars=100,
        params=PARAMS,
    )
    assert [(r.symbol, r.reason_code) for r in report.rejected] == [("S1234", v.IMPLAUSIBLE_MOVE)]
    assert len(report.valid_symbols) == n - 1
