"""Data validation rules on hand-built panels: each rule, its boundary, and the halt logic."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from actors.data_feed import validator as v
from actors.data_feed.panel import BarPanel
from actors.data_feed.params import ValidationParams
from actors.messages import LastPrice

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
    problems: dict[str, str] | None = None,
) -> v.ValidationReport:
    return v.validate(
        panel,
        asof=ASOF,
        expected_last_session=expected,
        sessions=SESSIONS if sessions is None else sessions,
        min_bars=min_bars,
        params=params,
        universe=universe,
        problems=problems,
    )


def run_until(panel: BarPanel, row: int) -> v.ValidationReport:
    """Validate the window ending at ``row`` (the cycle on the next session)."""
    last = DATES[row]
    return v.validate(
        panel.until(last),
        asof=(last + pd.offsets.BDay(1)).date(),
        expected_last_session=last.date(),
        sessions=SESSIONS[: row % ROWS + 1],
        min_bars=100,
        params=PARAMS,
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
    assert f"{limit + 1} of {ROWS} expected sessions without a good bar" in details
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
        params=ValidationParams(max_missing_sessions=1, min_failed_symbols=10),
    )
    assert {r.reason_code for r in report.rejected} == {v.MISSING_SESSIONS}
    assert len(report.rejected) == len(SYMBOLS)


def set_close(arrays: dict[str, np.ndarray], row: int, col: int, price: float) -> None:
    """Set a whole bar to one price so OHLC stays consistent."""
    for name in ("open", "high", "low", "close"):
        arrays[name][row, col] = price


def shift_from(arrays: dict[str, np.ndarray], row: int, col: int, factor: float) -> None:
    """Scale every price from ``row`` on: a level shift (or an unadjusted split)."""
    for name in ("open", "high", "low", "close"):
        arrays[name][row:, col] *= factor


# (field, value, code) of one defective bar of DDD
DEFECTS = [
    ("open", np.nan, v.NAN_VALUES),
    ("volume", np.nan, v.NAN_VALUES),
    ("low", 0.0, v.NON_POSITIVE_PRICE),
    ("close", -5.0, v.NON_POSITIVE_PRICE),
    ("high", 50.0, v.HIGH_BELOW_LOW),
    ("close", 1e3, v.INCONSISTENT_OHLC),
]


@pytest.mark.parametrize(("field", "value", "code"), DEFECTS)
def test_defective_bar_inside_the_window_costs_that_bar(
    field: str, value: float, code: str
) -> None:
    """A defective bar before the newest one is blanked; the symbol stays valid."""
    arrays = clean_arrays()
    arrays[field][70, 3] = value
    report = run(make_panel(arrays))
    assert report.rejected == ()
    j = report.panel.column("DDD")
    for name in ("open", "high", "low", "close", "volume"):
        assert np.isnan(getattr(report.panel, name)[70, j]), name
    np.testing.assert_array_equal(report.panel.close[71:, j], arrays["close"][71:, 3])


@pytest.mark.parametrize(("field", "value", "code"), DEFECTS)
def test_defective_newest_bar_holds_the_symbol(field: str, value: float, code: str) -> None:
    """A defect on the newest bar rejects the symbol under its code, priced at the bar before."""
    arrays = clean_arrays()
    arrays[field][-1, 3] = value
    report = run(make_panel(arrays))
    code_seen, details = rejection(report, "DDD") or ("", "")
    assert code_seen == code
    assert f"the newest bar {LAST.isoformat()}" in details
    assert report.last_prices["DDD"] == LastPrice(float(arrays["close"][-2, 3]), SESSIONS[-2])


def test_next_good_bar_restores_a_symbol_held_for_its_newest_bar() -> None:
    """The cycle after a defective newest bar trades the symbol and notes the removal once."""
    arrays = clean_arrays()
    arrays["open"][-2, 3] = np.nan
    panel = make_panel(arrays)
    assert reason(run_until(panel, -2), "DDD") == v.NAN_VALUES
    restored = run(panel)
    assert "DDD" in restored.valid_symbols
    assert restored.notes == (
        f"DDD: bar {SESSIONS[-2].isoformat()} removed: a partial bar (a field is missing) "
        f"(open=nan, high={arrays['high'][-2, 3]:g}, low={arrays['low'][-2, 3]:g}, "
        f"close={arrays['close'][-2, 3]:g}, volume={arrays['volume'][-2, 3]:g})",
    )


def test_removed_bars_count_as_missing_sessions() -> None:
    """A removed bar counts toward max_missing_sessions."""
    arrays = clean_arrays()
    arrays["low"][40, 4] = 0.0
    report = run(make_panel(arrays), params=ValidationParams(max_missing_sessions=0))
    assert reason(report, "EEE") == v.MISSING_SESSIONS


def test_close_equal_to_high_is_consistent() -> None:
    """Bars touching their high or low exactly are fine."""
    arrays = clean_arrays()
    arrays["high"][:, 0] = np.maximum(arrays["open"][:, 0], arrays["close"][:, 0])
    arrays["low"][:, 0] = np.minimum(arrays["open"][:, 0], arrays["close"][:, 0])
    report = run(make_panel(arrays))
    assert report.rejected == ()
    assert report.notes == ()


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


def test_move_exactly_at_limit_is_plausible() -> None:
    """A move of exactly max_one_day_move is kept; just above it, coming back, is removed."""
    arrays = clean_arrays()
    set_close(arrays, 99, 4, 100.0)
    set_close(arrays, 100, 4, 150.0)
    set_close(arrays, 101, 4, 110.0)  # not 100: -33% from 150 would be a 3:2 split's gap
    report = run(make_panel(arrays))
    assert report.panel.close[100, 4] == 150.0
    set_close(arrays, 100, 4, 150.5)
    report = run(make_panel(arrays))
    assert report.rejected == ()
    assert np.isnan(report.panel.close[100, 4])
    assert report.panel.close[101, 4] == 110.0


def test_isolated_spike_is_removed_and_noted_once() -> None:
    """A bad print is removed; the cycle whose newest bar confirms it notes it, later ones not."""
    arrays = clean_arrays()
    set_close(arrays, -4, 1, 100.0)
    set_close(arrays, -3, 1, 220.0)
    set_close(arrays, -2, 1, 101.0)
    set_close(arrays, -1, 1, 102.0)
    panel = make_panel(arrays)
    assert reason(run_until(panel, -3), "BBB") == v.UNCONFIRMED_MOVE
    confirmed = run_until(panel, -2)
    assert "BBB" in confirmed.valid_symbols
    assert np.isnan(confirmed.panel.close[-2, 1])
    assert confirmed.notes == (
        f"BBB: bar {SESSIONS[-3].isoformat()} removed as a bad print "
        "(close +120.0%, 100 -> 220, then back to 101)",
    )
    assert confirmed.last_prices["BBB"] == LastPrice(101.0, SESSIONS[-2])
    later = run(panel)
    assert "BBB" in later.valid_symbols
    assert np.isnan(later.panel.close[-3, 1])
    assert later.notes == ()


def test_move_on_the_newest_bar_is_unconfirmed() -> None:
    """An implausible move on the newest bar holds the symbol, priced at the close before it."""
    arrays = clean_arrays()
    set_close(arrays, -2, 0, 100.0)
    set_close(arrays, -1, 0, 40.0)
    report = run(make_panel(arrays))
    code, details = rejection(report, "AAA") or ("", "")
    assert code == v.UNCONFIRMED_MOVE
    assert "close moved -60.0%" in details
    assert "100 -> 40" in details
    assert f"last good close 100 of {SESSIONS[-2].isoformat()}" in details
    assert report.last_prices["AAA"] == LastPrice(100.0, SESSIONS[-2])


def test_persisting_move_is_a_level_shift() -> None:
    """A move beyond the limit that the next bar keeps is real: accepted, the symbol trades."""
    arrays = clean_arrays()
    shift_from(arrays, 100, 2, 0.3)
    report = run(make_panel(arrays))
    assert "CCC" in report.valid_symbols
    assert report.notes == ()
    np.testing.assert_array_equal(report.panel.close[:, 2], arrays["close"][:, 2])


def test_move_across_a_gap_is_measured_from_the_last_close() -> None:
    """A jump hidden behind a missing day is still caught (and removed when it comes back)."""
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[50, 0] = np.nan
    set_close(arrays, 49, 0, 100.0)
    set_close(arrays, 51, 0, 40.0)
    report = run(make_panel(arrays))
    assert "AAA" in report.valid_symbols
    assert np.isnan(report.panel.close[51, 0])
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[-2, 0] = np.nan
    set_close(arrays, -3, 0, 100.0)
    set_close(arrays, -1, 0, 40.0)
    assert reason(run(make_panel(arrays)), "AAA") == v.UNCONFIRMED_MOVE


def test_bar_after_a_removed_spike_is_measured_from_the_previous_good_close() -> None:
    """The return from a bad print is not itself a move, even as the newest bar."""
    arrays = clean_arrays()
    set_close(arrays, -3, 3, 100.0)
    set_close(arrays, -2, 3, 10.0)
    set_close(arrays, -1, 3, 100.5)
    report = run(make_panel(arrays))
    assert "DDD" in report.valid_symbols
    assert len(report.notes) == 1


def test_defect_then_spike_are_both_removed() -> None:
    """A spike after a removed bar is measured from the close before both, and removed too."""
    arrays = clean_arrays()
    set_close(arrays, 60, 4, 140.0)
    arrays["volume"][61, 4] = np.nan
    set_close(arrays, 62, 4, 300.0)
    set_close(arrays, 63, 4, 141.0)
    report = run(make_panel(arrays))
    assert report.rejected == ()
    assert np.isnan(report.panel.close[61:63, 4]).all()
    assert report.panel.close[63, 4] == 141.0


def test_two_bad_prints_a_bar_apart_are_both_removed() -> None:
    """Spike, return, spike, return: each bad print is removed."""
    arrays = clean_arrays()
    for row, price in zip(range(60, 65), (120.0, 300.0, 121.0, 20.0, 122.0), strict=True):
        set_close(arrays, row, 4, price)
    report = run(make_panel(arrays))
    assert report.rejected == ()
    assert np.isnan(report.panel.close[[61, 63], 4]).all()
    assert not np.isnan(report.panel.close[[60, 62, 64], 4]).any()


@pytest.mark.parametrize(
    ("label", "factor"),
    [("2:1", 0.5), ("3:2", 2 / 3), ("3:1", 1 / 3), ("10:1", 0.1), ("1:2", 2.0), ("1:20", 20.0)],
)
def test_probable_split_holds_the_symbol(label: str, factor: float) -> None:
    """An open gapping by a split ratio rejects the symbol, priced at the pre-split close."""
    arrays = clean_arrays()
    before = float(arrays["close"][79, 1])
    shift_from(arrays, 80, 1, factor)
    report = run(make_panel(arrays))
    code, details = rejection(report, "BBB") or ("", "")
    assert code == v.PROBABLE_SPLIT == "probable_split"
    assert f"probable {label} split on {SESSIONS[80].isoformat()}" in details
    assert f"the previous close {before:g} of {SESSIONS[79].isoformat()}" in details
    assert report.last_prices["BBB"] == LastPrice(before, SESSIONS[79])


def test_split_tolerance_boundary() -> None:
    """An open within split_tolerance of the ratio is a probable split; just outside it is not."""
    arrays = clean_arrays()
    prev = float(arrays["close"][79, 2])
    inside = dict(arrays, open=arrays["open"].copy())
    inside["open"][80, 2] = prev * 0.5 * 1.029
    inside["low"][80, 2] = min(inside["low"][80, 2], inside["open"][80, 2])
    assert reason(run(make_panel(inside)), "CCC") == v.PROBABLE_SPLIT
    outside = dict(inside, open=inside["open"].copy())
    outside["open"][80, 2] = prev * 0.5 * 1.032
    outside["high"][80, 2] = max(outside["high"][80, 2], outside["open"][80, 2])
    report = run(make_panel(outside), params=ValidationParams(split_tolerance=0.03))
    assert reason(report, "CCC") is None


def test_split_on_the_newest_bar_is_a_probable_split() -> None:
    """A 1:2 reverse split on the newest bar is reported as a probable split, not a move."""
    arrays = clean_arrays()
    before = float(arrays["close"][-2, 0])
    shift_from(arrays, ROWS - 1, 0, 2.0)
    report = run(make_panel(arrays))
    assert reason(report, "AAA") == v.PROBABLE_SPLIT
    assert report.last_prices["AAA"] == LastPrice(before, SESSIONS[-2])


def test_split_outranks_other_rules() -> None:
    """A probable split is reported even when the symbol is stale too (stops read that code)."""
    arrays = clean_arrays()
    shift_from(arrays, 80, 3, 0.5)
    for arr in arrays.values():
        arr[-2:, 3] = np.nan
    assert reason(run(make_panel(arrays)), "DDD") == v.PROBABLE_SPLIT


def test_crash_gap_off_any_split_ratio_is_not_a_split() -> None:
    """A -40% gap that persists is a real move: the symbol trades on the new level."""
    arrays = clean_arrays()
    shift_from(arrays, 80, 3, 0.6)
    assert "DDD" in run(make_panel(arrays)).valid_symbols


def test_first_failing_rule_wins() -> None:
    """A symbol breaking several rules is reported once, under the earliest in RULES."""
    arrays = clean_arrays()
    arrays["volume"][10:20, 0] = 0.0
    arrays["close"][-1, 0] = -5.0
    report = run(make_panel(arrays))
    assert [r.reason_code for r in report.rejected] == [v.NON_POSITIVE_PRICE]


def test_last_prices_cover_rejected_symbols() -> None:
    """Valid and rejected symbols with a good close get one; a symbol without bars does not."""
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[-2:, 0] = np.nan
    report = run(make_panel(arrays), universe=("AAA", "BBB", "ZZZ"))
    assert reason(report, "AAA") == v.STALE
    assert report.last_prices == {
        "AAA": LastPrice(float(arrays["close"][-3, 0]), SESSIONS[-3]),
        "BBB": LastPrice(float(arrays["close"][-1, 1]), LAST),
    }


def test_one_stale_symbol_of_four_does_not_halt() -> None:
    """25% failed but fewer than min_failed_symbols: that symbol is dropped, the cycle runs."""
    arrays = clean_arrays()
    for arr in arrays.values():
        arr[-3:, 0] = np.nan
    report = run(make_panel(arrays), universe=("AAA", "BBB", "CCC", "DDD"))
    assert report.failed_share == pytest.approx(0.25)
    assert not report.halt
    assert report.valid_symbols == ("BBB", "CCC", "DDD")


def test_halt_needs_both_the_share_and_the_count() -> None:
    """The halt needs more than max_failed_share of the universe and min_failed_symbols."""
    arrays = clean_arrays()
    for col in (0, 1):
        for arr in arrays.values():
            arr[-3:, col] = np.nan
    report = run(make_panel(arrays))
    assert report.failed_share == pytest.approx(0.4)
    assert not report.halt
    for arr in arrays.values():
        arr[-3:, 2] = np.nan
    report = run(make_panel(arrays))
    assert report.halt
    assert report.halt_reason == (
        "3 of 5 symbols (60.0%) failed validation (stale 3), limit 20.0% and 3 symbols"
    )
    assert report.valid_symbols == ("DDD", "EEE")
    report = run(make_panel(arrays), params=ValidationParams(min_failed_symbols=4))
    assert not report.halt


def test_halt_when_whole_feed_is_stale() -> None:
    """When no symbol reaches the expected session the feed is stale and the cycle halts."""
    panel = make_panel(clean_arrays()).until(DATES[-4])
    report = run(panel)
    assert report.stale
    assert report.halt
    assert report.halt_reason == (
        f"feed stale: newest bar {SESSIONS[-4].isoformat()}, expected {LAST.isoformat()} (stale 5)"
    )
    assert {r.reason_code for r in report.rejected} == {v.STALE}


def test_provider_problem_is_bad_file() -> None:
    """A symbol the provider could not read is rejected bad_file with its message."""
    report = run(
        make_panel(clean_arrays()),
        universe=("AAA", "BBB", "QQQ"),
        problems={"BBB": "b.csv: line 3: column close: not a number", "QQQ": "q.csv: empty"},
    )
    assert [(r.symbol, r.reason_code, r.details) for r in report.rejected] == [
        ("BBB", v.BAD_FILE, "b.csv: line 3: column close: not a number"),
        ("QQQ", v.BAD_FILE, "q.csv: empty"),
    ]
    assert report.valid_symbols == ("AAA",)
    assert "BBB" not in report.last_prices


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
    arrays["close"][-1, 1] = -1.0
    report = run(make_panel(arrays), universe=("AAA", "CCC"))
    assert report.valid_symbols == ("AAA", "CCC")
    assert report.rejected == ()
    assert report.panel.symbols == ("AAA", "CCC")


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
    arrays["close"][-1, 2] = np.nan
    panel = make_panel(arrays)
    report = run(panel)
    kept = v.panel_without(panel, report.rejected)
    assert kept.symbols == report.valid_symbols == ("AAA", "BBB", "DDD", "EEE")
    np.testing.assert_array_equal(kept.close[:, 2], panel.close[:, 3])


def test_many_symbols_one_bad_print() -> None:
    """Across thousands of columns the one bad print is removed and its symbol still trades."""
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
    assert report.rejected == ()
    assert len(report.valid_symbols) == n
    removed = np.argwhere(np.isnan(report.panel.close))
    assert removed.tolist() == [[77, 1234]]


# ---------------------------------------------------------------------------
# the backtest path: flags precomputed over a whole history, sliced per window


def faulty_history(rows: int = 260) -> BarPanel:
    """A history with every fault kind, including one on a window's first bar."""
    rng = np.random.default_rng(5)
    n = 6
    close = 80.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (rows, n)), axis=0))
    bars = {"open": close.copy(), "high": close * 1.01, "low": close * 0.99, "close": close}
    volume = np.full((rows, n), 1e5)

    def spike(row: int, col: int, factor: float) -> None:
        for arr in bars.values():
            arr[row, col] *= factor

    spike(130, 0, 2.5)  # the first bar of the window starting at row 130
    spike(150, 1, 0.3)  # two bad prints a bar apart
    spike(152, 1, 3.0)
    bars["open"][170:, 2] *= 0.5  # a 2:1 split, raw
    for name in ("high", "low", "close"):
        bars[name][170:, 2] *= 0.5
    bars["high"][140, 3] = bars["low"][140, 3] * 0.9  # high < low
    volume[200, 4] = np.nan  # a partial bar
    for row in range(120, 260, 2):  # alternating prints: every decision depends on the last
        spike(row, 5, 2.2)
    return BarPanel(
        dates=pd.bdate_range("2025-01-02", periods=rows),
        symbols=tuple(f"H{j}" for j in range(n)),
        volume=volume,
        **bars,
    )


def test_sliced_history_flags_give_the_live_decisions() -> None:
    """For every window, flags from the whole history decide exactly as a fresh scan."""
    history = faulty_history()
    flags = v.scan(history, PARAMS)
    days = 120
    for stop in range(days, len(history.dates) + 1):
        window = history.rows(stop - days, stop)
        dates = [d.date() for d in window.dates]
        kwargs = {
            "asof": (window.dates[-1] + pd.offsets.BDay(1)).date(),
            "expected_last_session": dates[-1],
            "sessions": dates,
            "min_bars": 100,
            "params": PARAMS,
        }
        live = v.validate(window, **kwargs)  # type: ignore[arg-type]
        sliced = v.validate(window, flags=flags.rows(stop - days, stop), **kwargs)  # type: ignore[arg-type]
        assert sliced.rejected == live.rejected, stop
        assert sliced.valid_symbols == live.valid_symbols, stop
        assert sliced.last_prices == live.last_prices, stop
        assert sliced.notes == live.notes, stop
        np.testing.assert_array_equal(sliced.panel.close, live.panel.close)
