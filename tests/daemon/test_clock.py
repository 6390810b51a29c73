"""The process clock behind ``TRADINGD_FAKE_NOW``: ``OffsetClock`` and its parsing."""

from __future__ import annotations

import datetime as dt

import pytest

from daemon.clock import (
    FAKE_NOW_ENV,
    Clock,
    OffsetClock,
    fake_now_from,
    parse_fake_now,
)

UTC = dt.UTC
START = dt.datetime(2026, 11, 23, 14, 47, tzinfo=UTC)  # 09:47 New York time


def test_offset_clock_starts_at_the_instant_and_runs_forward() -> None:
    """starting_at reads the given instant now, and never goes backwards after it."""
    clock = OffsetClock.starting_at(START)
    first = clock.now()
    assert START <= first < START + dt.timedelta(seconds=5)
    assert clock.now() >= first
    assert first.tzinfo is UTC
    assert isinstance(clock, Clock)


def test_offset_clock_keeps_an_offsets_distance_from_the_wall() -> None:
    """now() is the wall clock plus the fixed offset."""
    offset = dt.timedelta(days=-9, hours=3)
    clock = OffsetClock(offset)
    before = dt.datetime.now(UTC) + offset
    reading = clock.now()
    after = dt.datetime.now(UTC) + offset
    assert before <= reading <= after


async def test_offset_clock_sleep_until_wakes_at_the_shifted_instant() -> None:
    """sleep_until an instant of the shifted time returns once the clock reads it."""
    clock = OffsetClock.starting_at(START)
    target = clock.now() + dt.timedelta(milliseconds=20)
    await clock.sleep_until(target)
    assert clock.now() >= target


async def test_offset_clock_sleep_until_the_past_returns_at_once() -> None:
    """An instant already passed (in the shifted time) does not wait."""
    clock = OffsetClock.starting_at(START)
    before = clock.monotonic()
    await clock.sleep_until(START - dt.timedelta(days=1))
    assert clock.monotonic() - before < 1.0


def test_offset_clock_refuses_a_naive_start() -> None:
    """A start without an offset is not an instant."""
    with pytest.raises(ValueError, match="timezone-aware"):
        OffsetClock.starting_at(dt.datetime(2026, 11, 23, 9, 47))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T09:47:00-05:00", START),
        ("2026-11-23T14:47:00Z", START),
        (" 2026-11-23T15:47:00+01:00\n", START),
    ],
)
def test_fake_now_parses_iso_instants_with_an_offset(text: str, expected: dt.datetime) -> None:
    """ISO 8601 with an offset (or Z) is read as that instant, in UTC."""
    parsed = parse_fake_now(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["2026-11-23T09:47:00", "2026-11-23", "tomorrow", ""])
def test_fake_now_without_an_offset_is_refused_naming_the_variable(text: str) -> None:
    """A value that is not an instant names TRADINGD_FAKE_NOW and shows an example."""
    with pytest.raises(ValueError, match=f"{FAKE_NOW_ENV}=.* must be an ISO 8601 instant"):
        parse_fake_now(text)


def test_fake_now_from_an_environment() -> None:
    """Unset or empty means no fake clock; a value is parsed."""
    assert fake_now_from({}) is None
    assert fake_now_from({FAKE_NOW_ENV: "  "}) is None
    assert fake_now_from({FAKE_NOW_ENV: "2026-11-23T09:47:00-05:00"}) == START
