"""One-for-one supervision with exponential backoff and a restart budget.

- Actors start in dependency order, each with a readiness handshake
  (``await tg.start(...)`` returns once the actor has run ``on_start`` and
  takes messages). ``run`` signals its own readiness only when all have.
- A handler exception restarts *that* actor (a fresh instance) after
  ``backoff * 2**(n-1)`` seconds, capped; the others are untouched. The
  message that killed it is logged and reported (``ActorCrashed``), never
  replayed. The delay is a ``daemon.retry.Backoff``; the restart loop is not a
  ``retry`` call, since its budget counts crashes within a window, not attempts.
- More than ``max_restarts`` crashes within ``window_s`` escalates: the actor
  gives up (FAILED; asks fail with ``ActorStopped``), ``on_escalate`` is
  called (the risk side turns it into the ``actor_crash_loop`` kill switch)
  and the process stays up so an operator can look.
- ``FatalError`` (the store is gone) is not restarted: it propagates and the
  process exits non-zero, so systemd's ``Restart=on-failure`` takes over.
- ``stop()`` stops actors in reverse start order; each gets a shielded,
  time-limited ``on_stop``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from anyio.abc import TaskStatus

from daemon.actor import (
    Actor,
    ActorCell,
    ActorObserver,
    ActorRef,
    ActorState,
    HandlerCrashed,
    Trigger,
)
from daemon.clock import Clock, WallClock
from daemon.errors import ActorStopped, AskTimeout, FatalError
from daemon.messages import ActorCrashed, ActorStateChanged, Heartbeat
from daemon.retry import Backoff

log = structlog.get_logger()

Event = ActorCrashed | ActorStateChanged
EventSink = Callable[[Event], None]
EscalationHook = Callable[[str, BaseException], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OneForOne:
    """Restart only the actor that crashed, within a budget."""

    max_restarts: int = 5
    window_s: float = 60.0
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    stop_timeout_s: float = 5.0
    restart_backoff: Backoff = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built (and validated) once, so a bad setting fails here and not at the first crash.
        policy = Backoff(base_s=self.backoff_s, cap_s=self.backoff_max_s)
        object.__setattr__(self, "restart_backoff", policy)

    def backoff(self, attempt: int) -> float:
        """Delay before restart number ``attempt`` (1-based): exponential, capped."""
        return self.restart_backoff.delay(max(1, attempt))


@dataclass(frozen=True, slots=True)
class ActorSpec:
    name: str
    factory: Callable[[], Actor]
    depends_on: tuple[str, ...] = ()
    mailbox_size: int = 1000


class Supervisor:
    """Owns the actor cells. ``add`` returns a ref at once, so factories can capture refs."""

    def __init__(
        self,
        strategy: OneForOne | None = None,
        *,
        clock: Clock | None = None,
        ask_timeout: float = 30.0,
        observer: ActorObserver | None = None,
        on_event: EventSink | None = None,
        on_escalate: EscalationHook | None = None,
    ) -> None:
        self.strategy = strategy or OneForOne()
        self.clock: Clock = clock or WallClock()
        self.ask_timeout = ask_timeout
        self.observer = observer
        self.on_event = on_event
        self.on_escalate = on_escalate
        self._specs: dict[str, ActorSpec] = {}
        self._cells: dict[str, ActorCell] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._done: dict[str, anyio.Event] = {}
        self._crash_times: dict[str, deque[float]] = {}
        self._order: list[str] = []
        self._tg_scope: anyio.CancelScope | None = None
        self._heartbeat_seq = 0

    # ------------------------------------------------------------ wiring

    def add(
        self,
        name: str,
        factory: Callable[[], Actor],
        *,
        depends_on: Iterable[str] = (),
        mailbox_size: int = 1000,
    ) -> ActorRef:
        if name in self._specs:
            raise ValueError(f"actor {name!r} is already registered")
        spec = ActorSpec(name, factory, tuple(depends_on), mailbox_size)
        self._specs[name] = spec
        cell = ActorCell(
            name,
            factory,
            mailbox_size=mailbox_size,
            ask_timeout=self.ask_timeout,
            observer=_Relay(self),
        )
        self._cells[name] = cell
        self._crash_times[name] = deque()
        return cell.ref

    def ref(self, name: str) -> ActorRef:
        try:
            return self._cells[name].ref
        except KeyError:
            raise KeyError(f"no actor named {name!r}") from None

    def names(self) -> list[str]:
        return list(self._specs)

    def cell(self, name: str) -> ActorCell:
        return self._cells[name]

    def start_order(self) -> list[str]:
        """Dependency order (topological, stable by registration); cycles are refused."""
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                raise ValueError(f"actor dependency cycle: {' -> '.join((*path, name))}")
            if name not in self._specs:
                raise ValueError(f"{path[-1]} depends on unknown actor {name!r}")
            state[name] = 1
            for dep in self._specs[name].depends_on:
                visit(dep, (*path, name))
            state[name] = 2
            order.append(name)

        for name in self._specs:
            visit(name, ())
        return order

    # ------------------------------------------------------------ running

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start every actor in dependency order, then supervise until cancelled."""
        order = self.start_order()
        try:
            async with anyio.create_task_group() as tg:
                self._tg_scope = tg.cancel_scope
                for name in order:
                    self._scopes[name] = anyio.CancelScope()
                    self._done[name] = anyio.Event()
                    await tg.start(self._supervise, name)
                    self._order.append(name)
                task_status.started()
        finally:
            self._tg_scope = None

    async def stop(self) -> None:
        """Stop actors in reverse start order, each completely before the next."""
        for name in reversed(self._order):
            scope = self._scopes.get(name)
            if scope is not None:
                scope.cancel()
                await self._done[name].wait()

    async def _supervise(self, name: str, *, task_status: TaskStatus[None]) -> None:
        cell = self._cells[name]
        ready = False
        try:
            with self._scopes[name]:
                while True:
                    try:
                        cell.fire(Trigger.START)
                        instance = await cell.start_instance()
                        cell.fire(Trigger.STARTED)
                        if not ready:
                            ready = True
                            task_status.started()
                        await cell.serve(instance)
                    except FatalError:
                        raise
                    except HandlerCrashed as crash:
                        gave_up = await self._crashed(cell, crash.message_type, crash.error)
                    except Exception as exc:  # on_start failed
                        gave_up = await self._crashed(cell, "on_start", exc)
                    else:  # pragma: no cover - serve() only ends by raising
                        continue
                    if gave_up:
                        if not ready:
                            ready = True
                            task_status.started()
                        await anyio.sleep_forever()
                    await self.clock.sleep(self.strategy.backoff(len(self._crash_times[name])))
        finally:
            with anyio.CancelScope(shield=True):
                await self._finish(cell)

    async def _crashed(self, cell: ActorCell, message_type: str, error: BaseException) -> bool:
        """Record a crash; True when the restart budget is spent (escalated)."""
        now = self.clock.monotonic()
        times = self._crash_times[cell.name]
        times.append(now)
        while times and now - times[0] > self.strategy.window_s:
            times.popleft()
        cell.restarts += 1
        await cell.stop_instance(self.strategy.stop_timeout_s)
        cell.fire(Trigger.CRASH)
        log.error(
            "actor_crashed",
            actor=cell.name,
            message_type=message_type,
            error_type=type(error).__name__,
            error=str(error),
            restarts_in_window=len(times),
            exc_info=error,
        )
        self._emit(
            ActorCrashed(
                actor=cell.name,
                message_type=message_type,
                error_type=type(error).__name__,
                error=str(error),
                restarts_in_window=len(times),
                at=self.clock.now(),
            )
        )
        if len(times) <= self.strategy.max_restarts:
            return False
        cell.fire(Trigger.GIVE_UP)
        cell.mailbox.close()
        log.critical(
            "actor_crash_loop",
            actor=cell.name,
            restarts=len(times),
            window_s=self.strategy.window_s,
        )
        if self.on_escalate is not None:
            try:
                await self.on_escalate(cell.name, error)
            except Exception:
                log.exception("escalation_hook_failed", actor=cell.name)
        return True

    async def _finish(self, cell: ActorCell) -> None:
        if cell.state is not ActorState.STOPPED:
            if cell.state is not ActorState.STOPPING:
                cell.fire(Trigger.STOP)
            cell.mailbox.close()
            await cell.stop_instance(self.strategy.stop_timeout_s)
            cell.fire(Trigger.STOPPED)
        done = self._done.get(cell.name)
        if done is not None:
            done.set()

    # ------------------------------------------------------------ health

    def states(self) -> dict[str, ActorState]:
        return {name: cell.state for name, cell in self._cells.items()}

    def status(self) -> list[dict[str, Any]]:
        """Per-actor facts for ``tradectl status``."""
        rows = []
        for name in self._order or list(self._cells):
            cell = self._cells[name]
            rows.append(
                {
                    "actor": name,
                    "state": str(cell.state),
                    "mailbox": cell.mailbox.depth,
                    "handled": cell.handled,
                    "restarts": cell.restarts,
                    "busy_with": cell.current_message,
                }
            )
        return rows

    async def heartbeat(self, timeout: float) -> dict[str, bool]:
        """Send a heartbeat through every running actor's mailbox; who answered in time.

        Actors that gave up (FAILED) or are between restarts are not asked: they
        are known broken, not wedged, and the kill switch already speaks for them.
        """
        self._heartbeat_seq += 1
        seq = self._heartbeat_seq
        running = {n: c for n, c in self._cells.items() if c.state is ActorState.RUNNING}

        async def one(cell: ActorCell) -> bool:
            try:
                return bool(await cell.ref.ask(Heartbeat(seq), timeout=timeout) == seq)
            except (AskTimeout, ActorStopped):
                return False

        results = await asyncio.gather(*(one(c) for c in running.values()))
        return dict(zip(running, results, strict=True))

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("supervisor_event_sink_failed")


class _Relay:
    """Forwards cell observations to the supervisor's observer and event sink."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor

    def state_changed(self, actor: str, old: ActorState, new: ActorState) -> None:
        if self._sup.observer is not None:
            self._sup.observer.state_changed(actor, old, new)
        self._sup._emit(
            ActorStateChanged(
                actor=actor, old=str(old), new=str(new), at=self._sup.clock.now().astimezone(dt.UTC)
            )
        )

    def message_handled(self, actor: str, outcome: str, seconds: float) -> None:
        if self._sup.observer is not None:
            self._sup.observer.message_handled(actor, outcome, seconds)
