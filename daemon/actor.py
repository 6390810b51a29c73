"""Actors: a bounded mailbox, handlers per message type, a lifecycle written down once.

Lifecycle (``LIFECYCLE`` below is the single source of truth; every
transition is published as ``ActorStateChanged``)::

              start            started
      NEW ─────────► STARTING ─────────► RUNNING
                        ▲  │                │ │
                  start │  │ crash     crash│ │stop
                        │  ▼                ▼ │
                     RESTARTING ◄───────────┘ │
                        │  │ give_up          │
                   stop │  ▼                  ▼
                        │ FAILED ──stop──► STOPPING ──stopped──► STOPPED
                        └────────────────────►┘

- ``ActorRef.tell`` awaits while the mailbox is full (backpressure, never a
  silent drop). ``ActorRef.ask`` waits for the reply with a timeout.
- A handler that raises ``Refusal`` answers "no": the asker gets the error,
  the actor carries on. Any other exception crashes the actor: the supervisor builds a fresh
  instance (state is reloaded from the store in ``on_start``) after a backoff.
  The message that killed it is reported, never replayed; an ask that carried
  it gets the exception.
- When an actor stops or gives up, every ask still waiting in its mailbox, and
  every later ask or tell, fails with ``ActorStopped``.
- ``Heartbeat`` is answered by the runtime from the mailbox, in order with
  other messages: a reply proves the actor is not wedged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

import anyio
import structlog

from daemon.errors import ActorStopped, AskTimeout, FatalError, Refusal
from daemon.messages import Heartbeat


class ActorState(StrEnum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Trigger(StrEnum):
    START = "start"
    STARTED = "started"
    CRASH = "crash"
    GIVE_UP = "give_up"
    STOP = "stop"
    STOPPED = "stopped"


S, T = ActorState, Trigger
LIFECYCLE: dict[tuple[ActorState, Trigger], ActorState] = {
    (S.NEW, T.START): S.STARTING,
    (S.STARTING, T.STARTED): S.RUNNING,
    (S.STARTING, T.CRASH): S.RESTARTING,
    (S.RUNNING, T.CRASH): S.RESTARTING,
    (S.RESTARTING, T.START): S.STARTING,
    (S.RESTARTING, T.GIVE_UP): S.FAILED,
    (S.NEW, T.STOP): S.STOPPING,
    (S.STARTING, T.STOP): S.STOPPING,
    (S.RUNNING, T.STOP): S.STOPPING,
    (S.RESTARTING, T.STOP): S.STOPPING,
    (S.FAILED, T.STOP): S.STOPPING,
    (S.STOPPING, T.STOPPED): S.STOPPED,
}
del S, T


class IllegalTransition(RuntimeError):
    """A lifecycle trigger that the state table does not allow (a runtime bug)."""


class HandlerCrashed(Exception):
    """A handler raised: carries the type of the message that killed the instance."""

    def __init__(self, actor: str, message_type: str, error: Exception) -> None:
        super().__init__(f"{actor} crashed handling {message_type}: {error!r}")
        self.message_type = message_type
        self.error = error


class UnhandledMessage(TypeError):
    """An actor got a message type it has no handler for."""


H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


def handles(*message_types: type) -> Callable[[H], H]:
    """Mark an ``async def`` method as the handler of ``message_types``."""

    def mark(fn: H) -> H:
        fn.__tradingd_handles__ = message_types  # type: ignore[attr-defined]
        return fn

    return mark


class Actor:
    """Base class: subclass, mark handlers with ``@handles(Msg)``, override hooks.

    The supervisor builds a *fresh* instance from the actor's factory on every
    (re)start, so in-memory state never survives a crash; ``on_start`` reloads
    what matters from the store.
    """

    #: How long a single handler may run before the actor counts as wedged.
    handler_timeout_s: ClassVar[float | None] = None
    _handlers: ClassVar[dict[type, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for message_type in getattr(value, "__tradingd_handles__", ()):
                    table[message_type] = attr
        cls._handlers = table

    name: str = "actor"

    async def on_start(self) -> None:
        """Called before the first message of every (re)start; load state here."""

    async def on_stop(self) -> None:
        """Called once when the actor stops (time-limited and shielded by the runtime)."""

    async def dispatch(self, message: object) -> Any:
        """Route ``message`` to its handler (by exact type, then by base class)."""
        for klass in type(message).__mro__:
            attr = self._handlers.get(klass)
            if attr is not None:
                return await getattr(self, attr)(message)
        raise UnhandledMessage(f"{self.name} has no handler for {type(message).__name__}")

    @classmethod
    def accepts(cls, message_type: type) -> bool:
        return any(k in cls._handlers for k in message_type.__mro__)


@dataclass(slots=True)
class Envelope:
    """A message on its way, with the reply address when it is an ask."""

    message: object
    reply: asyncio.Future[Any] | None = None
    enqueued_at: float = field(default_factory=time.monotonic)


class ActorObserver(Protocol):
    """What the runtime reports to (metrics, the supervisor's event stream)."""

    def state_changed(self, actor: str, old: ActorState, new: ActorState) -> None: ...

    def message_handled(self, actor: str, outcome: str, seconds: float) -> None: ...


class Mailbox:
    """A bounded FIFO of envelopes that can be closed (pending asks then fail)."""

    def __init__(self, owner: str, size: int) -> None:
        if size < 1:
            raise ValueError("mailbox size must be at least 1")
        self.owner = owner
        self.size = size
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=size)
        self._closed = False

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def closed(self) -> bool:
        return self._closed

    async def put(self, envelope: Envelope) -> None:
        if self._closed:
            raise ActorStopped(f"actor {self.owner!r} is not running")
        await self._queue.put(envelope)
        if self.closed:  # closed while we waited for room
            self._fail(envelope)

    async def get(self) -> Envelope:
        return await self._queue.get()

    def close(self) -> None:
        """Refuse new messages and fail every ask still waiting."""
        self._closed = True
        self.fail_pending()

    def reopen(self) -> None:
        self._closed = False

    def fail_pending(self) -> None:
        while True:
            try:
                envelope = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            self._fail(envelope)

    def _fail(self, envelope: Envelope) -> None:
        if envelope.reply is not None and not envelope.reply.done():
            envelope.reply.set_exception(
                ActorStopped(
                    f"actor {self.owner!r} stopped before answering "
                    f"{type(envelope.message).__name__}"
                )
            )


class ActorRef:
    """The only way to talk to an actor. Stays valid across restarts."""

    def __init__(self, name: str, mailbox: Mailbox, default_timeout: float = 30.0) -> None:
        self.name = name
        self._mailbox = mailbox
        self.default_timeout = default_timeout

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r})"

    @property
    def mailbox_depth(self) -> int:
        return self._mailbox.depth

    async def tell(self, message: object) -> None:
        """Send without waiting for a reply; waits while the mailbox is full."""
        await self._mailbox.put(Envelope(message))

    async def ask(self, message: object, timeout: float | None = None) -> Any:
        """Send and wait for the reply; ``AskTimeout`` after ``timeout`` seconds.

        The timeout covers waiting for room in the mailbox too. A handler's
        exception is raised here; ``ActorStopped`` when the actor stops first.
        """
        limit = self.default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        try:
            async with asyncio.timeout(limit):
                await self._mailbox.put(Envelope(message, reply))
                return await reply
        except TimeoutError:
            reply.cancel()
            raise AskTimeout(
                f"{self.name} did not answer {type(message).__name__} within {limit:g}s"
            ) from None


class ActorCell:
    """Runs one actor: instance, mailbox loop, lifecycle. The supervisor owns restarts."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], Actor],
        *,
        mailbox_size: int = 1000,
        ask_timeout: float = 30.0,
        observer: ActorObserver | None = None,
    ) -> None:
        self.name = name
        self.factory = factory
        self.mailbox = Mailbox(name, mailbox_size)
        self.ref = ActorRef(name, self.mailbox, ask_timeout)
        self.state = ActorState.NEW
        self.instance: Actor | None = None
        self.observer = observer
        self.handled = 0
        self.restarts = 0
        self.current_since: float | None = None
        self.current_message: str | None = None
        self.log = structlog.get_logger().bind(actor=name)

    def fire(self, trigger: Trigger) -> ActorState:
        """Apply ``trigger`` through the state table; illegal moves are runtime bugs."""
        old = self.state
        try:
            new = LIFECYCLE[(old, trigger)]
        except KeyError:
            raise IllegalTransition(f"{self.name}: {trigger} is not allowed in {old}") from None
        self.state = new
        if self.observer is not None:
            self.observer.state_changed(self.name, old, new)
        return new

    async def start_instance(self) -> Actor:
        instance = self.factory()
        instance.name = self.name
        self.instance = instance
        await instance.on_start()
        return instance

    async def serve(self, instance: Actor) -> None:
        """Handle messages until cancelled; a handler's exception propagates (a crash)."""
        while True:
            envelope = await self.mailbox.get()
            if isinstance(envelope.message, Heartbeat):
                if envelope.reply is not None and not envelope.reply.done():
                    envelope.reply.set_result(envelope.message.seq)
                continue
            await self._handle(instance, envelope)

    async def _handle(self, instance: Actor, envelope: Envelope) -> None:
        message = envelope.message
        started = time.perf_counter()
        self.current_since = time.monotonic()
        self.current_message = type(message).__name__
        outcome = "ok"
        try:
            if instance.handler_timeout_s is not None:
                async with asyncio.timeout(instance.handler_timeout_s):
                    result = await instance.dispatch(message)
            else:
                result = await instance.dispatch(message)
        except UnhandledMessage as exc:
            # A wiring bug, not a reason to lose the actor's state: answer and go on.
            outcome = "unhandled"
            self.log.error("message_unhandled", message_type=type(message).__name__)
            if envelope.reply is not None and not envelope.reply.done():
                envelope.reply.set_exception(exc)
        except asyncio.CancelledError:
            outcome = "cancelled"
            if envelope.reply is not None and not envelope.reply.done():
                envelope.reply.set_exception(
                    ActorStopped(
                        f"actor {self.name!r} stopped while handling {self.current_message}"
                    )
                )
            raise
        except Refusal as exc:
            outcome = "refused"
            if envelope.reply is not None and not envelope.reply.done():
                envelope.reply.set_exception(exc)
        except FatalError:
            outcome = "fatal"
            raise
        except Exception as exc:
            outcome = "crashed"
            if envelope.reply is not None and not envelope.reply.done():
                envelope.reply.set_exception(exc)
            raise HandlerCrashed(self.name, type(message).__name__, exc) from exc
        else:
            if envelope.reply is not None and not envelope.reply.done():
                envelope.reply.set_result(result)
        finally:
            self.handled += 1
            self.current_since = None
            self.current_message = None
            if self.observer is not None:
                self.observer.message_handled(self.name, outcome, time.perf_counter() - started)

    async def stop_instance(self, timeout: float) -> None:
        """Run ``on_stop`` shielded and time-limited; never raises."""
        instance, self.instance = self.instance, None
        if instance is None:
            return
        with anyio.move_on_after(timeout, shield=True):
            try:
                await instance.on_stop()
            except Exception:
                self.log.exception("actor_on_stop_failed")
