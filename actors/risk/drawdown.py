"""The day's loss and the drawdown from the high-water mark, measured on the real schedule.

A daily system runs one cycle a day, so "the day's loss" cannot be "equity now
against the first equity this cycle saw": in a once-a-day run that is always
about zero (the reference system's ``set_daily_start_value`` never fired here).
It is measured against the account's recorded closes instead:

* ``session_return``: the last closed session's close against the close of the
  session before it. A cycle before the open of session d (or at the open,
  with a broker that marks at closes) sees the loss of session d-1; a cycle
  after the close of d-1 for session d sees the same.
* ``intraday_return``: the current mark against the last close, when the cycle
  runs during a session and the broker marks positions live (Alpaca's
  ``equity`` against ``last_equity``).

The breaker and the daily-drawdown kill switch look at the worse of the two: a
09:30 cycle with a live-marking broker would otherwise see only the first
minute of today and miss yesterday's fall. A loss that cannot be measured (no
close recorded before the last one: the first day, or after the daemon and the
broker history both missed a day) is *unknown*, not zero: it is reported as
such and does not trip (failing closed would block every first day).

The trailing drawdown compares the equity with its high-water mark: the
highest close (or mark) since the mark was last reset. It catches the slow
bleed no single day's limit sees. An operator who clears the latched
``max_drawdown`` switch resets the mark to the equity of that moment, so the
switch does not re-trip at once on the same loss.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

_TOLERANCE = 1e-12


def _ratio(new: float | None, old: float | None) -> float:
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)) or old <= 0:
        return math.nan
    return new / old - 1.0


@dataclass(frozen=True, slots=True)
class DayLoss:
    """The day's move as the breaker sees it (ratios: -0.02 = 2 % down; NaN = unknown)."""

    session: dt.date  # the last closed session
    previous: dt.date  # the session before it
    session_return: float
    intraday_return: float
    in_session: bool

    @property
    def pnl(self) -> float:
        """The figure to report: today so far during a session, else the last session's."""
        if self.in_session and math.isfinite(self.intraday_return):
            return self.intraday_return
        return self.session_return

    @property
    def loss(self) -> float:
        """The worse loss of the two measures as a positive ratio; NaN when both are unknown."""
        known = [-r for r in (self.session_return, self.intraday_return) if math.isfinite(r)]
        return max(0.0, *known) if known else math.nan

    @property
    def known(self) -> bool:
        return math.isfinite(self.loss)

    def breached(self, limit: float) -> bool:
        """True when the known loss is strictly greater than ``limit``."""
        return self.known and self.loss > limit + _TOLERANCE

    def describe(self) -> str:
        """One line for the operator: which move, which sessions, or why it is unknown."""
        parts = []
        if math.isfinite(self.session_return):
            parts.append(f"{self.session} close {self.session_return:+.2%} vs {self.previous}")
        else:
            parts.append(f"{self.session} vs {self.previous}: unknown (no close recorded)")
        # a broker that marks at closes (the simulated one) has no move of its own today
        if self.in_session and math.isfinite(self.intraday_return) and self.intraday_return:
            parts.append(f"today so far {self.intraday_return:+.2%}")
        return "; ".join(parts)


def measure_day_loss(
    closes: dict[dt.date, float],
    *,
    session: dt.date,
    previous: dt.date,
    equity: float,
    in_session: bool,
) -> DayLoss:
    """The day's loss from the recorded ``closes`` and the current ``equity``.

    ``session`` is the last closed session and ``previous`` the one before it;
    ``equity`` is the current mark (used only when ``in_session``).
    """
    last = closes.get(session)
    return DayLoss(
        session=session,
        previous=previous,
        session_return=_ratio(last, closes.get(previous)),
        intraday_return=_ratio(equity, last) if in_session else math.nan,
        in_session=in_session,
    )


@dataclass(frozen=True, slots=True)
class HighWater:
    """The equity's high-water mark, and when it was last reset (ISO instant or None)."""

    equity: float
    reset_at: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"equity": self.equity, "reset_at": self.reset_at}

    @classmethod
    def from_dict(cls, value: object) -> HighWater | None:
        if not isinstance(value, dict) or not isinstance(value.get("equity"), int | float):
            return None
        reset = value.get("reset_at")
        return cls(float(value["equity"]), reset if isinstance(reset, str) else None)


def update_high_water(
    current: HighWater | None,
    equity: float,
    *,
    cleared_at: dt.datetime | None = None,
) -> HighWater:
    """The high-water mark after seeing ``equity``.

    ``cleared_at`` is when the operator last cleared the ``max_drawdown`` switch:
    a clear newer than the mark's last reset starts the mark again at ``equity``.
    """
    if not (math.isfinite(equity) and equity > 0):
        return current if current is not None else HighWater(math.nan)
    if cleared_at is not None:
        stamp = cleared_at.isoformat()
        if current is None or current.reset_at is None or current.reset_at < stamp:
            return HighWater(equity, stamp)
    if current is None or not math.isfinite(current.equity):
        return HighWater(equity, None if current is None else current.reset_at)
    return HighWater(max(current.equity, equity), current.reset_at)


def drawdown_from_peak(peak: float, equity: float) -> float:
    """``1 - equity / peak`` (0 at or above the peak); NaN when either is unusable."""
    if not (math.isfinite(peak) and math.isfinite(equity)) or peak <= 0:
        return math.nan
    return max(0.0, 1.0 - equity / peak)
