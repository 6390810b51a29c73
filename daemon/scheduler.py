"""The scheduler: turns the exchange calendar into one ``StartCycle`` per trading session.

Semantics
---------
- **When.** The scheduled instant of session ``d`` is ``datetime.combine(d, at,
  ZoneInfo(timezone))`` converted to UTC. That is DST-correct by construction:
  09:30 New York is 14:30 UTC in winter and 13:30 UTC in summer. Only sessions of
  the calendar are scheduled, so never a weekend or an exchange holiday.
- **At start.** ``today`` is the date in ``timezone`` of ``clock.now()``.

  * ``run_on_start``: ``asof = calendar.session_on_or_before(today)``; one
    ``StartCycle(trigger=START)`` for it unless ``await completed(asof)``, so repeated
    restarts do not re-run a finished day (the cycle is idempotent anyway). Today's
    instant, if today is that session, counts as handled: it is not fired again.
  * otherwise, ``catch_up``: if today is a session, ``now`` is at or past today's
    instant and ``await completed(today)`` is False, one ``StartCycle(trigger=CATCH_UP)``.
  * a start before today's instant on a session day just waits for the instant.
- **Then, forever.** Take the first session after the last one handled, sleep on the
  injected clock until its instant, and emit ``StartCycle(trigger=SCHEDULE)`` unless
  ``await completed(d)``. An instant is considered once: never re-emitted, whether it
  was emitted, caught up, found completed, or its ``emit`` failed.
- **Jumps.** If the clock wakes us far past the instant (a VPS suspended for days),
  there is no burst of missed days: only the most recent due session runs, with
  trigger CATCH_UP, and the skipped sessions are logged once as the warning
  ``cycles_missed`` (``dates`` lists them, ISO format).
- **Errors.** An exception from ``completed`` or ``emit`` (or a bad ``run_id``) is
  logged as ``scheduler_emit_failed`` with the traceback; the loop goes on to the next
  session. A failed emit is not retried for the same instant: the cycle owns its
  retries. Cancellation is never swallowed: cancel the task to stop ``run()``.
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

from actors.messages import CycleTrigger, StartCycle
from daemon.calendar import ExchangeCalendar
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
        """Handle the start; return the last session considered handled."""
        now = self._clock.now()
        today = now.astimezone(self._tz).date()
        if self._run_on_start:
            asof = self._calendar.session_on_or_before(today)
            await self._fire(asof, CycleTrigger.START)
            return asof
        latest = self._latest_due(now)
        if self._catch_up and latest == today:
            await self._fire(today, CycleTrigger.CATCH_UP)
        return latest

    async def _wait_and_fire(self, cursor: dt.date) -> dt.date:
        """Sleep until the session after ``cursor`` is due, fire it; return what was handled."""
        session = self._calendar.next_session(cursor)
        instant = self.scheduled_instant(session)
        self._next = instant
        while self._clock.now() < instant:
            await self._clock.sleep_until(instant)
        self._next = None
        latest = self._latest_due(self._clock.now())
        if latest > session:
            missed = self._calendar.sessions_between(
                session, self._calendar.previous_session(latest)
            )
            _log.warning(
                "cycles_missed",
                dates=[d.isoformat() for d in missed],
                count=len(missed),
                running=latest.isoformat(),
            )
            await self._fire(latest, CycleTrigger.CATCH_UP)
            return latest
        await self._fire(session, CycleTrigger.SCHEDULE)
        return session

    def _latest_due(self, now: dt.datetime) -> dt.date:
        """The most recent session whose scheduled instant is at or before ``now``."""
        session = self._calendar.session_on_or_before(now.astimezone(self._tz).date())
        if self.scheduled_instant(session) > now:
            session = self._calendar.previous_session(session)
        return session

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
