"""Walk-forward windows, lengths and the stitched curve; the best row and the heatmap."""

from __future__ import annotations

import datetime as dt

import pytest

from actors.market.calendar import ExchangeCalendar
from actors.system.research.heatmap import heatmap_png, pair_matrix
from actors.system.research.results import Row, best_row
from actors.system.research.tasks import Outcome
from actors.system.research.walkforward import (
    Length,
    Window,
    WindowResult,
    make_windows,
    parse_length,
    stitch,
)
from daemon.errors import ConfigError

CAL = ExchangeCalendar("XNYS")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("text", "months", "days"),
    [("2y", 24, 0), ("6m", 6, 0), ("18M", 18, 0), ("12w", 0, 84), ("90d", 0, 90)],
)
def test_lengths_are_calendar_spans(text: str, months: int, days: int) -> None:
    """Years and months are months, weeks and days are days."""
    length = parse_length(text, "--train")
    assert (length.months, length.days) == (months, days)


@pytest.mark.parametrize("text", ["", "2", "y", "0m", "1.5y", "3q", "-1y"])
def test_a_bad_length_names_the_option(text: str) -> None:
    """Anything but N followed by y, m, w or d is refused with the option's name."""
    with pytest.raises(ConfigError, match="--test"):
        parse_length(text, "--test")


def test_three_years_with_1y_train_and_6m_test_give_four_rolling_windows() -> None:
    """Train then test, rolling by the test length; the windows never overlap their tests."""
    CAL.load()
    sessions = CAL.sessions_between(dt.date(2023, 1, 1), dt.date(2025, 12, 31))
    windows = make_windows(
        sessions, dt.date(2023, 1, 1), parse_length("1y", "--train"), parse_length("6m", "--test")
    )
    assert len(windows) == 4
    assert [(w.test[0], w.test[-1]) for w in windows] == [
        (dt.date(2024, 1, 2), dt.date(2024, 6, 28)),
        (dt.date(2024, 7, 1), dt.date(2024, 12, 31)),
        (dt.date(2025, 1, 2), dt.date(2025, 6, 30)),
        (dt.date(2025, 7, 1), dt.date(2025, 12, 31)),
    ]
    for w in windows:
        assert CAL.next_session(w.train[-1]) == w.test[0]  # no gap, no overlap
    assert windows[1].train[0] == dt.date(2023, 7, 3)


def test_a_last_test_window_cut_short_by_to_is_kept() -> None:
    """The final test window ends at --to when the range stops inside it."""
    CAL.load()
    sessions = CAL.sessions_between(dt.date(2023, 1, 1), dt.date(2024, 3, 28))
    windows = make_windows(sessions, dt.date(2023, 1, 1), Length(12, 0, "1y"), Length(6, 0, "6m"))
    assert len(windows) == 1
    assert windows[0].test[-1] == dt.date(2024, 3, 28)


def _test_window(
    index: int, days: list[str], equity: list[float], bench: list[float]
) -> WindowResult:
    window = Window(index, [dt.date(2000, 1, 3)], [dt.date.fromisoformat(d) for d in days[1:]])
    outcome = Outcome(
        metrics={},
        equity=list(zip(days, equity, strict=True)),
        benchmark=list(zip(days, bench, strict=True)),
        initial_equity=equity[0],
    )
    return WindowResult(window, [], None, outcome)


def test_the_stitched_curve_chains_returns() -> None:
    """Each window starts from the capital and continues where the last one ended."""
    first = _test_window(0, ["2024-01-01", "2024-01-02", "2024-01-03"], [100.0, 110.0, 120.0],
                         [100.0, 100.0, 105.0])  # fmt: skip
    second = _test_window(1, ["2024-01-03", "2024-01-04"], [100.0, 90.0], [100.0, 110.0])
    points = stitch([first, second])
    assert [(d, w) for d, w, _, _ in points] == [
        ("2024-01-01", 0), ("2024-01-02", 0), ("2024-01-03", 0), ("2024-01-04", 1),
    ]  # fmt: skip
    assert [e for _, _, e, _ in points] == pytest.approx([100.0, 110.0, 120.0, 108.0])
    assert [b for _, _, _, b in points] == pytest.approx([100.0, 100.0, 105.0, 115.5])


def test_a_failed_window_is_left_out_of_the_chain() -> None:
    """A window without an out-of-sample run adds nothing; the next continues the curve."""
    first = _test_window(0, ["2024-01-01", "2024-01-02"], [100.0, 120.0], [100.0, 100.0])
    failed = WindowResult(Window(1, [], []), [], None, Outcome.failed("boom"))
    third = _test_window(2, ["2024-02-01", "2024-02-02"], [100.0, 50.0], [100.0, 100.0])
    assert [e for _, _, e, _ in stitch([first, failed, third])] == pytest.approx(
        [100.0, 120.0, 60.0]
    )


def _row(fast: int, slow: int, sharpe: float | None, error: str | None = None) -> Row:
    metrics = {} if error else {"sharpe": sharpe}
    return Row({"f": fast, "s": slow}, Outcome(metrics=metrics, error=error))


def test_the_best_row_is_the_first_of_equals_in_grid_order() -> None:
    """Ties go to the earlier combination; failed and undefined rows never win."""
    rows = [_row(1, 1, None), _row(1, 2, 0.5), _row(2, 1, 0.5), _row(2, 2, 9.0, error="x")]
    assert best_row(rows, "sharpe") is rows[1]
    assert best_row(rows[:1], "sharpe") is None


def test_the_heatmap_cell_is_the_best_over_the_other_parameters() -> None:
    """With three parameters a pair's cell takes the best of the third's values."""
    rows = [
        Row({"a": 1, "b": 1, "c": 1}, Outcome(metrics={"sharpe": 0.1})),
        Row({"a": 1, "b": 1, "c": 2}, Outcome(metrics={"sharpe": 0.7})),
        Row({"a": 2, "b": 1, "c": 1}, Outcome(metrics={"sharpe": -0.3})),
    ]
    xs, ys, grid = pair_matrix(rows, "b", "a", "sharpe")
    assert (xs, ys) == ([1], [1, 2])
    assert grid.tolist() == [[0.7], [-0.3]]
    for keys in (["a"], ["a", "b"], ["a", "b", "c"]):
        assert heatmap_png(keys, rows).startswith(PNG)
