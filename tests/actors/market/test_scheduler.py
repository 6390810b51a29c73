"""Tests for actors.market.scheduler, driven by a manual SimClock and the real NYSE calendar.

Every start and wake-up is checked at each kind of time: before the open, during
the session, after the close, a weekend, a holiday, an early close, across DST.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from zoneinfo import ZoneInfo

import anyio
import pytest
from structlog.testing import capture_logs

from actors.market.calendar import ExchangeCalendar
from actors.market.scheduler import Scheduler
from actors.messages import CycleTrigger, StartCycle
from daemon.clock import SimClock

D = dt.date
UTC = dt.UTC
NY = ZoneInfo("America/New_York")


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    """A New York wall time as an aware datetime."""
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY)


def utc(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    """A UTC time as an aware datetime."""
    return dt.datetime(y, m, d, hh, mm, tzinfo=UTC)


@pytest.fixture(scope="module")
def nyse() -> ExchangeCalendar:
    """One NYSE calendar for the module: building it is the slow part."""
    return ExchangeCalendar("XNYS", start=D(2025, 1, 1), end=D(2027, 12, 31)).load()


async def until(predicate: Callable[[], bool], limit: int = 10_000) -> None:
    """Yield to the event loop (no wall-clock sleep) until ``predicate`` holds."""
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


class Harness:
    """A SimClock, a fake completion store and a capturing emit around one Scheduler."""

    def __init__(
        self,
        calendar: ExchangeCalendar,
        start: dt.datetime,
        *,
        run_on_start: bool = False,
        catch_up: bool = True,
        done: set[dt.date] | None = None,
        run_id_factory: Callable[[dt.date, CycleTrigger], str] | None = None,
        at: dt.time = dt.time(9, 30),
    ) -> None:
        self.clock = SimClock(start)
        self.done: set[dt.date] = done if done is not None else set()
        self.emitted: list[StartCycle] = []
        self.fail_emit: set[dt.date] = set()
        self.fail_completed: set[dt.date] = set()
        self.scheduler = Scheduler(
            clock=self.clock,
            calendar=calendar,
            at=at,
            run_on_start=run_on_start,
            catch_up=catch_up,
            completed=self.completed,
            emit=self.emit,
            run_id_factory=run_id_factory,
        )

    async def completed(self, d: dt.date) -> bool:
        """Fake store: a session is completed once its cycle was emitted."""
        if d in self.fail_completed:
            raise RuntimeError(f"store unavailable for {d}")
        return d in self.done

    async def emit(self, message: StartCycle) -> None:
        """Capture the message and mark its session completed (an instant cycle)."""
        if message.asof in self.fail_emit:
            raise RuntimeError(f"bus refused {message.asof}")
        self.emitted.append(message)
        self.done.add(message.asof)

    @property
    def asofs(self) -> list[tuple[dt.date, CycleTrigger]]:
        """What was emitted, as (asof, trigger) pairs."""
        return [(m.asof, m.trigger) for m in self.emitted]

    async def asleep(self) -> None:
        """Wait until the scheduler sleeps on the clock again."""
        await until(lambda: self.clock.pending == 1)

    async def jump(self, when: dt.datetime) -> None:
        """Set the clock to ``when`` and wait until the scheduler sleeps again."""
        self.clock.set_time(when)
        await self.asleep()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Harness]:
        """Run the scheduler in a task group until the block ends, then cancel it."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.scheduler.run)
            await self.asleep()
            yield self
            tg.cancel_scope.cancel()


async def test_friday_is_followed_by_monday(nyse: ExchangeCalendar) -> None:
    """After Friday's instant the next cycle is Monday 09:30 ET; the weekend is skipped."""
    h = Harness(nyse, ny(2026, 1, 9, 10), catch_up=False)
    async with h.running():
        assert h.clock.next_deadline() == utc(2026, 1, 12, 14, 30)
        await h.jump(utc(2026, 1, 12, 14, 30))
        assert h.asofs == [(D(2026, 1, 12), CycleTrigger.SCHEDULE)]
        assert h.clock.next_deadline() == utc(2026, 1, 13, 14, 30)


async def test_thanksgiving_is_skipped(nyse: ExchangeCalendar) -> None:
    """From Wednesday 2026-11-25 the next cycle is Friday 11-27, not Thanksgiving."""
    h = Harness(nyse, ny(2026, 11, 25, 10), catch_up=False)
    async with h.running():
        assert h.clock.next_deadline() == utc(2026, 11, 27, 14, 30)
        await h.jump(utc(2026, 11, 27, 14, 30))
        assert h.asofs == [(D(2026, 11, 27), CycleTrigger.SCHEDULE)]


async def test_observed_independence_day_is_skipped(nyse: ExchangeCalendar) -> None:
    """From Thursday 2026-07-02 the next cycle is Monday 07-06 (07-03 is a holiday)."""
    h = Harness(nyse, ny(2026, 7, 2, 10), catch_up=False)
    async with h.running():
        assert h.clock.next_deadline() == utc(2026, 7, 6, 13, 30)
        await h.jump(utc(2026, 7, 6, 13, 30))
        assert h.asofs == [(D(2026, 7, 6), CycleTrigger.SCHEDULE)]


async def test_spring_forward_fires_at_the_right_utc_instants(nyse: ExchangeCalendar) -> None:
    """09:30 ET is 14:30 UTC on Fri 2026-03-06 and 13:30 UTC on Mon 2026-03-09."""
    h = Harness(nyse, ny(2026, 3, 5, 12), catch_up=False)
    async with h.running():
        assert h.clock.next_deadline() == utc(2026, 3, 6, 14, 30)
        h.clock.set_time(utc(2026, 3, 6, 14, 29))
        assert h.emitted == []
        await h.jump(utc(2026, 3, 6, 14, 30))
        assert h.clock.next_deadline() == utc(2026, 3, 9, 13, 30)
        await h.jump(utc(2026, 3, 9, 13, 30))
        assert h.asofs == [
            (D(2026, 3, 6), CycleTrigger.SCHEDULE),
            (D(2026, 3, 9), CycleTrigger.SCHEDULE),
        ]


async def test_fall_back_fires_at_the_right_utc_instants(nyse: ExchangeCalendar) -> None:
    """Around 2026-11-01: Fri 10-30 fires at 13:30 UTC, Mon 11-02 at 14:30 UTC."""
    h = Harness(nyse, ny(2026, 10, 29, 12), catch_up=False)
    async with h.running():
        assert h.clock.next_deadline() == utc(2026, 10, 30, 13, 30)
        await h.jump(utc(2026, 10, 30, 13, 30))
        assert h.clock.next_deadline() == utc(2026, 11, 2, 14, 30)
        await h.jump(utc(2026, 11, 2, 14, 30))
        assert [a for a, _ in h.asofs] == [D(2026, 10, 30), D(2026, 11, 2)]


async def test_late_start_catches_up_once(nyse: ExchangeCalendar) -> None:
    """Starting at 11:00 ET on an uncompleted session emits exactly one CATCH_UP for today."""
    h = Harness(nyse, ny(2026, 3, 10, 11))
    async with h.running():
        assert h.asofs == [(D(2026, 3, 10), CycleTrigger.CATCH_UP)]
        assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)
        await h.jump(utc(2026, 3, 11, 13, 30))
        assert h.asofs == [
            (D(2026, 3, 10), CycleTrigger.CATCH_UP),
            (D(2026, 3, 11), CycleTrigger.SCHEDULE),
        ]


async def test_late_start_does_not_catch_up_a_completed_day(nyse: ExchangeCalendar) -> None:
    """Starting at 11:00 ET on a session already completed emits nothing."""
    h = Harness(nyse, ny(2026, 3, 10, 11), done={D(2026, 3, 10)})
    with capture_logs() as logs:
        async with h.running():
            assert h.emitted == []
            assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)
    assert [e["event"] for e in logs] == ["cycle_already_completed"]


async def test_late_start_without_catch_up_waits_for_tomorrow(nyse: ExchangeCalendar) -> None:
    """With catch_up off, a late start emits nothing and waits for the next session."""
    h = Harness(nyse, ny(2026, 3, 10, 11), catch_up=False)
    async with h.running():
        assert h.emitted == []
        assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)


async def test_early_start_waits_for_the_open(nyse: ExchangeCalendar) -> None:
    """Starting at 08:00 ET on a session does not catch up; the cycle fires at 09:30 ET."""
    h = Harness(nyse, ny(2026, 3, 10, 8))
    async with h.running():
        assert h.emitted == []
        assert h.clock.next_deadline() == utc(2026, 3, 10, 13, 30)
        await h.jump(utc(2026, 3, 10, 13, 30))
        assert h.asofs == [(D(2026, 3, 10), CycleTrigger.SCHEDULE)]


async def test_start_on_a_weekend_does_not_catch_up(nyse: ExchangeCalendar) -> None:
    """Starting on a Saturday without run_on_start runs nothing; Friday's cycle is missed."""
    h = Harness(nyse, ny(2026, 3, 7, 11))
    with capture_logs() as logs:
        async with h.running():
            assert h.emitted == []
            assert h.clock.next_deadline() == utc(2026, 3, 9, 13, 30)
    missed = [e for e in logs if e["event"] == "cycles_missed"]
    assert [(e["dates"], e["running"]) for e in missed] == [(["2026-03-06"], None)]


async def test_run_on_start_at_a_weekend_runs_the_next_session(nyse: ExchangeCalendar) -> None:
    """On a Saturday, run_on_start emits START for Monday; Monday's instant finds it done."""
    h = Harness(nyse, ny(2026, 3, 7, 11), run_on_start=True)
    async with h.running():
        assert h.asofs == [(D(2026, 3, 9), CycleTrigger.START)]
        assert h.clock.next_deadline() == utc(2026, 3, 9, 13, 30)
        await h.jump(utc(2026, 3, 9, 13, 30))
        assert h.asofs == [(D(2026, 3, 9), CycleTrigger.START)]
        assert h.clock.next_deadline() == utc(2026, 3, 10, 13, 30)


async def test_run_on_start_on_a_late_session_day_emits_only_start(nyse: ExchangeCalendar) -> None:
    """run_on_start after today's instant emits START for today and no extra CATCH_UP."""
    h = Harness(nyse, ny(2026, 3, 10, 11), run_on_start=True)
    async with h.running():
        assert h.asofs == [(D(2026, 3, 10), CycleTrigger.START)]
        assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)


async def test_run_on_start_skips_a_completed_session(nyse: ExchangeCalendar) -> None:
    """run_on_start does not emit when the trading date is already completed."""
    h = Harness(nyse, ny(2026, 3, 7, 11), run_on_start=True, done={D(2026, 3, 9)})
    async with h.running():
        assert h.emitted == []
        assert h.clock.next_deadline() == utc(2026, 3, 9, 13, 30)


async def test_repeated_restarts_do_not_rerun_a_done_day(nyse: ExchangeCalendar) -> None:
    """A second start over the same store does not emit START again."""
    done: set[dt.date] = set()
    first = Harness(nyse, ny(2026, 3, 7, 11), run_on_start=True, done=done)
    async with first.running():
        assert len(first.emitted) == 1
    second = Harness(nyse, ny(2026, 3, 7, 12), run_on_start=True, done=done)
    async with second.running():
        assert second.emitted == []


async def test_clock_jump_catches_up_only_the_latest_session(nyse: ExchangeCalendar) -> None:
    """A jump into Thursday's session emits one CATCH_UP for it and logs the missed days."""
    h = Harness(nyse, ny(2026, 3, 2, 10), catch_up=False)
    async with h.running():
        assert h.clock.next_deadline() == utc(2026, 3, 3, 14, 30)
        with capture_logs() as logs:
            await h.jump(ny(2026, 3, 5, 11))
        assert h.asofs == [(D(2026, 3, 5), CycleTrigger.CATCH_UP)]
        assert h.clock.next_deadline() == utc(2026, 3, 6, 14, 30)
    missed = [e for e in logs if e["event"] == "cycles_missed"]
    assert len(missed) == 1
    assert missed[0]["log_level"] == "warning"
    assert missed[0]["dates"] == ["2026-03-03", "2026-03-04"]
    assert missed[0]["running"] == "2026-03-05"


async def test_clock_jump_to_a_weekend_runs_no_closed_session(nyse: ExchangeCalendar) -> None:
    """A 5-day jump to Sunday runs nothing: Friday has closed; all four days are missed."""
    h = Harness(nyse, ny(2026, 3, 2, 10), catch_up=False)
    async with h.running():
        with capture_logs() as logs:
            await h.jump(utc(2026, 3, 3, 14, 30) + dt.timedelta(days=5))
        assert h.emitted == []
        assert h.clock.next_deadline() == utc(2026, 3, 9, 13, 30)
    missed = [e for e in logs if e["event"] == "cycles_missed"]
    assert [(e["dates"], e["running"]) for e in missed] == [
        (["2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"], None)
    ]


async def test_wake_after_the_close_does_not_run_the_day(nyse: ExchangeCalendar) -> None:
    """Woken at 17:00 for a 09:30 instant (a suspended VPS), the closed day is only logged."""
    h = Harness(nyse, ny(2026, 3, 10, 8), done={D(2026, 3, 9)})
    async with h.running():
        with capture_logs() as logs:
            await h.jump(ny(2026, 3, 10, 17))
        assert h.emitted == []
        assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)
    missed = [e for e in logs if e["event"] == "cycles_missed"]
    assert [(e["dates"], e["running"]) for e in missed] == [(["2026-03-10"], None)]


async def test_run_on_start_before_the_open_runs_today(nyse: ExchangeCalendar) -> None:
    """At 08:00 ET on a session, run_on_start runs today's cycle; 09:30 finds it done."""
    h = Harness(nyse, ny(2026, 3, 10, 8), run_on_start=True)
    async with h.running():
        assert h.asofs == [(D(2026, 3, 10), CycleTrigger.START)]
        await h.jump(utc(2026, 3, 10, 13, 30))
        assert h.asofs == [(D(2026, 3, 10), CycleTrigger.START)]
        assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)


async def test_run_on_start_after_the_close_runs_the_next_session(
    nyse: ExchangeCalendar,
) -> None:
    """At 17:00 ET, run_on_start runs tomorrow's cycle now; tomorrow's instant finds it done."""
    h = Harness(nyse, ny(2026, 3, 10, 17), run_on_start=True, done={D(2026, 3, 10)})
    async with h.running():
        assert h.asofs == [(D(2026, 3, 11), CycleTrigger.START)]
        assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)
        await h.jump(utc(2026, 3, 11, 13, 30))
        assert h.asofs == [(D(2026, 3, 11), CycleTrigger.START)]


async def test_restart_after_the_close_skips_the_completed_next_session(
    nyse: ExchangeCalendar,
) -> None:
    """A restart at 18:00 after a START at 17:00 for tomorrow emits nothing."""
    done = {D(2026, 3, 10), D(2026, 3, 11)}
    h = Harness(nyse, ny(2026, 3, 10, 18), run_on_start=True, done=done)
    with capture_logs() as logs:
        async with h.running():
            assert h.emitted == []
    assert [e["asof"] for e in logs if e["event"] == "cycle_already_completed"] == ["2026-03-11"]


async def test_catch_up_after_the_close_logs_the_missed_day(nyse: ExchangeCalendar) -> None:
    """Started at 17:00 ET without today's cycle: not run late, logged as cycles_missed."""
    h = Harness(nyse, ny(2026, 3, 10, 17))
    with capture_logs() as logs:
        async with h.running():
            assert h.emitted == []
            assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)
    missed = [e for e in logs if e["event"] == "cycles_missed"]
    assert [(e["dates"], e["running"]) for e in missed] == [(["2026-03-10"], None)]


async def test_catch_up_after_the_close_of_a_completed_day_is_quiet(
    nyse: ExchangeCalendar,
) -> None:
    """Started at 17:00 ET after today's cycle completed: nothing emitted, nothing missed."""
    h = Harness(nyse, ny(2026, 3, 10, 17), done={D(2026, 3, 10)})
    with capture_logs() as logs:
        async with h.running():
            assert h.emitted == []
    assert [e["event"] for e in logs] == []


async def test_run_on_start_on_a_holiday_runs_the_next_session(nyse: ExchangeCalendar) -> None:
    """On Thanksgiving, run_on_start runs Friday 11-27's cycle."""
    h = Harness(nyse, ny(2026, 11, 26, 10), run_on_start=True)
    async with h.running():
        assert h.asofs == [(D(2026, 11, 27), CycleTrigger.START)]
        assert h.clock.next_deadline() == utc(2026, 11, 27, 14, 30)


async def test_catch_up_on_a_holiday_runs_nothing(nyse: ExchangeCalendar) -> None:
    """On Thanksgiving without run_on_start nothing runs; a completed Wednesday is quiet."""
    h = Harness(nyse, ny(2026, 11, 26, 10), done={D(2026, 11, 25)})
    with capture_logs() as logs:
        async with h.running():
            assert h.emitted == []
            assert h.clock.next_deadline() == utc(2026, 11, 27, 14, 30)
    assert [e["event"] for e in logs] == []


async def test_catch_up_before_an_early_close(nyse: ExchangeCalendar) -> None:
    """At 12:00 ET on 11-27 (close 13:00) the day's cycle is still caught up."""
    h = Harness(nyse, ny(2026, 11, 27, 12))
    async with h.running():
        assert h.asofs == [(D(2026, 11, 27), CycleTrigger.CATCH_UP)]


async def test_no_catch_up_after_an_early_close(nyse: ExchangeCalendar) -> None:
    """At 14:00 ET on 11-27 the session has closed (13:00): missed, not run late."""
    h = Harness(nyse, ny(2026, 11, 27, 14))
    with capture_logs() as logs:
        async with h.running():
            assert h.emitted == []
            assert h.clock.next_deadline() == utc(2026, 11, 30, 14, 30)
    missed = [e for e in logs if e["event"] == "cycles_missed"]
    assert [(e["dates"], e["running"]) for e in missed] == [(["2026-11-27"], None)]


async def test_run_on_start_after_an_early_close_runs_monday(nyse: ExchangeCalendar) -> None:
    """At 14:00 ET on 11-27, run_on_start runs Monday 11-30's cycle."""
    h = Harness(nyse, ny(2026, 11, 27, 14), run_on_start=True, done={D(2026, 11, 27)})
    async with h.running():
        assert h.asofs == [(D(2026, 11, 30), CycleTrigger.START)]


async def test_start_across_dst_uses_the_exchange_close(nyse: ExchangeCalendar) -> None:
    """20:30 UTC is 15:30 EST on Fri 03-06 (caught up) but 16:30 EDT on Mon 03-09 (closed)."""
    friday = Harness(nyse, utc(2026, 3, 6, 20, 30))
    async with friday.running():
        assert friday.asofs == [(D(2026, 3, 6), CycleTrigger.CATCH_UP)]
    monday = Harness(nyse, utc(2026, 3, 9, 20, 30), run_on_start=True)
    async with monday.running():
        assert monday.asofs == [(D(2026, 3, 10), CycleTrigger.START)]


async def test_schedule_time_after_the_close_runs_the_next_session(
    nyse: ExchangeCalendar,
) -> None:
    """With at=17:00, Tuesday's 17:00 instant runs Wednesday's cycle (orders for its open)."""
    h = Harness(nyse, ny(2026, 3, 10, 12), at=dt.time(17, 0))
    async with h.running():
        # Monday 17:00's cycle was for Tuesday, still the trading date at noon: caught up.
        assert h.asofs == [(D(2026, 3, 10), CycleTrigger.CATCH_UP)]
        assert h.clock.next_deadline() == utc(2026, 3, 10, 21, 0)
        await h.jump(utc(2026, 3, 10, 21, 0))
        assert h.asofs[-1] == (D(2026, 3, 11), CycleTrigger.SCHEDULE)


async def test_failing_emit_does_not_stop_the_next_day(nyse: ExchangeCalendar) -> None:
    """An emit that raises is logged, not retried, and the next session still fires."""
    h = Harness(nyse, ny(2026, 3, 10, 8))
    h.fail_emit.add(D(2026, 3, 10))
    async with h.running():
        with capture_logs() as logs:
            await h.jump(utc(2026, 3, 10, 13, 30))
        assert h.emitted == []
        assert h.scheduler.last_emitted is None
        assert h.clock.next_deadline() == utc(2026, 3, 11, 13, 30)
        await h.jump(utc(2026, 3, 11, 13, 30))
        assert h.asofs == [(D(2026, 3, 11), CycleTrigger.SCHEDULE)]
    failed = [e for e in logs if e["event"] == "scheduler_emit_failed"]
    assert len(failed) == 1
    assert failed[0]["asof"] == "2026-03-10"
    assert failed[0]["log_level"] == "error"


async def test_failing_completed_check_is_logged_and_skipped(nyse: ExchangeCalendar) -> None:
    """A completed() that raises is logged as scheduler_emit_failed and the loop goes on."""
    h = Harness(nyse, ny(2026, 3, 10, 8))
    h.fail_completed.add(D(2026, 3, 10))
    with capture_logs() as logs:
        async with h.running():
            await h.jump(utc(2026, 3, 10, 13, 30))
            await h.jump(utc(2026, 3, 11, 13, 30))
            assert h.asofs == [(D(2026, 3, 11), CycleTrigger.SCHEDULE)]
    assert [e["asof"] for e in logs if e["event"] == "scheduler_emit_failed"] == ["2026-03-10"]


async def test_scheduled_session_already_completed_is_not_emitted(nyse: ExchangeCalendar) -> None:
    """At the instant, a session the store reports completed is not emitted."""
    h = Harness(nyse, ny(2026, 3, 10, 8), done={D(2026, 3, 10)})
    async with h.running():
        await h.jump(utc(2026, 3, 10, 13, 30))
        assert h.emitted == []


async def test_next_run_reports_the_awaited_instant(nyse: ExchangeCalendar) -> None:
    """next_run is None before start, the pending instant while asleep, None after stop."""
    h = Harness(nyse, ny(2026, 3, 6, 8))
    assert h.scheduler.next_run() is None
    async with h.running():
        assert h.scheduler.next_run() == utc(2026, 3, 6, 14, 30)
        await h.jump(utc(2026, 3, 6, 14, 30))
        assert h.scheduler.next_run() == utc(2026, 3, 9, 13, 30)
    assert h.scheduler.next_run() is None


async def test_last_emitted_is_the_latest_message(nyse: ExchangeCalendar) -> None:
    """last_emitted holds the most recent StartCycle that was emitted."""
    h = Harness(nyse, ny(2026, 3, 10, 8))
    async with h.running():
        assert h.scheduler.last_emitted is None
        await h.jump(utc(2026, 3, 10, 13, 30))
        assert h.scheduler.last_emitted == h.emitted[-1]


async def test_default_run_ids_are_unique_and_well_formed(nyse: ExchangeCalendar) -> None:
    """Default run ids are at most 40 safe characters, start with the date, and differ."""
    h = Harness(nyse, ny(2026, 3, 10, 11))
    async with h.running():
        await h.jump(utc(2026, 3, 11, 13, 30))
    ids = [m.run_id for m in h.emitted]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    for run_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", run_id)
    assert ids[0].startswith("20260310-catch-up-")
    assert ids[1].startswith("20260311-schedule-")


async def test_custom_run_id_factory_is_used(nyse: ExchangeCalendar) -> None:
    """A run_id_factory decides the run id."""
    h = Harness(nyse, ny(2026, 3, 10, 11), run_id_factory=lambda d, t: f"r{d:%Y%m%d}.{t}")
    async with h.running():
        assert [m.run_id for m in h.emitted] == ["r20260310.catch-up"]


async def test_invalid_custom_run_id_is_refused(nyse: ExchangeCalendar) -> None:
    """A run id with unsafe characters is logged as a failure and not emitted."""
    h = Harness(nyse, ny(2026, 3, 10, 11), run_id_factory=lambda d, t: f"run {d}/{t}")
    with capture_logs() as logs:
        async with h.running():
            assert h.emitted == []
    assert [e["event"] for e in logs] == ["scheduler_emit_failed"]


async def test_cancellation_ends_run(nyse: ExchangeCalendar) -> None:
    """Cancelling the task ends run() with CancelledError and releases the clock sleeper."""
    h = Harness(nyse, ny(2026, 3, 10, 8))
    task = asyncio.create_task(h.scheduler.run())
    await h.asleep()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert h.clock.pending == 0
    assert h.scheduler.next_run() is None


def test_scheduled_instant_is_dst_correct(nyse: ExchangeCalendar) -> None:
    """scheduled_instant converts 09:30 New York to UTC using that date's offset."""
    h = Harness(nyse, ny(2026, 3, 10, 8))
    assert h.scheduler.scheduled_instant(D(2026, 3, 6)) == utc(2026, 3, 6, 14, 30)
    assert h.scheduler.scheduled_instant(D(2026, 3, 9)) == utc(2026, 3, 9, 13, 30)


def test_unknown_time_zone_is_value_error(nyse: ExchangeCalendar) -> None:
    """An unknown time zone name is refused at construction."""

    async def never(d: dt.date) -> bool:
        return False

    async def sink(m: StartCycle) -> None:
        return None

    with pytest.raises(ValueError, match="Mars/Olympus"):
        Scheduler(
            clock=SimClock(utc(2026, 1, 1, 0)),
            calendar=nyse,
            timezone="Mars/Olympus",
            completed=never,
            emit=sink,
        )


def test_aware_at_is_value_error(nyse: ExchangeCalendar) -> None:
    """'at' must be a naive local time; the zone goes in timezone."""

    async def never(d: dt.date) -> bool:
        return False

    async def sink(m: StartCycle) -> None:
        return None

    with pytest.raises(ValueError, match="naive"):
        Scheduler(
            clock=SimClock(utc(2026, 1, 1, 0)),
            calendar=nyse,
            at=dt.time(9, 30, tzinfo=UTC),
            completed=never,
            emit=sink,
        )
