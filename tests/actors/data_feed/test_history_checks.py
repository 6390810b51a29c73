"""Validation by lookups over a backtest's history gives ``validate``'s report, session by session.

A market with every kind of fault (bad prints, gaps, partial and defective bars,
stale and late-listed symbols, zero-volume runs, raw splits, level shifts, a bad
file, a symbol without data, a day none of the universe traded, splits not yet
applied) is validated each session twice: by ``CheckedHistory.validate`` and by the
full ``validator.validate`` on ``market.window``. Every field must be the same.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from actors.data_feed import validator as v
from actors.data_feed.bar_repair import IntArray, blank, judge_window, last_true
from actors.data_feed.history_checks import (
    CheckedHistory,
    bar_marks,
    last_at_or_before,
    next_at_or_after,
    running_count,
    window_block,
    window_rows,
)
from actors.data_feed.market import PrecomputedMarket, select_columns, symbols_first
from actors.data_feed.panel import BarPanel, FloatArray
from actors.data_feed.params import SyntheticParams, ValidationParams
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.market.corporate_actions import ActionKind, CorporateAction
from tests.fakes import market_events as ev

CAL = ExchangeCalendar("XNYS", start=dt.date(2023, 6, 1), end=dt.date(2025, 12, 31)).load()
SESSIONS = CAL.sessions_between(dt.date(2024, 1, 2), dt.date(2025, 6, 30))
TRADED = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH", "III", "JJJ", "LLL", "KKK")
UNIVERSE = (*TRADED, "ZZZ")  # ZZZ: no bars at all
EXTRA = "XTRA"  # in the panel, not in the universe (a renamed symbol's new name)
PROBLEMS = {"KKK": "bad_file: unreadable", "QQQ": "bad_file: not in the universe"}
HISTORY = 120
PARAMS = ValidationParams()
MIN_BARS = 101
NO_ROW = 330  # the session no symbol traded
Indicators = dict[str, FloatArray]


def day(k: int) -> dt.date:
    return SESSIONS[k]


def _set(frame: pd.DataFrame, symbol: str, k: int, **values: float) -> pd.DataFrame:
    out = frame.copy()
    rows = (out["symbol"] == symbol) & (out["date"] == pd.Timestamp(day(k)))
    assert rows.any(), (symbol, k)
    for column, value in values.items():
        out.loc[rows, column] = value
    return out


def _zero_volume(frame: pd.DataFrame, symbol: str, first: int, last: int) -> pd.DataFrame:
    for k in range(first, last + 1):
        frame = _set(frame, symbol, k, volume=0.0)
    return frame


def faulty_frame() -> pd.DataFrame:
    """The synthetic market over ``SESSIONS`` with a fault of every kind injected."""
    frame = SyntheticProvider(SyntheticParams()).generate(
        [*TRADED, EXTRA], SESSIONS[0], SESSIONS[-1]
    )
    frame["date"] = pd.to_datetime(frame["date"])
    frame = ev.bad_print(frame, "AAA", day(60), 3.0)  # the first bar of session 180's window
    frame = ev.bad_print(frame, "AAA", day(200), 2.6)
    frame = ev.bad_print(frame, "AAA", day(250), 0.3)
    for k in (130, 140, 141, 150, 160, 165, 170):  # gaps: more than 5 missing for a while
        frame = ev.drop_bar(frame, "BBB", day(k))
    frame = _set(frame, "CCC", 210, volume=np.nan)  # a partial bar
    frame = _set(frame, "CCC", 230, low=-1.0)  # a price <= 0
    bar = frame.loc[(frame["symbol"] == "CCC") & (frame["date"] == pd.Timestamp(day(240)))]
    frame = _set(frame, "CCC", 240, high=float(bar["low"].iloc[0]) * 0.98)  # high < low
    bar = frame.loc[(frame["symbol"] == "CCC") & (frame["date"] == pd.Timestamp(day(260)))]
    frame = _set(frame, "CCC", 260, close=float(bar["high"].iloc[0]) * 1.05)  # close > high
    frame = ev.raw_split(frame, "DDD", day(215), 2.0)  # an unadjusted 2:1 split
    frame = ev.raw_split(frame, "EEE", day(220), 1 / 0.3)  # a real -70 % level shift
    frame = ev.stale_from(frame, "FFF", day(230))  # stale, then no data in the window
    frame = _zero_volume(frame, "GGG", 150, 153)  # a run of 4 zero-volume sessions
    frame = _zero_volume(frame, "GGG", 300, 302)  # a run of 3: at the limit
    frame = frame.loc[
        ~((frame["symbol"] == "HHH") & (frame["date"] < pd.Timestamp(day(180))))
    ]  # listed late: too short a history for a while
    for k in range(300, 340, 2):  # alternating prints: every decision depends on the last
        frame = ev.bad_print(frame, "III", day(k), 2.2)
    frame = ev.bad_print(frame, "LLL", day(190), 2.5)  # two bad prints a bar apart
    frame = ev.bad_print(frame, "LLL", day(192), 0.35)
    frame = _set(frame, "LLL", 193, open=np.nan)  # a defect right after them
    # A day none of the universe traded: only the extra symbol has a bar.
    gone = (frame["date"] == pd.Timestamp(day(280))) & (frame["symbol"] != EXTRA)
    frame = frame.loc[~gone]
    # A day no symbol traded at all: the panel has no row for that session.
    return frame.loc[frame["date"] != pd.Timestamp(day(NO_ROW))].reset_index(drop=True)


ACTIONS = (
    CorporateAction(ActionKind.FORWARD_SPLIT, "JJJ", day(250), "test", ratio=2.0),
    CorporateAction(ActionKind.STOCK_DIVIDEND, "JJJ", day(300), "test", ratio=1.05),
    CorporateAction(ActionKind.REVERSE_SPLIT, "AAA", day(270), "test", ratio=0.1),
    CorporateAction(ActionKind.FORWARD_SPLIT, EXTRA, day(260), "test", ratio=3.0),
)


@pytest.fixture(scope="module")
def faulty() -> BarPanel:
    return BarPanel.from_long(faulty_frame())


def market_of(panel: BarPanel) -> PrecomputedMarket:
    base = PrecomputedMarket(panel, {}, None, "test", problems=PROBLEMS, actions=ACTIONS)
    return base.prepared(PARAMS)


def full_check(
    market: PrecomputedMarket, k: int, universe: tuple[str, ...] = UNIVERSE
) -> tuple[v.ValidationReport, Indicators]:
    """The reference: ``validate`` on the market's window for session ``k``."""
    asof = day(k)
    win = market.window(asof, HISTORY)
    last = CAL.previous_session(asof)
    report = v.validate(
        win.panel,
        universe=universe,
        asof=asof,
        expected_last_session=last,
        sessions=CAL.sessions_back(last, HISTORY),
        min_bars=MIN_BARS,
        params=PARAMS,
        problems=market.problems,
        flags=win.flags,
    )
    indicators = select_columns(win.indicators, win.panel, report.valid_symbols)
    return report, indicators if report.valid_symbols else {}


def looked_up(history: CheckedHistory, k: int) -> tuple[v.ValidationReport, Indicators] | None:
    asof = day(k)
    last = CAL.previous_session(asof)
    return history.validate(
        asof,
        history_days=HISTORY,
        expected_last_session=last,
        sessions=CAL.sessions_back(last, HISTORY),
        min_bars=MIN_BARS,
    )


def assert_same_report(got: v.ValidationReport, want: v.ValidationReport) -> None:
    assert got.valid_symbols == want.valid_symbols
    assert got.rejected == want.rejected
    assert (got.stale, got.halt, got.halt_reason) == (want.stale, want.halt, want.halt_reason)
    assert got.failed_share == want.failed_share
    assert got.last_prices == want.last_prices
    assert list(got.last_prices) == list(want.last_prices)
    assert got.notes == want.notes
    assert got.rescanned == want.rescanned == ()
    assert got.panel.symbols == want.panel.symbols
    assert got.panel.dates.equals(want.panel.dates)
    for name in ("open", "high", "low", "close", "volume"):
        assert getattr(got.panel, name).tobytes() == getattr(want.panel, name).tobytes(), name


def assert_same_indicators(got: Indicators, want: Indicators) -> None:
    assert list(got) == list(want)
    for key, arr in want.items():
        assert got[key].shape == arr.shape, key
        assert got[key].tobytes() == np.ascontiguousarray(arr).tobytes(), key


FEW = ("JJJ", "AAA", "GGG", "DDD")  # fewer faults: sessions with every symbol valid


@pytest.mark.parametrize(
    ("order", "universe"),
    [
        ("universe first", UNIVERSE),
        ("sorted", UNIVERSE),
        ("universe first", FEW),
        ("sorted", FEW),
    ],
)
def test_every_session_matches_the_full_validation(
    faulty: BarPanel, order: str, universe: tuple[str, ...]
) -> None:
    """Each session's lookups give the full validation's report and indicators, to the bit."""
    first = symbols_first(faulty.symbols, universe)
    panel = faulty if order == "sorted" else faulty.select(first)
    market = market_of(panel)
    history = CheckedHistory.of(market, universe)
    assert isinstance(history.cols, slice) == (order == "universe first")
    codes: Counter[str] = Counter()
    skipped, notes, halts, all_valid = [], 0, 0, 0
    for k in range(HISTORY + 1, len(SESSIONS)):
        want, want_ind = full_check(market, k, universe)
        found = looked_up(history, k)
        all_valid += len(want.valid_symbols) == len(history.symbols)
        if found is None:
            # Left to the full check: a window starting on a removed bad print, or one
            # missing the session no symbol traded.
            assert want.rescanned or k - HISTORY <= NO_ROW < k, k
            skipped.append(k)
            continue
        got, got_ind = found
        assert_same_report(got, want)
        assert_same_indicators(got_ind, want_ind)
        codes.update(r.reason_code for r in got.rejected)
        notes += len(got.notes)
        halts += got.halt
    if universe == UNIVERSE:
        assert set(codes) >= {*v.RULES, v.BAD_FILE}
        assert halts >= 2
    else:
        assert all_valid >= 20
    assert notes >= 2
    assert len(skipped) < 60


def test_a_window_whose_first_good_bar_was_removed_is_left_to_the_full_check(
    faulty: BarPanel,
) -> None:
    """The window starting on a removed bad print is scanned again by ``validate``."""
    market = market_of(faulty)
    want, _ = full_check(market, 180)  # its window starts on session 60: a bad print
    assert want.rescanned == ("AAA",)
    assert looked_up(CheckedHistory.of(market, UNIVERSE), 180) is None


def test_a_window_shorter_than_the_sessions_is_left_to_the_full_check(faulty: BarPanel) -> None:
    """Before the history holds ``history_days`` sessions, ``validate`` judges the window."""
    history = CheckedHistory.of(market_of(faulty), UNIVERSE)
    assert looked_up(history, HISTORY - 10) is None
    assert looked_up(history, HISTORY + 1) is not None


def test_look_ahead_raises_as_validate_does(faulty: BarPanel) -> None:
    """An expected session on or after ``asof`` is refused, as ``validate`` refuses it."""
    history = CheckedHistory.of(market_of(faulty), UNIVERSE)
    with pytest.raises(ValueError, match="is not before asof"):
        history.validate(
            day(200),
            history_days=HISTORY,
            expected_last_session=day(200),
            sessions=SESSIONS[81:201],
            min_bars=MIN_BARS,
        )


def test_an_all_valid_window_is_a_view_of_the_history(faulty: BarPanel) -> None:
    """With every symbol valid and no split pending, bars and indicators are not copied."""
    clean = faulty.select(["JJJ", "EEE"])
    market = PrecomputedMarket(clean, {}, None, "test").prepared(PARAMS)
    history = CheckedHistory.of(market, ("JJJ", "EEE"))
    found = looked_up(history, 200)
    assert found is not None
    report, indicators = found
    assert report.valid_symbols == ("JJJ", "EEE")
    assert np.shares_memory(report.panel.close, market.panel.close)
    assert np.shares_memory(indicators["sma20"], market.indicators["sma20"])
    assert not report.panel.close.flags.writeable
    assert not indicators["sma20"].flags.writeable


# ---------------------------------------------------------------------------
# the running marks


def test_next_at_or_after_is_the_first_row_from_there() -> None:
    """Per row, the first row at or after it that is marked (the length for none)."""
    mask = np.array([[0, 1], [1, 0], [0, 0], [1, 0]], dtype=bool)
    assert next_at_or_after(mask).tolist() == [[1, 0], [1, 4], [3, 4], [3, 4], [4, 4]]


def test_last_at_or_before_is_the_last_row_until_there() -> None:
    """Per row, the last row at or before it that is marked (-1 for none)."""
    mask = np.array([[0, 1], [1, 0], [0, 0], [1, 0]], dtype=bool)
    assert last_at_or_before(mask).tolist() == [[-1, 0], [1, 0], [1, 0], [3, 0]]


def test_running_count_counts_the_rows_before() -> None:
    """Per row, how many rows before it are marked (one row more than the mask)."""
    mask = np.array([[0, 1], [1, 0], [0, 0], [1, 1]], dtype=bool)
    assert running_count(mask).tolist() == [[0, 0], [0, 1], [1, 1], [1, 1], [2, 2]]


def test_running_marks_on_an_empty_history() -> None:
    """No rows: the next row is row 0 (none), and nothing is counted."""
    mask = np.zeros((0, 3), dtype=bool)
    assert next_at_or_after(mask).tolist() == [[0, 0, 0]]
    assert last_at_or_before(mask).shape == (0, 3)
    assert running_count(mask).tolist() == [[0, 0, 0]]


def in_window(history_rows: IntArray, start: int) -> list[int]:
    """History rows as rows of the window starting at ``start`` (-1 stays -1)."""
    return [r - start if r >= 0 else -1 for r in history_rows.tolist()]


def test_window_rows_answer_as_judge_window(faulty: BarPanel) -> None:
    """For every window, the lookups give ``judge_window``'s rows, holds and splits."""
    flags = v.scan(faulty, PARAMS)
    marks = bar_marks(flags, blank(faulty, flags.removed))
    for stop in range(HISTORY, len(faulty.dates) + 1):
        start = stop - HISTORY
        rows = window_rows(marks, flags, start, stop)
        window = faulty.rows(start, stop)
        judged = judge_window(window, flags.rows(start, stop), lambda p: v.scan(p, PARAMS))
        if rows is None:
            assert judged.rescanned.size, stop
            continue
        assert not judged.rescanned.size, stop

        assert in_window(rows.last_good, start) == last_true(judged.flags.good).tolist()
        assert in_window(rows.last_bar, start) == judged.last_row.tolist()
        unconfirmed = np.where(rows.unconfirmed, rows.last_good, -1)
        assert in_window(unconfirmed, start) == judged.unconfirmed_row.tolist()
        assert in_window(rows.split_row, start) == judged.split_row.tolist()
        assert rows.split_count.tolist() == judged.split_count.tolist()
        assert rows.closes.tolist() == np.isfinite(judged.clean.close).sum(axis=0).tolist()


def test_window_block_is_views_when_nothing_changes() -> None:
    """All columns, no factors: the rows of each array, not copies."""
    arrays = [np.arange(20.0).reshape(5, 4), np.ones((5, 4))]
    out = window_block(arrays, slice(1, 4), None, None, divide=[False, False])
    assert all(np.shares_memory(o, a) for o, a in zip(out, arrays, strict=True))
    assert out[0].tolist() == arrays[0][1:4].tolist()


def test_window_block_scales_chosen_columns_in_one_block() -> None:
    """Columns and factors: the same numbers as selecting then scaling, in one allocation."""
    rng = np.random.default_rng(3)
    arrays = [rng.random((6, 5)) for _ in range(3)]
    cols = np.array([4, 0, 2])
    factors = np.array([3.0, 0.1, 1.05])
    out = window_block(arrays, slice(2, 6), cols, factors, divide=[False, True, False])
    assert out[0].tobytes() == (arrays[0][2:6][:, cols] * factors).tobytes()
    assert out[1].tobytes() == (arrays[1][2:6][:, cols] / factors).tobytes()
    assert out[2].base is out[0].base
    only_cols = window_block(arrays, slice(0, 3), cols, None, divide=[False] * 3)
    assert only_cols[2].tobytes() == arrays[2][0:3][:, cols].tobytes()
