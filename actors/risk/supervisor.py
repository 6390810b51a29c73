"""``RiskSupervisor``: owns the daily cycle and runs its gates in the reference order.

Built so far (issues 2-3): kill switches -> market data (validated snapshot,
halt on stale or bad data) -> every enabled strategy, concurrently -> signals
persisted, raw funnel counts, rejections from data validation -> journal and
``CycleCompleted``. Still to come (issue 4), in this order between them:
stop-loss exits, the reconciliation gate, the daily-loss breaker, the regime,
correlation and heat/cash filters, order intents and results.

A cycle runs in a task of its own, so the actor keeps serving its mailbox
(status, heartbeats) while a cycle runs; a second ``StartCycle`` while one is
running is refused, not queued behind it. Every cycle is journaled
(``cycles``) before it does anything, so a crash leaves a record that the
next start sees.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from actors.messages import (
    ApplySettings,
    CycleCompleted,
    CycleStatus,
    DataUnavailable,
    FetchSnapshot,
    GenerateSignals,
    GetKillSwitches,
    GetStatus,
    MarketSnapshot,
    Signals,
    StartCycle,
)
from actors.risk.kill_switch import disabled_strategies
from actors.risk.switches import SwitchView, entries_blocked
from actors.strategies.params import StrategiesParams
from daemon.actor import Actor, ActorRef, handles
from daemon.clock import Clock
from daemon.errors import ActorStopped, AskTimeout, Refusal
from daemon.logging import EventLog, EventType
from daemon.metrics import Metrics
from daemon.store import CycleJournal, CycleStep
from daemon.store.signals import SignalStore

log = structlog.get_logger()
Publish = Callable[[object], Awaitable[None]]


class CycleBusy(Refusal):
    """A cycle is already running; the new request is refused (names the running one)."""


@dataclass(frozen=True, slots=True)
class CycleStarted:
    run_id: str
    asof: dt.date


@dataclass(frozen=True, slots=True)
class WaitCycle:
    """Ask for the outcome of ``run_id`` (waits while it is running)."""

    run_id: str


class RiskSupervisor(Actor):
    def __init__(
        self,
        *,
        clock: Clock,
        journal: CycleJournal,
        signals: SignalStore,
        data_feed: ActorRef,
        kill_switches: ActorRef,
        strategies: Mapping[str, ActorRef],
        params: StrategiesParams,
        events: EventLog | None = None,
        metrics: Metrics | None = None,
        publish: Publish | None = None,
        data_timeout_s: float = 300.0,
        strategy_timeout_s: float = 300.0,
    ) -> None:
        self._clock = clock
        self._journal = journal
        self._signals = signals
        self._data_feed = data_feed
        self._kill_switches = kill_switches
        self._strategies = dict(strategies)
        self._params = params
        self._events = events
        self._metrics = metrics
        self._publish = publish
        self._data_timeout = data_timeout_s
        self._strategy_timeout = strategy_timeout_s
        self._task: asyncio.Task[CycleCompleted] | None = None
        self._running: StartCycle | None = None
        self._results: dict[str, CycleCompleted] = {}
        self._strategy_ids: dict[str, int] = {}

    async def on_start(self) -> None:
        for name, params in self._params.items():
            self._strategy_ids[name] = await self._signals.ensure_strategy(
                name, name.replace("_", " "), params.capital
            )
        for record in await self._journal.unfinished():
            # A crash interrupted this cycle. Nothing was submitted yet in this
            # build, so it is closed as failed; today's cycle is then re-run by
            # the scheduler's catch-up (and orders, from issue 4, are
            # idempotent by their deterministic intent ids).
            await self._journal.finish(
                record.run_id, "failed", "interrupted by a restart", self._clock.now()
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
        self._running = msg
        self._task = asyncio.create_task(self._run_cycle(msg), name=f"cycle-{msg.run_id}")
        return CycleStarted(msg.run_id, msg.asof)

    @handles(WaitCycle)
    async def wait_cycle(self, msg: WaitCycle) -> CycleCompleted:
        """Await a running cycle's outcome (the handler waits; run it as an ask)."""
        if msg.run_id in self._results:
            return self._results[msg.run_id]
        task = self._task
        if task is None or self._running is None or self._running.run_id != msg.run_id:
            raise Refusal(f"no cycle {msg.run_id!r} in this process")
        return await asyncio.shield(task)

    @handles(GetStatus)
    async def status(self, _msg: GetStatus) -> dict[str, Any]:
        last = await self._journal.last()
        return {
            "running": self._running.run_id
            if self._running and self._task and not self._task.done()
            else None,
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
        self._params = msg.settings.strategies

    # ------------------------------------------------------------ the cycle

    async def _run_cycle(self, msg: StartCycle) -> CycleCompleted:
        started = time.perf_counter()
        if self._metrics is not None:
            self._metrics.cycle_running.set(1)
        try:
            result = await self._cycle(msg, started)
        except asyncio.CancelledError:
            await self._journal.finish(
                msg.run_id, "failed", "cancelled at shutdown", self._clock.now()
            )
            raise
        except Exception as exc:
            log.exception("cycle_failed", run_id=msg.run_id)
            result = await self._finish(
                msg, CycleStatus.FAILED, f"{type(exc).__name__}: {exc}", {}, started
            )
        finally:
            if self._metrics is not None:
                self._metrics.cycle_running.set(0)
        self._results[msg.run_id] = result
        if len(self._results) > 50:
            self._results.pop(next(iter(self._results)))
        return result

    async def _cycle(self, msg: StartCycle, started: float) -> CycleCompleted:
        now = self._clock.now()
        await self._journal.begin(msg.run_id, msg.asof, str(msg.trigger), now)
        await self._event(
            msg.run_id, EventType.CYCLE_STARTED, asof=str(msg.asof), trigger=str(msg.trigger)
        )
        log.info("cycle_started", run_id=msg.run_id, asof=str(msg.asof), trigger=str(msg.trigger))

        # 1. kill switches (exits stay possible once orders exist: issue 4)
        switches: list[SwitchView] = await self._kill_switches.ask(GetKillSwitches())
        blocking = entries_blocked(switches)
        if blocking:
            reason = "; ".join(f"{s.name}: {s.reason}" for s in blocking)
            return await self._finish(
                msg, CycleStatus.HALTED, f"kill switch active: {reason}", {}, started
            )

        # 2. market data
        answer = await self._data_feed.ask(
            FetchSnapshot(msg.run_id, msg.asof), timeout=self._data_timeout
        )
        if answer.rejected:
            await self._signals.log_rejections(
                msg.run_id,
                "DATA",
                [(r.symbol, r.reason_code, {"details": r.details}) for r in answer.rejected],
            )
            for r in answer.rejected:
                await self._event(
                    msg.run_id,
                    EventType.DATA_REJECTED,
                    symbol=r.symbol,
                    reason=r.reason_code,
                    details=r.details,
                )
        if isinstance(answer, DataUnavailable):
            return await self._finish(
                msg, CycleStatus.HALTED, f"no trading on bad data: {answer.reason}", {}, started
            )
        snapshot: MarketSnapshot = answer
        await self._journal.step(msg.run_id, CycleStep.DATA, self._clock.now())

        # 3. signals from every enabled strategy, concurrently
        disabled = disabled_strategies(switches)
        enabled = [
            name
            for name, p in self._params.items()
            if p.enabled and name not in disabled and name in self._strategies
        ]
        skipped = sorted(set(self._strategies) - set(enabled))
        results = await asyncio.gather(*(self._ask_strategy(name, snapshot) for name in enabled))
        raw: dict[str, int] = {}
        failures: list[str] = []
        for result in results:
            raw[result.strategy] = len(result.signals)
            if result.error is not None:
                failures.append(f"{result.strategy}: {result.error}")
                await self._event(
                    msg.run_id, EventType.ERROR, strategy=result.strategy, error=result.error
                )
            await self._record(msg, result)
        await self._journal.step(msg.run_id, CycleStep.SIGNALS, self._clock.now())
        log.info(
            "signals_generated",
            run_id=msg.run_id,
            asof=str(msg.asof),
            raw_signals=raw,
            strategies_skipped=skipped,
            strategies_failed=len(failures),
        )
        status = CycleStatus.COMPLETED
        reason = "signals generated; order handling arrives with the risk/execution gates"
        if failures and len(failures) == len(enabled):
            status, reason = CycleStatus.FAILED, "every strategy failed: " + "; ".join(failures)
        elif failures:
            reason = "some strategies failed: " + "; ".join(failures)
        return await self._finish(msg, status, reason, raw, started)

    async def _ask_strategy(self, name: str, snapshot: MarketSnapshot) -> Signals:
        try:
            result: Signals = await self._strategies[name].ask(
                GenerateSignals(snapshot, positions=tuple(await self._positions(name))),
                timeout=self._strategy_timeout,
            )
        except (AskTimeout, ActorStopped) as exc:
            return Signals(snapshot.run_id, snapshot.asof, name, (), error=str(exc))
        except Exception as exc:  # the strategy actor crashed on it (and is restarting)
            return Signals(
                snapshot.run_id, snapshot.asof, name, (), error=f"{type(exc).__name__}: {exc}"
            )
        return result

    async def _positions(self, name: str) -> list[Any]:
        strategy_id = self._strategy_ids.get(name)
        return [] if strategy_id is None else await self._signals.held_positions(strategy_id)

    async def _record(self, msg: StartCycle, result: Signals) -> None:
        strategy_id = self._strategy_ids[result.strategy]
        await self._signals.record_signals(msg.run_id, msg.asof, strategy_id, result.signals)
        await self._signals.save_funnel(
            msg.run_id, msg.asof, strategy_id, result.strategy, {"raw": len(result.signals)}
        )
        if self._metrics is not None:
            self._metrics.signals.labels(strategy=result.strategy, stage="raw").set(
                len(result.signals)
            )
        for sig in result.signals:
            await self._event(
                msg.run_id,
                EventType.SIGNAL_GENERATED,
                strategy=result.strategy,
                symbol=sig.symbol,
                action=str(sig.action),
                confidence=round(sig.confidence, 4),
                shares=sig.shares,
                reasoning=sig.reasoning,
            )

    async def _finish(
        self,
        msg: StartCycle,
        status: CycleStatus,
        reason: str,
        raw: dict[str, int],
        started: float,
    ) -> CycleCompleted:
        elapsed = time.perf_counter() - started
        await self._journal.finish(msg.run_id, str(status), reason, self._clock.now())
        done = CycleCompleted(msg.run_id, msg.asof, status, reason, raw, elapsed)
        log_fn = log.info if status is CycleStatus.COMPLETED else log.warning
        log_fn(
            "cycle_finished",
            run_id=msg.run_id,
            asof=str(msg.asof),
            status=str(status),
            reason=reason,
            seconds=round(elapsed, 3),
        )
        await self._event(
            msg.run_id,
            EventType.CYCLE_COMPLETED,
            status=str(status),
            reason=reason,
            raw_signals=raw,
        )
        if self._metrics is not None:
            self._metrics.cycles.labels(status=str(status)).inc()
            self._metrics.cycle_duration.labels(status=str(status)).observe(elapsed)
            if status is CycleStatus.COMPLETED:
                self._metrics.last_cycle_success.set(self._clock.now().timestamp())
        if self._publish is not None:
            await self._publish(done)
        return done

    async def _event(self, run_id: str, event: EventType, **fields: Any) -> None:
        if self._events is not None:
            await self._events.write(run_id, event, self._clock.now(), **fields)
