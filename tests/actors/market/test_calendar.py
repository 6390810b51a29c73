"""Tests for actors.market.calendar: real NYSE facts from the exchange_calendars library."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest

from actors.market.calendar import ExchangeCalendar, trading_date
from daemon.clock import SimClock

D = dt.date
UTC = dt.UTC
NY = ZoneInfo("America/New_York")


def ny(y: int, m: int, d: int, hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    """A New York wall time as an aware datetime."""
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=NY)


@pytest.fixture(scope="module")
def nyse() -> ExchangeCalendar:
    """One NYSE calendar for the module: building it is the slow part."""
    return ExchangeCalendar("XNYS", start=D(2020, 1, 1), end=D(2028, 12, 31)).load()


def test_unknown_calendar_name_is_value_error_naming_it() -> None:
    """An unknown calendar name raises ValueError that names it."""
    with pytest.raises(ValueError, match="NOPE"):
        ExchangeCalendar("NOPE")


def test_window_start_after_end_is_rejected() -> None:
    """A window whose start is after its end is refused."""
    with pytest.raises(ValueError, match="after end"):
        ExchangeCalendar(start=D(2026, 2, 1), end=D(2026, 1, 1))


def test_construction_is_lazy_until_first_query() -> None:
    """Constructing does not build tables; the first query does."""
    cal = ExchangeCalendar("XNYS", start=D(2026, 1, 1), end=D(2026, 12, 31))
    assert cal.window == (D(2026, 1, 1), D(2026, 12, 31))
    assert cal.is_session(D(2026, 1, 2))
    assert cal.name == "XNYS"
    assert repr(cal) == "ExchangeCalendar('XNYS')"


def test_thanksgiving_is_not_a_session(nyse: ExchangeCalendar) -> None:
    """Thanksgiving 2026-11-26 is a holiday."""
    assert not nyse.is_session(D(2026, 11, 26))
    assert nyse.is_session(D(2026, 11, 25))


def test_observed_independence_day_is_not_a_session(nyse: ExchangeCalendar) -> None:
    """2026-07-03 (Friday, Independence Day observed) is a holiday."""
    assert not nyse.is_session(D(2026, 7, 3))
    assert nyse.next_session(D(2026, 7, 2)) == D(2026, 7, 6)


def test_mlk_day_is_not_a_session(nyse: ExchangeCalendar) -> None:
    """Martin Luther King Jr. Day 2026-01-19 is a holiday."""
    assert not nyse.is_session(D(2026, 1, 19))
    assert nyse.next_session(D(2026, 1, 16)) == D(2026, 1, 20)


def test_weekends_are_not_sessions(nyse: ExchangeCalendar) -> None:
    """Saturdays and Sundays are never sessions."""
    assert not nyse.is_session(D(2026, 3, 7))
    assert not nyse.is_session(D(2026, 3, 8))
    assert nyse.is_session(D(2026, 3, 6))


def test_next_and_previous_are_strict(nyse: ExchangeCalendar) -> None:
    """next_session/previous_session never return the date asked about."""
    assert nyse.next_session(D(2026, 3, 6)) == D(2026, 3, 9)
    assert nyse.previous_session(D(2026, 3, 9)) == D(2026, 3, 6)
    assert nyse.previous_session(D(2026, 3, 8)) == D(2026, 3, 6)


def test_on_or_before_and_after(nyse: ExchangeCalendar) -> None:
    """session_on_or_before/after return the date itself when it is a session."""
    assert nyse.session_on_or_before(D(2026, 3, 6)) == D(2026, 3, 6)
    assert nyse.session_on_or_before(D(2026, 3, 8)) == D(2026, 3, 6)
    assert nyse.session_on_or_after(D(2026, 3, 6)) == D(2026, 3, 6)
    assert nyse.session_on_or_after(D(2026, 3, 7)) == D(2026, 3, 9)


def test_sessions_between_is_inclusive(nyse: ExchangeCalendar) -> None:
    """sessions_between includes both ends and skips the Thanksgiving holiday."""
    assert nyse.sessions_between(D(2026, 11, 24), D(2026, 11, 30)) == [
        D(2026, 11, 24),
        D(2026, 11, 25),
        D(2026, 11, 27),
        D(2026, 11, 30),
    ]
    assert nyse.sessions_between(D(2026, 11, 30), D(2026, 11, 24)) == []


def test_sessions_back_ends_at_the_date_inclusive(nyse: ExchangeCalendar) -> None:
    """sessions_back gives the n sessions ending at d, oldest first, skipping MLK day."""
    assert nyse.sessions_back(D(2026, 1, 20), 3) == [D(2026, 1, 15), D(2026, 1, 16), D(2026, 1, 20)]
    assert nyse.sessions_back(D(2026, 1, 19), 2) == [D(2026, 1, 15), D(2026, 1, 16)]
    assert nyse.sessions_back(D(2026, 1, 20), 0) == []


def test_sessions_back_rejects_negative_count(nyse: ExchangeCalendar) -> None:
    """A negative history length is a caller bug."""
    with pytest.raises(ValueError, match="n >= 0"):
        nyse.sessions_back(D(2026, 1, 20), -1)


def test_early_close_after_thanksgiving(nyse: ExchangeCalendar) -> None:
    """2026-11-27 closes at 13:00 ET, which is 18:00 UTC."""
    assert nyse.is_early_close(D(2026, 11, 27))
    assert nyse.session_close(D(2026, 11, 27)) == dt.datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    assert not nyse.is_early_close(D(2026, 11, 25))
    assert nyse.session_close(D(2026, 11, 25)) == dt.datetime(2026, 11, 25, 21, 0, tzinfo=UTC)


def test_is_early_close_is_false_off_session(nyse: ExchangeCalendar) -> None:
    """A holiday is not an early close."""
    assert not nyse.is_early_close(D(2026, 11, 26))


def test_open_follows_daylight_saving(nyse: ExchangeCalendar) -> None:
    """09:30 ET is 14:30 UTC before the 2026-03-08 DST change and 13:30 UTC after it."""
    assert nyse.session_open(D(2026, 3, 6)) == dt.datetime(2026, 3, 6, 14, 30, tzinfo=UTC)
    assert nyse.session_open(D(2026, 3, 9)) == dt.datetime(2026, 3, 9, 13, 30, tzinfo=UTC)


def test_open_and_close_are_aware_utc(nyse: ExchangeCalendar) -> None:
    """Session times carry the UTC zone."""
    assert nyse.session_open(D(2026, 3, 9)).utcoffset() == dt.timedelta(0)
    assert nyse.session_close(D(2026, 3, 9)).tzinfo is UTC


def test_open_of_a_holiday_is_value_error(nyse: ExchangeCalendar) -> None:
    """Asking when a non-session opens is an error that names the date."""
    with pytest.raises(ValueError, match="2026-11-26 is not a XNYS session"):
        nyse.session_open(D(2026, 11, 26))
    with pytest.raises(ValueError, match="not a XNYS session"):
        nyse.session_close(D(2026, 11, 28))


def test_exchange_time_zone(nyse: ExchangeCalendar) -> None:
    """The NYSE's local zone is America/New_York."""
    assert str(nyse.tz) == "America/New_York"


def test_queries_outside_the_window_extend_it() -> None:
    """A query past either edge of the window rebuilds a wider one and answers correctly."""
    cal = ExchangeCalendar("XNYS", start=D(2026, 1, 5), end=D(2026, 12, 31))
    assert cal.next_session(D(2026, 12, 31)) == D(2027, 1, 4)
    assert cal.previous_session(D(2026, 1, 5)) == D(2026, 1, 2)
    assert not cal.is_session(D(2030, 12, 25))
    start, end = cal.window
    assert start < D(2026, 1, 2)
    assert end >= D(2030, 12, 25)


def test_sessions_back_reaches_before_the_window() -> None:
    """sessions_back extends the window backwards until it has n sessions."""
    cal = ExchangeCalendar("XNYS", start=D(2026, 1, 1), end=D(2026, 12, 31))
    back = cal.sessions_back(D(2026, 1, 6), 600)
    assert len(back) == 600
    assert back[-1] == D(2026, 1, 6)
    assert back == sorted(set(back))
    assert back[0] == cal.sessions_back(D(2026, 1, 6), 600)[0]


def test_sessions_between_spanning_beyond_the_window() -> None:
    """A range query larger than the window still returns every session in it."""
    cal = ExchangeCalendar("XNYS", start=D(2026, 6, 1), end=D(2026, 6, 30))
    sessions = cal.sessions_between(D(2025, 1, 1), D(2027, 12, 31))
    assert D(2025, 1, 2) in sessions
    assert D(2027, 12, 31) in sessions
    assert D(2026, 11, 26) not in sessions


def test_dates_beyond_supported_range_are_value_errors(nyse: ExchangeCalendar) -> None:
    """Dates pandas cannot represent are refused with a ValueError, not a crash."""
    with pytest.raises(ValueError, match="cannot cover"):
        nyse.is_session(D(2300, 1, 1))


def test_window_without_sessions_is_value_error() -> None:
    """A window holding no session (a weekend) is refused when built."""
    cal = ExchangeCalendar("XNYS", start=D(2026, 1, 3), end=D(2026, 1, 4))
    with pytest.raises(ValueError, match="no XNYS sessions"):
        cal.load()


def test_concurrent_first_queries_agree() -> None:
    """Threads racing on the first query all see the same built tables."""
    cal = ExchangeCalendar("XNYS", start=D(2026, 1, 1), end=D(2026, 12, 31))
    results: list[dt.date] = []
    threads = [
        threading.Thread(target=lambda: results.append(cal.next_session(D(2026, 7, 2))))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [D(2026, 7, 6)] * 4


# ---------------------------------------------------------------- trading_date


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(ny(2026, 11, 23, 4), D(2026, 11, 23), id="before-the-open"),
        pytest.param(ny(2026, 11, 23, 9, 29, 59), D(2026, 11, 23), id="just-before-the-open"),
        pytest.param(ny(2026, 11, 23, 9, 30), D(2026, 11, 23), id="at-the-open"),
        pytest.param(ny(2026, 11, 23, 9, 47), D(2026, 11, 23), id="during-the-session"),
        pytest.param(ny(2026, 11, 23, 15, 59, 59), D(2026, 11, 23), id="just-before-the-close"),
        pytest.param(ny(2026, 11, 23, 16), D(2026, 11, 24), id="at-the-close"),
        pytest.param(ny(2026, 11, 23, 23, 59), D(2026, 11, 24), id="late-evening"),
        pytest.param(ny(2026, 11, 20, 17), D(2026, 11, 23), id="friday-after-the-close"),
        pytest.param(ny(2026, 11, 21, 12), D(2026, 11, 23), id="saturday"),
        pytest.param(ny(2026, 11, 22, 23), D(2026, 11, 23), id="sunday"),
        pytest.param(ny(2026, 11, 25, 16, 30), D(2026, 11, 27), id="before-thanksgiving"),
        pytest.param(ny(2026, 11, 26, 10), D(2026, 11, 27), id="thanksgiving"),
        pytest.param(ny(2026, 12, 31, 16, 1), D(2027, 1, 4), id="new-years-eve-to-holiday"),
        pytest.param(ny(2026, 7, 3, 10), D(2026, 7, 6), id="observed-independence-day"),
    ],
)
def test_trading_date_at_each_time_of_the_week(
    nyse: ExchangeCalendar, now: dt.datetime, expected: dt.date
) -> None:
    """Before the open and during the session: that day; after the close or off-days: the next."""
    assert trading_date(now, nyse) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(ny(2026, 11, 27, 12, 59), D(2026, 11, 27), id="before-the-early-close"),
        pytest.param(ny(2026, 11, 27, 13), D(2026, 11, 30), id="at-the-early-close"),
        pytest.param(ny(2026, 11, 27, 15), D(2026, 11, 30), id="after-the-early-close"),
    ],
)
def test_trading_date_on_an_early_close_day(
    nyse: ExchangeCalendar, now: dt.datetime, expected: dt.date
) -> None:
    """On the day after Thanksgiving the session ends at 13:00 ET, and its date with it."""
    assert trading_date(now, nyse) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 20:30 UTC is 15:30 EST (open) on Fri 03-06 but 16:30 EDT (closed) on Mon 03-09.
        pytest.param(dt.datetime(2026, 3, 6, 20, 30, tzinfo=UTC), D(2026, 3, 6), id="est-open"),
        pytest.param(dt.datetime(2026, 3, 9, 20, 30, tzinfo=UTC), D(2026, 3, 10), id="edt-closed"),
        # Around the fall-back change: 20:30 UTC is 16:30 EDT on 10-30, 15:30 EST on 11-02.
        pytest.param(dt.datetime(2026, 10, 30, 20, 30, tzinfo=UTC), D(2026, 11, 2), id="edt-end"),
        pytest.param(dt.datetime(2026, 11, 2, 20, 30, tzinfo=UTC), D(2026, 11, 2), id="est-open2"),
        # 02:30 UTC on Tuesday is still Monday evening in New York: after Monday's close.
        pytest.param(dt.datetime(2026, 11, 24, 2, 30, tzinfo=UTC), D(2026, 11, 24), id="utc-day"),
    ],
)
def test_trading_date_across_dst_and_utc_midnight(
    nyse: ExchangeCalendar, now: dt.datetime, expected: dt.date
) -> None:
    """The exchange's local time decides, whatever the instant's own offset or DST."""
    assert trading_date(now, nyse) == expected


def test_trading_date_follows_an_injected_clock_through_a_day(nyse: ExchangeCalendar) -> None:
    """A SimClock moved through Monday sees Monday until the close, then Tuesday."""
    clock = SimClock(ny(2026, 11, 23, 8))
    seen = []
    for _ in range(12):
        seen.append(trading_date(clock.now(), nyse))
        clock.advance(dt.timedelta(hours=1))
    assert seen == [D(2026, 11, 23)] * 8 + [D(2026, 11, 24)] * 4


def test_trading_date_refuses_a_naive_time(nyse: ExchangeCalendar) -> None:
    """A naive datetime has no instant: ValueError naming it."""
    with pytest.raises(ValueError, match="naive 2026-11-23T09:47:00"):
        trading_date(dt.datetime(2026, 11, 23, 9, 47), nyse)
