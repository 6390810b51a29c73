"""Tests for ``actors.risk.pending``."""

from __future__ import annotations

import datetime as dt

import pytest

from actors.risk.params import PendingParams
from actors.risk.pending import decide_pending, expiry_asof, is_expired, should_park

# Mon 2 .. Fri 13 June 2025, a weekend in between.
SESSIONS = [dt.date(2025, 6, d) for d in (2, 3, 4, 5, 6, 9, 10, 11, 12, 13)]


def test_expiry_is_the_third_session_after() -> None:
    """Blocked on Monday: re-evaluated Tue, Wed, Thu; Thursday is the last."""
    assert expiry_asof(dt.date(2025, 6, 2), SESSIONS, 3) == dt.date(2025, 6, 5)


def test_expiry_skips_the_weekend() -> None:
    """Blocked on Thursday: re-evaluated Fri, Mon, Tue."""
    assert expiry_asof(dt.date(2025, 6, 5), SESSIONS, 3) == dt.date(2025, 6, 10)


def test_expiry_from_a_non_session_day() -> None:
    """A creation date that is not a session counts sessions after it."""
    assert expiry_asof(dt.date(2025, 6, 7), SESSIONS, 1) == dt.date(2025, 6, 9)


def test_expiry_beyond_the_calendar_is_an_error() -> None:
    """A calendar too short to hold the window raises."""
    with pytest.raises(ValueError, match="calendar ends"):
        expiry_asof(dt.date(2025, 6, 12), SESSIONS, 3)


def test_unsorted_sessions_are_an_error() -> None:
    """Sessions must be strictly ascending."""
    with pytest.raises(ValueError, match="ascending"):
        expiry_asof(dt.date(2025, 6, 2), list(reversed(SESSIONS)), 3)


def test_zero_decay_is_an_error() -> None:
    """A decay window of 0 sessions is refused."""
    with pytest.raises(ValueError, match="at least 1"):
        expiry_asof(dt.date(2025, 6, 2), SESSIONS, 0)


def test_expired_only_after_the_last_session() -> None:
    """A signal is live on its expiry session and expired the session after."""
    last = dt.date(2025, 6, 5)
    assert not is_expired(last, dt.date(2025, 6, 4))
    assert not is_expired(last, last)
    assert is_expired(last, dt.date(2025, 6, 6))


@pytest.mark.parametrize(
    ("code", "parked"),
    [
        ("heat_limit", True),
        ("insufficient_cash", True),
        ("high_correlation", False),
        ("regime", False),
        (None, False),
    ],
)
def test_only_capacity_blocks_are_parked(code: str | None, parked: bool) -> None:
    """Only heat and cash blocks are worth re-evaluating."""
    assert should_park(code) is parked


def test_decide_pending_parks_with_expiry() -> None:
    """A heat block is parked until the third session after."""
    d = decide_pending("heat_limit", dt.date(2025, 6, 2), SESSIONS, PendingParams())
    assert d.park
    assert d.expires_asof == dt.date(2025, 6, 5)
    assert "2025-06-05" in d.reason


def test_decide_pending_does_not_park_other_blocks() -> None:
    """A correlation rejection is not parked and has no expiry."""
    d = decide_pending("high_correlation", dt.date(2025, 6, 2), SESSIONS, PendingParams())
    assert not d.park
    assert d.expires_asof is None
