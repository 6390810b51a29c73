"""The exchange calendar: which dates are trading sessions, and when they open and close.

``ExchangeCalendar`` wraps the ``exchange_calendars`` library (never a hand-written
holiday table). Building a library calendar costs a few hundred milliseconds, so it
is built lazily, once, on the first query (or eagerly with ``load()``, which a
caller can run in a worker thread) over a window: by default 2000-01-01 to two
years after today, or the explicit ``start``/``end`` given. A query outside the
window rebuilds a wider one, so answers never depend on the window, only speed does.

After the build every query is a ``bisect`` over a precomputed, sorted list of
session dates (a backtest asks thousands of times per run): no pandas on the hot
path. Dates are ``datetime.date`` (the session label); times are timezone-aware UTC.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import warnings
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import exchange_calendars as xc
import numpy as np

UTC = dt.UTC

DEFAULT_START = dt.date(2000, 1, 1)
_DEFAULT_YEARS_AHEAD = 2
# pandas nanosecond timestamps cover 1677-09-21 .. 2262-04-11; stay inside with margin.
_MIN_DATE = dt.date(1678, 1, 1)
_MAX_DATE = dt.date(2261, 12, 31)
_EXTEND_MARGIN = dt.timedelta(days=2 * 366)


@dataclass(frozen=True, slots=True)
class _Tables:
    """One built window, swapped in whole so readers never see a half-built state."""

    start: dt.date
    end: dt.date
    sessions: list[dt.date]
    opens: list[dt.datetime]
    closes: list[dt.datetime]
    early_closes: frozenset[dt.date]


def _utc_datetimes(series: object) -> list[dt.datetime]:
    """A tz-aware (UTC) pandas Series of timestamps as aware ``datetime`` objects."""
    naive = series.dt.tz_convert(None).to_numpy().astype("datetime64[us]")  # type: ignore[attr-defined]
    return [t.replace(tzinfo=UTC) for t in naive.tolist()]


def _dates(index: object) -> list[dt.date]:
    """A pandas DatetimeIndex of session labels as ``datetime.date`` objects."""
    days = np.asarray(index).astype("datetime64[D]")
    result: list[dt.date] = days.tolist()
    return result


class ExchangeCalendar:
    """Trading sessions of one exchange (default XNYS, the New York Stock Exchange)."""

    def __init__(
        self,
        name: str = "XNYS",
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> None:
        if name not in xc.get_calendar_names(include_aliases=True):
            raise ValueError(f"unknown exchange calendar {name!r}")
        start = start if start is not None else DEFAULT_START
        end = (
            end
            if end is not None
            else dt.date.today() + dt.timedelta(days=_DEFAULT_YEARS_AHEAD * 366)
        )
        if start > end:
            raise ValueError(f"calendar window start {start} is after end {end}")
        self._name = name
        self._window = (max(start, _MIN_DATE), min(end, _MAX_DATE))
        self._tables: _Tables | None = None
        self._tz: ZoneInfo | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self._name!r})"

    @property
    def name(self) -> str:
        """The exchange's ISO MIC code, e.g. ``XNYS``."""
        return self._name

    @property
    def tz(self) -> ZoneInfo:
        """The exchange's local time zone."""
        self._current()
        assert self._tz is not None
        return self._tz

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        """The dates the built tables currently cover (they grow on demand)."""
        t = self._tables
        return (t.start, t.end) if t is not None else self._window

    def load(self) -> ExchangeCalendar:
        """Build the tables now (idempotent); run it in a thread to keep a loop responsive."""
        self._current()
        return self

    # ------------------------------------------------------------------ queries

    def is_session(self, d: dt.date) -> bool:
        """Whether ``d`` is a trading session (not a weekend or an exchange holiday)."""
        t = self._covering(d, d)
        i = bisect.bisect_left(t.sessions, d)
        return i < len(t.sessions) and t.sessions[i] == d

    def next_session(self, d: dt.date) -> dt.date:
        """The first session strictly after ``d``."""
        t = self._covering(d, d)
        i = bisect.bisect_right(t.sessions, d)
        if i == len(t.sessions):
            t = self._covering(d, d + _EXTEND_MARGIN)
            i = bisect.bisect_right(t.sessions, d)
            if i == len(t.sessions):
                raise ValueError(f"no {self._name} session after {d}")
        return t.sessions[i]

    def previous_session(self, d: dt.date) -> dt.date:
        """The last session strictly before ``d``."""
        t = self._covering(d, d)
        i = bisect.bisect_left(t.sessions, d)
        if i == 0:
            t = self._covering(d - _EXTEND_MARGIN, d)
            i = bisect.bisect_left(t.sessions, d)
            if i == 0:
                raise ValueError(f"no {self._name} session before {d}")
        return t.sessions[i - 1]

    def session_on_or_before(self, d: dt.date) -> dt.date:
        """``d`` if it is a session, else the last session before it."""
        return d if self.is_session(d) else self.previous_session(d)

    def session_on_or_after(self, d: dt.date) -> dt.date:
        """``d`` if it is a session, else the first session after it."""
        return d if self.is_session(d) else self.next_session(d)

    def sessions_between(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Every session in ``[start, end]`` (both inclusive); empty if ``start > end``."""
        if start > end:
            return []
        t = self._covering(start, end)
        lo = bisect.bisect_left(t.sessions, start)
        hi = bisect.bisect_right(t.sessions, end)
        return t.sessions[lo:hi]

    def sessions_back(self, d: dt.date, n: int) -> list[dt.date]:
        """The ``n`` sessions ending at ``d`` (inclusive if ``d`` is a session), oldest first."""
        if n < 0:
            raise ValueError(f"sessions_back needs n >= 0, got {n}")
        if n == 0:
            return []
        t = self._covering(d, d)
        hi = bisect.bisect_right(t.sessions, d)
        # ~252 sessions a year: reach back far enough in one rebuild, more if needed.
        span = dt.timedelta(days=n * 2 + 30)
        while hi < n:
            if t.start <= _MIN_DATE:
                raise ValueError(f"fewer than {n} {self._name} sessions up to {d}")
            t = self._covering(max(t.start - span, _MIN_DATE), d)
            hi = bisect.bisect_right(t.sessions, d)
            span *= 2
        return t.sessions[hi - n : hi]

    def session_open(self, d: dt.date) -> dt.datetime:
        """When session ``d`` opens (UTC); ValueError if ``d`` is not a session."""
        t, i = self._session_index(d)
        return t.opens[i]

    def session_close(self, d: dt.date) -> dt.datetime:
        """When session ``d`` closes (UTC), early closes included; ValueError if not a session."""
        t, i = self._session_index(d)
        return t.closes[i]

    def is_early_close(self, d: dt.date) -> bool:
        """Whether session ``d`` closes early (13:00 ET after Thanksgiving); False off-session."""
        t = self._covering(d, d)
        return d in t.early_closes

    # ------------------------------------------------------------------ internals

    def _session_index(self, d: dt.date) -> tuple[_Tables, int]:
        t = self._covering(d, d)
        i = bisect.bisect_left(t.sessions, d)
        if i == len(t.sessions) or t.sessions[i] != d:
            raise ValueError(f"{d} is not a {self._name} session")
        return t, i

    def _current(self) -> _Tables:
        t = self._tables
        if t is not None:
            return t
        with self._lock:
            t = self._tables
            if t is None:
                t = self._build(*self._window)
                self._tables = t
            return t

    def _covering(self, lo: dt.date, hi: dt.date) -> _Tables:
        """Tables whose window contains ``[lo, hi]``, rebuilding a wider window if needed."""
        t = self._current()
        if t.start <= lo and hi <= t.end:
            return t
        with self._lock:
            t = self._tables or t
            if t.start <= lo and hi <= t.end:
                return t
            if lo < _MIN_DATE or hi > _MAX_DATE:
                raise ValueError(
                    f"{self._name} calendar cannot cover {lo}..{hi} "
                    f"(supported {_MIN_DATE}..{_MAX_DATE})"
                )
            # Grow with a margin so a backtest walking past the edge rebuilds rarely.
            start = max(lo - _EXTEND_MARGIN, _MIN_DATE) if lo < t.start else t.start
            end = min(hi + _EXTEND_MARGIN, _MAX_DATE) if hi > t.end else t.end
            self._tables = t = self._build(start, end)
        return t

    def _build(self, start: dt.date, end: dt.date) -> _Tables:
        try:
            # exchange_calendars 4.x calls pandas APIs that pandas 3 deprecates (e.g.
            # tz-aware ``Series.values``); that is the library's business, and under
            # ``-W error`` it would stop the daemon. The values it builds are correct.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                cal = xc.get_calendar(self._name, start=start.isoformat(), end=end.isoformat())
        except xc.errors.NoSessionsError as exc:
            raise ValueError(f"no {self._name} sessions between {start} and {end}") from exc
        self._tz = ZoneInfo(str(cal.tz))
        return _Tables(
            start=start,
            end=end,
            sessions=_dates(cal.sessions),
            opens=_utc_datetimes(cal.opens),
            closes=_utc_datetimes(cal.closes),
            early_closes=frozenset(_dates(cal.early_closes)),
        )


def trading_date(now: dt.datetime, calendar: ExchangeCalendar) -> dt.date:
    """The trading date a cycle started at ``now`` belongs to: the session its orders trade in.

    With ``today`` the exchange-local date of ``now``:

    - before the open of a session day: that day (the cycle runs on the last
      close; its orders fill at today's open);
    - during the session (open <= now < close): that day;
    - at or after the close: the next session (today's bar is complete; the
      orders fill at the next open), early closes counted from their early close;
    - weekends and holidays: the next session.

    It depends on the instant and the calendar only (never on the machine's
    zone); DST needs no special case, as closes are compared as aware instants.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"trading_date needs an aware datetime, got naive {now.isoformat()}")
    today = now.astimezone(calendar.tz).date()
    if calendar.is_session(today) and now < calendar.session_close(today):
        return today
    return calendar.next_session(today)
