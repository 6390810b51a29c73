"""The scheduler: turns the exchange calendar into one ``StartCycle`` per trading session.

Semantics
---------
- **Which date.** A cycle's trading date is always ``actors.market.calendar.trading_date``
  of the instant it starts at: before the open or during a session, that session;
  at or after its close, on a weekend or a holiday, the next session.
- **When.** The scheduled instant of session ``d`` is ``datetime.combine(d, at,
  ZoneInfo(timezone))`` converted to UTC. That is DST-correct by construction:
  09:30 New York is 14:30 UTC in winter and 13:30 UTC in summer. Only sessions of
  the calendar are scheduled, so never a weekend or an exchange holiday. The
  cycle fired at that instant is for ``trading_date(instant)``: ``d`` itself for
  an ``at`` before the close; the next session for an ``at`` after the close
  (then an early-close session has no cycle of its own).
- **At start.** ``now = clock.now()``, ``current = trading_date(now)``.

  * ``run_on_start``: one ``StartCycle(trigger=START)`` for ``current`` unless
    ``await completed(current)``, so repeated restarts do not re-run a finished
    date. After the close (or at a weekend) that is the next session's cycle, run
    now on complete data; its orders fill at that session's open. A scheduled
    instant for the same date that is still ahead fires as usual and finds the
    date completed (so a START that failed is tried again at that instant).
  * otherwise, ``catch_up``: if the latest scheduled instant at or before ``now``
    is for ``current`` (the instant passed and the session has not closed), one
    ``StartCycle(trigger=CATCH_UP)`` unless completed. If that instant's session
    has closed instead, its cycle is not run late: unless completed, it is logged
    once as the warning ``cycles_missed``.
  * a start before today's instant on a session day just waits for the instant.
- **Then, forever.** Take the first session after the last one handled, sleep on the
  injected clock until its instant, and emit ``StartCycle(trigger=SCHEDULE)`` unless
  ``await completed(asof)``. An instant is considered once: never re-emitted, whether
  it was emitted, caught up, found completed, or its ``emit`` failed.
- **Jumps.** If the clock wakes us past the instant (a VPS suspended for hours or
  days), there is no burst of missed days: only the most recent due instant can run,
  with trigger CATCH_UP, and only while its trading date is still the current one
  (its session has not closed). Every other skipped date is logged once in the
  warning ``cycles_missed`` (``dates`` lists them, ISO format; ``running`` names the
  date run instead, or is None).
- **Errors.** An exception from ``completed`` or ``emit`` (or a bad ``run_id``) is
  logged as ``scheduler_emit_failed`` with the traceback (a ``completed`` that fails
  while deciding whether to log a missed cycle: ``scheduler_completed_check_failed``);
  the loop goes on to the next session. A failed emit is not retried for the same
  instant: the cycle owns its retries. Cancellation is never swallowed: cancel the
  task to stop ``run()``.
- **Run ids.** Default ``{asof:%Y%m%d}-{trigger}-{now:%H%M%S}-{10 hex of uuid4}``
  (at most 40 characters of ``[A-Za-z0-9_.-]``; 40 random bits make it unique in
  practice, across restarts too). A custom ``run_id_factory`` must keep to the same
  alphabet and length.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
import anyio.abc
import structlog

from actors.market.calendar import ExchangeCalendar, trading_date
from actors.messages import CycleTrigger, StartCycle
from daemon.clock import Clock

UTC = dt.UTC
RUN_ID_MAX_LEN = 40
_RUN_ID_RE = re.compile(rf"[A-Za-z0-9_.-]{{1,{RUN_ID_MAX_LEN}}}")

_log = structlog.get_logger(__name__)


def default_run_id(asof: dt.date, trigger: CycleTrigger, now: dt.datetime) -> str:
    """``YYYYMMDD-<trigger>-HHMMSS-<10 hex>``: unique, at most 35 characters, path-safe."""
    return f"{asof:%Y%m%d}-{trigger}-{now:%H%M%S}-{uuid.uuid4().hex[:10]}"


class Scheduler:
    """Emits ``StartCycle`` once per trading session at a local wall time (see module doc)."""

    def __init__(
        self,
        *,
        clock: Clock,
        calendar: ExchangeCalendar,
        at: dt.time = dt.time(9, 30),
        timezone: str = "America/New_York",
        run_on_start: bool = True,
        catch_up: bool = True,
        completed: Callable[[dt.date], Awaitable[bool]],
        emit: Callable[[StartCycle], Awaitable[None]],
        run_id_factory: Callable[[dt.date, CycleTrigger], str] | None = None,
    ) -> None:
        if at.tzinfo is not None:
            raise ValueError("scheduler 'at' must be a naive local time; give the zone in timezone")
        try:
            self._tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        self._clock = clock
        self._calendar = calendar
        self._at = at
        self._run_on_start = run_on_start
        self._catch_up = catch_up
        self._completed = completed
        self._emit = emit
        self._run_id_factory = run_id_factory or self._default_run_id
        self._next: dt.datetime | None = None
        self.last_emitted: StartCycle | None = None
        """The last ``StartCycle`` whose ``emit`` returned without raising."""

    def scheduled_instant(self, session: dt.date) -> dt.datetime:
        """The UTC instant the cycle for ``session`` is due (``at`` in ``timezone``)."""
        return dt.datetime.combine(session, self._at, tzinfo=self._tz).astimezone(UTC)

    def next_run(self) -> dt.datetime | None:
        """The UTC instant the running loop waits for; None before start or while firing."""
        return self._next

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Signal readiness, handle the start (START / CATCH_UP), then schedule forever."""
        task_status.started()
        try:
            cursor = await self._on_start()
            while True:
                cursor = await self._wait_and_fire(cursor)
        finally:
            self._next = None

    # ------------------------------------------------------------------ internals

    async def _on_start(self) -> dt.date:
        """Handle the start; return the last session whose instant is considered handled."""
        now = self._clock.now()
        current = trading_date(now, self._calendar)
        latest = self._latest_due(now)
        if self._run_on_start:
            await self._fire(current, CycleTrigger.START)
            return latest
        if not self._catch_up:
            return latest
        due = self._asof_of(latest)
        if due == current:
            await self._fire(current, CycleTrigger.CATCH_UP)
        elif not await self._is_completed(due):
            self._log_missed([due], running=None)
        return latest

    async def _wait_and_fire(self, cursor: dt.date) -> dt.date:
        """Sleep until the session after ``cursor`` is due, fire it; return what was handled."""
        session = self._calendar.next_session(cursor)
        instant = self.scheduled_instant(session)
        self._next = instant
        while self._clock.now() < instant:
            await self._clock.sleep_until(instant)
        self._next = None
        now = self._clock.now()
        latest = self._latest_due(now)
        due = self._asof_of(latest)
        # A session whose close has passed is never run late, woken by a jump or not.
        running = due if due == trading_date(now, self._calendar) else None
        skipped = self._calendar.sessions_between(session, latest)
        missed = sorted({self._asof_of(d) for d in skipped} - {running})
        if missed:
            self._log_missed(missed, running=running)
        if running is not None:
            trigger = CycleTrigger.SCHEDULE if latest == session else CycleTrigger.CATCH_UP
            await self._fire(running, trigger)
        return latest

    def _asof_of(self, session: dt.date) -> dt.date:
        """The trading date of the cycle fired at ``session``'s scheduled instant."""
        return trading_date(self.scheduled_instant(session), self._calendar)

    def _latest_due(self, now: dt.datetime) -> dt.date:
        """The most recent session whose scheduled instant is at or before ``now``."""
        session = self._calendar.session_on_or_before(now.astimezone(self._tz).date())
        while self.scheduled_instant(session) > now:
            session = self._calendar.previous_session(session)
        return session

    async def _is_completed(self, asof: dt.date) -> bool:
        """``completed(asof)``; a failing check is logged and counts as completed (quiet)."""
        try:
            return await self._completed(asof)
        except Exception:
            _log.exception("scheduler_completed_check_failed", asof=asof.isoformat())
            return True

    @staticmethod
    def _log_missed(dates: list[dt.date], *, running: dt.date | None) -> None:
        _log.warning(
            "cycles_missed",
            dates=[d.isoformat() for d in dates],
            count=len(dates),
            running=running.isoformat() if running is not None else None,
        )

    async def _fire(self, asof: dt.date, trigger: CycleTrigger) -> None:
        """Emit one ``StartCycle`` unless the session is completed; log and go on on error."""
        try:
            if await self._completed(asof):
                _log.info("cycle_already_completed", asof=asof.isoformat(), trigger=str(trigger))
                return
            run_id = self._run_id_factory(asof, trigger)
            if not _RUN_ID_RE.fullmatch(run_id):
                raise ValueError(
                    f"run_id {run_id!r} must be 1-{RUN_ID_MAX_LEN} characters of [A-Za-z0-9_.-]"
                )
            message = StartCycle(run_id=run_id, asof=asof, trigger=trigger)
            await self._emit(message)
        except Exception:
            # The loop must outlive one bad day; the cycle owns its own retries.
            _log.exception("scheduler_emit_failed", asof=asof.isoformat(), trigger=str(trigger))
            return
        self.last_emitted = message
        _log.info("cycle_scheduled", run_id=run_id, asof=asof.isoformat(), trigger=str(trigger))

    def _default_run_id(self, asof: dt.date, trigger: CycleTrigger) -> str:
        return default_run_id(asof, trigger, self._clock.now())
