"""``CycleRunner``: owns the daily cycle (``actors/cycle/cycle.py`` runs its steps).

A cycle runs in a task of its own, so the actor keeps serving its mailbox
(status, heartbeats, a plan) while a cycle runs; a second ``StartCycle``
while one runs is refused (``CycleBusy``), not queued. Every cycle is
journaled before it does anything; a cycle a crash interrupted is closed as
failed at start and today's cycle is run again (see ``cycle.py`` on why that
never places an order twice).

A trading date whose cycle completed is done, whatever the time of day: a
``StartCycle`` for it is refused (``CycleAlreadyCompleted``, naming the run and
when it completed) unless ``force``; a forced re-run runs exits and stop checks
only (its entries are refused as ``day_already_traded``) unless
``allow_entries`` too. A halted or failed cycle does not make a date done: it
placed no entry. A plan is never refused (a dry run) but shows the same block.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from actors.cycle.context import CycleDeps, Outcome
from actors.cycle.cycle import Cycle
from actors.events import EventType
from actors.messages import (
    ApplySettings,
    CycleCompleted,
    CycleStatus,
    GetStatus,
    StartCycle,
)
from actors.risk.params import RiskParams
from actors.store.cycles import CycleRecord
from actors.strategies.params import StrategiesParams
from daemon.actor import Actor, handles
from daemon.errors import Refusal

log = structlog.get_logger()
Publish = Callable[[object], Awaitable[None]]


class CycleBusy(Refusal):
    """A cycle is already running; the new request is refused (names the running one)."""


class CycleAlreadyCompleted(Refusal):
    """The trading date's cycle completed, so the date is done; ``--force`` re-runs exits."""

    def __init__(self, asof: dt.date, run_id: str, finished_at: dt.datetime, when: str) -> None:
        super().__init__(
            f"trading date {asof} is done: its cycle {run_id} completed at {when};"
            " --force runs exits and stop checks again"
            " (new entries also need --allow-entries)"
        )
        self.asof = asof
        self.run_id = run_id
        self.finished_at = finished_at


@dataclasses.dataclass(frozen=True, slots=True)
class CycleStarted:
    run_id: str
    asof: dt.date


@dataclasses.dataclass(frozen=True, slots=True)
class WaitCycle:
    """Ask for the outcome of ``run_id`` (waits while it is running)."""

    run_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class PlanCycle:
    """Run the gates for ``asof`` as a dry run: the orders it would place, nothing written."""

    run_id: str
    asof: dt.date


class CycleRunner(Actor):
    """Starts, plans and answers for cycles; the graph registers it as ``risk_supervisor``."""

    def __init__(
        self,
        deps: CycleDeps,
        *,
        strategies: StrategiesParams,
        risk: RiskParams,
        publish: Publish | None = None,
    ) -> None:
        self._d = deps
        self._strategies = strategies
        self._risk = risk
        self._publish = publish
        self._task: asyncio.Task[CycleCompleted] | None = None
        self._running: StartCycle | None = None
        self._results: dict[str, CycleCompleted] = {}

    async def on_start(self) -> None:
        for record in await self._d.journal.unfinished():
            await self._d.journal.finish(
                record.run_id, "failed", "interrupted by a restart", self._d.clock.now()
            )
            log.warning("cycle_interrupted", run_id=record.run_id, asof=str(record.asof))

    async def on_stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                log.warning(
                    "cycle_cancelled_at_stop", run_id=self._running and self._running.run_id
                )

    # ------------------------------------------------------------ messages

    @handles(StartCycle)
    async def start_cycle(self, msg: StartCycle) -> CycleStarted:
        if self._task is not None and not self._task.done():
            running = self._running
            raise CycleBusy(
                f"cycle {running.run_id if running else '?'} is still running; "
                f"{msg.run_id} was not started"
            )
        blocked: str | None = None
        done = await self._completed_cycle(msg.asof)
        if done is not None:
            assert done.finished_at is not None
            if not msg.force:
                raise CycleAlreadyCompleted(
                    msg.asof, done.run_id, done.finished_at, self._when(done.finished_at)
                )
            blocked = None if msg.allow_entries else self._day_done(done)
            log.warning(
                "cycle_forced",
                run_id=msg.run_id,
                asof=str(msg.asof),
                completed_run=done.run_id,
                entries="allowed" if msg.allow_entries else "blocked",
            )
        self._running = msg
        self._task = asyncio.create_task(self._run(msg, blocked), name=f"cycle-{msg.run_id}")
        return CycleStarted(msg.run_id, msg.asof)

    @handles(WaitCycle)
    async def wait_cycle(self, msg: WaitCycle) -> CycleCompleted:
        if msg.run_id in self._results:
            return self._results[msg.run_id]
        task = self._task
        if task is None or self._running is None or self._running.run_id != msg.run_id:
            raise Refusal(f"no cycle {msg.run_id!r} in this process")
        return await asyncio.shield(task)

    @handles(PlanCycle)
    async def plan(self, msg: PlanCycle) -> dict[str, Any]:
        done = await self._completed_cycle(msg.asof)
        blocked = None if done is None else self._day_done(done)
        outcome = await Cycle(
            self._d,
            self._strategies,
            self._risk,
            StartCycle(msg.run_id, msg.asof),
            plan=True,
            entries_blocked=blocked,
        ).run()
        return {
            "asof": str(msg.asof),
            "entries_blocked": blocked,
            "status": str(outcome.status),
            "reason": outcome.reason,
            "regime": outcome.regime,
            "notes": outcome.notes,
            "orders": [
                {
                    "strategy": i.strategy,
                    "symbol": i.symbol,
                    "side": i.side,
                    "qty": i.qty,
                    "kind": str(i.kind),
                    "reference_price": round(i.reference_price, 4),
                    "reasoning": i.reason,
                }
                for i in outcome.intents
            ],
            "rejections": outcome.rejections,
            "signals": [
                {
                    "strategy": sig.strategy,
                    "symbol": sig.symbol,
                    "action": str(sig.action),
                    "shares": sig.shares,
                }
                for sig in outcome.signals
            ],
        }

    @handles(GetStatus)
    async def status(self, _msg: GetStatus) -> dict[str, Any]:
        last = await self._d.journal.last()
        running = self._running if self._task is not None and not self._task.done() else None
        return {
            "running": running.run_id if running else None,
            "last_cycle": None
            if last is None
            else {
                "run_id": last.run_id,
                "asof": str(last.asof),
                "status": last.status,
                "step": last.step,
                "reason": last.reason,
                "finished_at": last.finished_at.isoformat() if last.finished_at else None,
            },
        }

    @handles(ApplySettings)
    async def apply(self, msg: ApplySettings) -> None:
        self._strategies = msg.settings.strategies
        self._risk = msg.settings.cycle_risk

    # ------------------------------------------------------------ the cycle

    async def _completed_cycle(self, asof: dt.date) -> CycleRecord | None:
        """The first cycle that completed trading date ``asof``, if one did."""
        for record in await self._d.journal.for_asof(asof):
            if record.status == "completed" and record.finished_at is not None:
                return record
        return None

    def _when(self, at: dt.datetime) -> str:
        """``at`` in the exchange's local time, for people (e.g. 2026-11-23 09:48:02 EST)."""
        return f"{at.astimezone(self._d.calendar.tz):%Y-%m-%d %H:%M:%S %Z}"

    def _day_done(self, done: CycleRecord) -> str:
        """Why entries are refused on a date whose cycle ``done`` completed."""
        assert done.finished_at is not None
        return (
            f"trading date {done.asof} already traded by cycle {done.run_id}"
            f" (completed {self._when(done.finished_at)}): exits and stop checks only,"
            " no second round of entries (--force --allow-entries allows one)"
        )

    async def _run(self, msg: StartCycle, entries_blocked: str | None = None) -> CycleCompleted:
        started = time.perf_counter()
        metrics = self._d.metrics
        if metrics is not None:
            metrics.cycle_running.set(1)
        try:
            outcome = await Cycle(
                self._d, self._strategies, self._risk, msg, entries_blocked=entries_blocked
            ).run()
        except asyncio.CancelledError:
            await self._d.journal.finish(
                msg.run_id, "failed", "cancelled at shutdown", self._d.clock.now()
            )
            raise
        except Exception as exc:
            log.exception("cycle_failed", run_id=msg.run_id)
            outcome = Outcome(CycleStatus.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            if metrics is not None:
                metrics.cycle_running.set(0)
        done = await self._finish(msg, outcome, time.perf_counter() - started)
        self._results[msg.run_id] = done
        if len(self._results) > 50:
            self._results.pop(next(iter(self._results)))
        return done

    async def _finish(self, msg: StartCycle, outcome: Outcome, elapsed: float) -> CycleCompleted:
        d = self._d
        await d.journal.finish(msg.run_id, str(outcome.status), outcome.reason, d.clock.now())
        done = CycleCompleted(
            msg.run_id,
            msg.asof,
            outcome.status,
            outcome.reason,
            outcome.raw,
            elapsed,
            details=outcome.details,
        )
        if outcome.details:
            await d.state.set(f"cycle_details:{msg.run_id}", outcome.details, d.clock.now())
        log_fn = log.info if outcome.status is CycleStatus.COMPLETED else log.warning
        log_fn(
            "cycle_finished",
            run_id=msg.run_id,
            asof=str(msg.asof),
            status=str(outcome.status),
            reason=outcome.reason,
            orders=len(outcome.results),
            seconds=round(elapsed, 3),
        )
        if d.events is not None:
            await d.events.write(
                msg.run_id,
                EventType.CYCLE_COMPLETED,
                d.clock.now(),
                status=str(outcome.status),
                reason=outcome.reason,
                raw_signals=outcome.raw,
            )
        if d.metrics is not None:
            m = d.metrics
            m.cycles.labels(status=str(outcome.status)).inc()
            m.cycle_duration.labels(status=str(outcome.status)).observe(elapsed)
            if outcome.status is CycleStatus.COMPLETED:
                m.last_cycle_success.set(d.clock.now().timestamp())
        if self._publish is not None:
            await self._publish(done)
        return done
