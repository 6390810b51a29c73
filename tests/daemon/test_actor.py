"""Actors and one-for-one supervision."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import anyio
import pytest

from daemon.actor import (
    LIFECYCLE,
    Actor,
    ActorCell,
    ActorState,
    IllegalTransition,
    Trigger,
    UnhandledMessage,
    handles,
)
from daemon.clock import SimClock
from daemon.errors import ActorStopped, AskTimeout, FatalError, Refusal
from daemon.messages import ActorCrashed, ActorStateChanged
from daemon.supervisor import OneForOne, Supervisor


@dataclass(frozen=True)
class Add:
    n: int


@dataclass(frozen=True)
class Get:
    pass


@dataclass(frozen=True)
class Boom:
    pass


@dataclass(frozen=True)
class Block:
    release: asyncio.Event


@dataclass(frozen=True)
class Fatal:
    pass


class Counter(Actor):
    starts = 0

    def __init__(self) -> None:
        self.total = 0

    async def on_start(self) -> None:
        type(self).starts += 1

    @handles(Add)
    async def add(self, msg: Add) -> int:
        self.total += msg.n
        return self.total

    @handles(Get)
    async def get(self, _msg: Get) -> int:
        return self.total

    @handles(Boom)
    async def boom(self, _msg: Boom) -> None:
        raise RuntimeError("boom")

    @handles(Block)
    async def block(self, msg: Block) -> None:
        await msg.release.wait()

    @handles(Fatal)
    async def fatal(self, _msg: Fatal) -> None:
        raise FatalError("store gone")


def fast(**kw: float) -> OneForOne:
    return OneForOne(**{"backoff_s": 0.0, "backoff_max_s": 0.0, **kw})  # type: ignore[arg-type]


def clock() -> SimClock:
    return SimClock(dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC), auto_advance=True)


async def test_tell_and_ask_round_trip() -> None:
    """A told message is handled in order before a later ask's reply."""
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("counter", Counter)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await ref.tell(Add(2))
        assert await ref.ask(Add(3)) == 5
        await sup.stop()


async def test_crash_restarts_only_that_actor_with_fresh_state() -> None:
    """A handler exception restarts that actor (fresh instance); the other keeps its state."""
    events: list[object] = []
    sup = Supervisor(fast(), clock=clock(), on_event=events.append)
    a = sup.add("a", Counter)
    b = sup.add("b", Counter)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await a.ask(Add(5))
        await b.ask(Add(7))
        with pytest.raises(RuntimeError, match="boom"):
            await a.ask(Boom())
        assert await a.ask(Get()) == 0  # fresh instance
        assert await b.ask(Get()) == 7  # untouched
        assert sup.cell("a").restarts == 1
        assert sup.cell("b").restarts == 0
        crashed = [e for e in events if isinstance(e, ActorCrashed)]
        assert [(c.actor, c.message_type, c.error_type) for c in crashed] == [
            ("a", "Boom", "RuntimeError")
        ]
        await sup.stop()


async def test_poison_message_is_not_replayed() -> None:
    """After a crash the next message handled is the one after the poison message."""
    Counter.starts = 0
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("c", Counter)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await ref.tell(Boom())
        await ref.tell(Add(1))
        assert await ref.ask(Get()) == 1
        assert Counter.starts == 2
        await sup.stop()


async def test_crash_loop_escalates_and_process_stays_up() -> None:
    """More than max_restarts crashes in the window gives up and calls the escalation hook."""
    escalated: list[tuple[str, str]] = []

    async def escalate(actor: str, error: BaseException) -> None:
        escalated.append((actor, str(error)))

    sup = Supervisor(fast(max_restarts=2, window_s=60), clock=clock(), on_escalate=escalate)
    bad = sup.add("bad", Counter)
    good = sup.add("good", Counter)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        for _ in range(3):
            with pytest.raises(RuntimeError):
                await bad.ask(Boom())
        assert escalated == [("bad", "boom")]
        assert sup.states()["bad"] is ActorState.FAILED
        with pytest.raises(ActorStopped):
            await bad.ask(Get())
        assert await good.ask(Add(1)) == 1
        await sup.stop()
    assert sup.states()["bad"] is ActorState.STOPPED


async def test_restart_backoff_is_exponential_and_capped() -> None:
    """Backoff doubles per restart in the window and stops at the cap."""
    policy = OneForOne(backoff_s=0.5, backoff_max_s=3.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_backoff_waits_on_the_injected_clock() -> None:
    """A restart waits for the supervisor's clock, not for wall time."""
    sim = SimClock(dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC))
    sup = Supervisor(OneForOne(backoff_s=10, backoff_max_s=10), clock=sim)
    ref = sup.add("c", Counter)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await ref.tell(Boom())
        for _ in range(100):
            if sim.pending:
                break
            await asyncio.sleep(0)
        assert sim.pending == 1
        assert sup.states()["c"] is ActorState.RESTARTING
        sim.advance(10)
        assert await ref.ask(Get()) == 0
        await sup.stop()


async def test_crashes_outside_the_window_do_not_escalate() -> None:
    """Crashes spread wider than the window never exhaust the budget."""
    sim = SimClock(dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC), auto_advance=True)
    escalated: list[str] = []

    async def escalate(actor: str, _e: BaseException) -> None:
        escalated.append(actor)

    sup = Supervisor(
        OneForOne(max_restarts=1, window_s=5, backoff_s=10, backoff_max_s=10),
        clock=sim,
        on_escalate=escalate,
    )
    ref = sup.add("c", Counter)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        for _ in range(4):
            with pytest.raises(RuntimeError):
                await ref.ask(Boom())
            await ref.ask(Get())  # restarted after a 10 s backoff > window
        assert escalated == []
        await sup.stop()


async def test_ask_timeout_names_actor_and_message() -> None:
    """An ask without a reply in time raises AskTimeout naming the actor and message."""
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("slow", Counter)
    release = asyncio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await ref.tell(Block(release))
        with pytest.raises(AskTimeout, match=r"slow did not answer Get within 0.05s"):
            await ref.ask(Get(), timeout=0.05)
        release.set()
        assert await ref.ask(Get()) == 0
        await sup.stop()


async def test_pending_asks_fail_when_actor_stops() -> None:
    """Asks waiting in the mailbox fail with ActorStopped when the actor stops."""
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("c", Counter)
    release = asyncio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await ref.tell(Block(release))
        pending = asyncio.ensure_future(ref.ask(Get(), timeout=30))
        await asyncio.sleep(0)
        await sup.stop()
        with pytest.raises(ActorStopped):
            await pending
    with pytest.raises(ActorStopped):
        await ref.tell(Add(1))


async def test_tell_applies_backpressure_when_mailbox_full() -> None:
    """A full mailbox makes tell wait (no drop) until the actor takes a message."""
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("c", Counter, mailbox_size=1)
    release = asyncio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await ref.tell(Block(release))
        await asyncio.sleep(0)  # the actor takes Block and blocks
        await ref.tell(Add(1))  # fills the mailbox
        waiting = asyncio.ensure_future(ref.tell(Add(2)))
        await asyncio.sleep(0)
        assert not waiting.done()
        release.set()
        await waiting
        assert await ref.ask(Get()) == 3
        await sup.stop()


async def test_unhandled_message_answers_error_without_restart() -> None:
    """A message with no handler is an error reply, not a crash."""
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("c", Counter)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        with pytest.raises(UnhandledMessage, match="no handler for str"):
            await ref.ask("hello")
        assert sup.cell("c").restarts == 0
        await sup.stop()


async def test_fatal_error_is_not_restarted_and_propagates() -> None:
    """A FatalError leaves the supervisor (the process exits, systemd restarts it)."""
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("c", Counter)

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await ref.tell(Fatal())
            await anyio.sleep_forever()

    with pytest.raises(BaseExceptionGroup) as info:
        await run()
    assert info.group_contains(FatalError)


async def test_actors_start_in_dependency_order_after_ready() -> None:
    """Actors start dependencies first; run() is ready only when all are running."""
    started: list[str] = []

    def factory(name: str) -> type[Actor]:
        class Named(Actor):
            async def on_start(self) -> None:
                started.append(name)

        return Named

    sup = Supervisor(fast(), clock=clock())
    sup.add("risk", factory("risk"), depends_on=["data", "orders"])
    sup.add("orders", factory("orders"), depends_on=["store"])
    sup.add("data", factory("data"))
    sup.add("store", factory("store"))
    assert sup.start_order() == ["data", "store", "orders", "risk"]
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        assert started == ["data", "store", "orders", "risk"]
        assert set(sup.states().values()) == {ActorState.RUNNING}
        await sup.stop()


async def test_dependency_cycle_is_refused() -> None:
    """A dependency cycle is a clear error naming the path."""
    sup = Supervisor(fast(), clock=clock())
    sup.add("a", Counter, depends_on=["b"])
    sup.add("b", Counter, depends_on=["a"])
    with pytest.raises(ValueError, match="a -> b -> a"):
        sup.start_order()


async def test_heartbeat_reports_a_wedged_actor() -> None:
    """A heartbeat goes through the mailbox: a blocked actor does not answer it."""
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("wedged", Counter)
    sup.add("fine", Counter)
    release = asyncio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        assert await sup.heartbeat(1.0) == {"wedged": True, "fine": True}
        await ref.tell(Block(release))
        assert await sup.heartbeat(0.05) == {"wedged": False, "fine": True}
        release.set()
        await sup.stop()


async def test_every_transition_is_published() -> None:
    """State changes follow the lifecycle table and are published as events."""
    events: list[object] = []
    sup = Supervisor(fast(), clock=clock(), on_event=events.append)
    ref = sup.add("c", Counter)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        with pytest.raises(RuntimeError):
            await ref.ask(Boom())
        await ref.ask(Get())
        await sup.stop()
    moves = [(e.old, e.new) for e in events if isinstance(e, ActorStateChanged)]
    assert moves == [
        ("new", "starting"),
        ("starting", "running"),
        ("running", "restarting"),
        ("restarting", "starting"),
        ("starting", "running"),
        ("running", "stopping"),
        ("stopping", "stopped"),
    ]
    for old, new in moves:
        assert ActorState(new) in LIFECYCLE.values()
        assert any(k[0] == ActorState(old) for k in LIFECYCLE)


def test_illegal_transition_is_refused() -> None:
    """A trigger the table does not allow raises instead of corrupting state."""
    cell = ActorCell("x", Counter)
    with pytest.raises(IllegalTransition, match="started is not allowed in new"):
        cell.fire(Trigger.STARTED)


@dataclass(frozen=True)
class Refuse:
    pass


class Picky(Counter):
    @handles(Refuse)
    async def refuse(self, _msg: Refuse) -> None:
        raise Refusal("not now")


async def test_refusal_answers_without_restart() -> None:
    """A Refusal reaches the asker; the actor keeps its state and is not restarted."""
    sup = Supervisor(fast(), clock=clock())
    ref = sup.add("picky", Picky)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await ref.ask(Add(4))
        with pytest.raises(Refusal, match="not now"):
            await ref.ask(Refuse())
        assert await ref.ask(Get()) == 4
        assert sup.cell("picky").restarts == 0
        await sup.stop()
