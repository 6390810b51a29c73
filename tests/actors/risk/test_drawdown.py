"""The day's loss against recorded closes, and the trailing drawdown from the high-water mark."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from actors.risk.drawdown import (
    HighWater,
    drawdown_from_peak,
    measure_day_loss,
    update_high_water,
)

D1, D2 = dt.date(2008, 10, 14), dt.date(2008, 10, 15)


def test_last_sessions_loss_is_close_against_previous_close() -> None:
    """Before the open the day's loss is the last close against the close before it."""
    loss = measure_day_loss({D1: 100_000.0, D2: 97_000.0}, session=D2, previous=D1,
                            equity=97_000.0, in_session=False)  # fmt: skip
    assert loss.session_return == pytest.approx(-0.03)
    assert loss.pnl == pytest.approx(-0.03)
    assert loss.breached(0.02)
    assert not loss.breached(0.05)


def test_a_live_mark_adds_todays_move_and_the_worse_counts() -> None:
    """During a session the current mark against the last close counts as well: the worse one."""
    closes = {D1: 100_000.0, D2: 99_000.0}
    loss = measure_day_loss(closes, session=D2, previous=D1, equity=96_000.0, in_session=True)
    assert loss.session_return == pytest.approx(-0.01)
    assert loss.intraday_return == pytest.approx(-0.030303, rel=1e-4)
    assert loss.loss == pytest.approx(0.030303, rel=1e-4)
    assert loss.pnl == pytest.approx(loss.intraday_return)
    yesterday = measure_day_loss(
        {D1: 100_000.0, D2: 96_000.0}, session=D2, previous=D1, equity=96_100.0, in_session=True
    )
    assert yesterday.breached(0.02)  # yesterday's fall is not hidden by a calm first minute


def test_exactly_the_limit_does_not_trip() -> None:
    """A loss of exactly 2 % does not breach a 2 % limit; a hair more does."""
    exact = measure_day_loss({D1: 100.0, D2: 98.0}, session=D2, previous=D1, equity=98.0,
                             in_session=False)  # fmt: skip
    assert not exact.breached(0.02)
    more = measure_day_loss({D1: 100.0, D2: 97.999}, session=D2, previous=D1, equity=97.999,
                            in_session=False)  # fmt: skip
    assert more.breached(0.02)


def test_a_missing_close_is_unknown_not_zero() -> None:
    """With no close recorded before the last, the loss is unknown and says so; it never trips."""
    loss = measure_day_loss({D2: 90_000.0}, session=D2, previous=D1, equity=90_000.0,
                            in_session=False)  # fmt: skip
    assert not loss.known
    assert math.isnan(loss.loss)
    assert not loss.breached(0.02)
    assert "unknown" in loss.describe()


def test_gains_are_no_loss() -> None:
    """An up day has a loss of 0."""
    loss = measure_day_loss({D1: 100.0, D2: 103.0}, session=D2, previous=D1, equity=103.0,
                            in_session=False)  # fmt: skip
    assert loss.loss == 0.0


def test_high_water_rises_and_never_falls() -> None:
    """The mark follows new highs and stays put on the way down."""
    mark = update_high_water(None, 100.0)
    mark = update_high_water(mark, 120.0)
    mark = update_high_water(mark, 90.0)
    assert mark.equity == 120.0
    assert drawdown_from_peak(mark.equity, 90.0) == pytest.approx(0.25)


def test_clearing_the_switch_resets_the_mark_once() -> None:
    """An operator's clear restarts the mark at today's equity; later cycles keep that reset."""
    cleared = dt.datetime(2009, 3, 10, 15, 0, tzinfo=dt.UTC)
    mark = HighWater(150_000.0)
    reset = update_high_water(mark, 110_000.0, cleared_at=cleared)
    assert reset.equity == 110_000.0
    later = update_high_water(reset, 105_000.0, cleared_at=cleared)
    assert later.equity == 110_000.0
    assert HighWater.from_dict(later.as_dict()) == later


def test_unusable_equity_leaves_the_mark() -> None:
    """A NaN or zero equity never moves the mark; a drawdown against NaN is NaN."""
    mark = HighWater(100.0)
    assert update_high_water(mark, math.nan) == mark
    assert update_high_water(mark, 0.0) == mark
    assert math.isnan(drawdown_from_peak(math.nan, 50.0))
