"""``Notifier``: the daily digest and operator alerts, delivered off the trading path.

Handlers only render and enqueue, then return: delivery runs in one
background task per channel, so a slow or hanging channel never delays the
asker (the cycle) or the other channels.

- **Retries.** A failed send is retried (``daemon.retry``) with exponential
  backoff on the injected clock (``backoff_s * 2**(attempt-1)``, capped at
  ``backoff_max_s``) up to ``max_attempts`` attempts; then the message is
  written to the ``notifications`` table and counted ``failed``.
- **Deduplication.** An alert's ``key`` is sent once per ``dedup_window_s``
  (by the clock); the digest has no key and is never deduplicated. A cleared
  kill switch forgets its trip, so the next trip alerts again. The window is
  in memory: a restarted notifier may repeat an alert once.
- **Bounded queues.** Each channel holds at most ``queue_size`` messages. When
  full, an older queued message with the same key is replaced (it says the same
  thing, older); otherwise the oldest queued message is dropped. Either way
  the drop is counted (``dropped``) and logged ``notification_dropped``.
- **Shutdown.** ``on_stop`` cancels the workers; messages still queued are
  recorded as failures ("not delivered before the notifier stopped") so none vanishes
  silently. ``Flush`` waits for the queues to drain (``run-once`` sends the
  digest before exiting).

Metrics: ``metrics.notifications`` (labels ``channel``, ``outcome`` in sent,
retried, failed, deduplicated, dropped) when the ``Metrics`` has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from actors.cycle.kill_switches import SELF_CLEARING
from actors.messages import (
    Alert,
    ApplySettings,
    CycleCompleted,
    GetStatus,
    KillSwitchCleared,
    KillSwitchTripped,
    Severity,
)
from actors.metrics import Metrics
from actors.notifier.channels import Channel, Message
from actors.notifier.digest import minimal_digest
from actors.store.notifications import NotificationStore
from daemon.actor import Actor, handles
from daemon.clock import Clock
from daemon.messages import ActorCrashed
from daemon.retry import Backoff, retry
from daemon.store.core import Store

log = structlog.get_logger()

DigestBuilder = Callable[[CycleCompleted], Awaitable[Message]]

OUTCOMES = ("sent", "retried", "failed", "deduplicated", "dropped")


@dataclass(frozen=True, slots=True)
class Flush:
    """Ask the notifier to wait until every channel's queue is empty (or ``timeout_s``).

    Answers True when everything queued was delivered or given up on. Note the
    notifier handles nothing else while it waits.
    """

    timeout_s: float = 30.0


@dataclass(slots=True)
class _Outbox:
    """One channel's queue, worker and counters."""

    channel: Channel
    queue: deque[Message] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: Message | None = None
    task: asyncio.Task[None] | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))


def kill_switch_key(switch: str, state: str) -> str:
    """The dedup key of a kill-switch alert: ``kill_switch:<switch>:<tripped|cleared>``."""
    return f"kill_switch:{switch}:{state}"


def alert_message(
    key: str, severity: str, summary: str, details: dict[str, Any] | None = None
) -> Message:
    """An alert as a ``Message``: the summary is the subject, details one per line."""
    lines = [summary, ""]
    lines += [f"{name}: {value}" for name, value in (details or {}).items()]
    lines += ["", f"severity: {severity}", f"key: {key}"]
    return Message(
        kind="alert",
        subject=f"tradingd {severity.upper()}: {summary}",
        text="\n".join(lines).strip() + "\n",
        key=key,
        severity=severity,
    )


class Notifier(Actor):
    """Sends the daily digest and alerts to every channel, with retries and deduplication."""

    def __init__(
        self,
        *,
        channels: Sequence[Channel],
        clock: Clock,
        store: Store,
        metrics: Metrics | None = None,
        digest_builder: DigestBuilder | None = None,
        dedup_window_s: float = 3600.0,
        max_attempts: int = 4,
        backoff_s: float = 2.0,
        backoff_max_s: float = 60.0,
        queue_size: int = 100,
        channels_from: Callable[[Any], Sequence[Channel]] | None = None,
    ) -> None:
        """``channels_from(settings)``: the channels of a reloaded configuration (an
        ``ApplySettings`` swaps them in; None: the channels are fixed)."""
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique: {names}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._boxes = {c.name: _Outbox(c) for c in channels}
        self._clock = clock
        self._failures = NotificationStore(store)
        self._counter: Any = getattr(metrics, "notifications", None)
        self._digest_builder = digest_builder
        self._dedup_window_s = dedup_window_s
        self._backoff = Backoff(base_s=backoff_s, cap_s=backoff_max_s, max_attempts=max_attempts)
        self._queue_size = queue_size
        self._last_sent: dict[str, float] = {}
        self._channels_from = channels_from

    # ------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        for box in self._boxes.values():
            self._start(box)

    def _start(self, box: _Outbox) -> None:
        """Start ``box``'s worker (idle until a message comes)."""
        box.idle.set()
        box.task = asyncio.create_task(self._work(box), name=f"notifier.{box.channel.name}")

    async def on_stop(self) -> None:
        tasks = [box.task for box in self._boxes.values() if box.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        now = self._clock.now()
        for box in self._boxes.values():
            box.task = None
            pending = ([box.in_flight] if box.in_flight is not None else []) + list(box.queue)
            box.queue.clear()
            box.in_flight = None
            for message in pending:
                self._count(box, "failed")
                log.error(
                    "notification_failed",
                    channel=box.channel.name,
                    kind=message.kind,
                    subject=message.subject,
                    key=message.key,
                    error="not delivered before the notifier stopped",
                )
                await self._record(
                    box, message, 0, "not delivered before the notifier stopped", now
                )

    # ------------------------------------------------------------ handlers

    @handles(CycleCompleted)
    async def on_cycle(self, msg: CycleCompleted) -> None:
        """Build the digest and queue it for every channel."""
        message: Message | None = None
        if self._digest_builder is not None:
            try:
                message = await self._digest_builder(msg)
            except Exception:
                # The operator still hears the cycle ended: fall back to what the event says.
                log.exception("digest_build_failed", run_id=msg.run_id)
        if message is None:
            message = minimal_digest(msg)
        self.enqueue(message)

    @handles(Alert)
    async def on_alert(self, msg: Alert) -> None:
        details = dict(msg.details)
        if msg.at is not None:
            details.setdefault("at", msg.at.isoformat())
        self.enqueue(alert_message(msg.key, str(msg.severity), msg.summary, details))

    @handles(KillSwitchTripped)
    async def on_tripped(self, msg: KillSwitchTripped) -> None:
        self._last_sent.pop(kill_switch_key(msg.switch, "cleared"), None)
        self.enqueue(
            alert_message(
                kill_switch_key(msg.switch, "tripped"),
                Severity.CRITICAL.value,
                f"Kill switch tripped: {msg.switch}",
                {
                    "reason": msg.reason,
                    "source": msg.source,
                    "since": msg.since.isoformat(),
                    "effect": (
                        "new entries are halted until the condition is gone (it clears itself)"
                        if msg.switch in SELF_CLEARING
                        else "new entries are halted until an operator clears it"
                    ),
                },
            )
        )

    @handles(KillSwitchCleared)
    async def on_cleared(self, msg: KillSwitchCleared) -> None:
        # Forget the trip: if the condition comes back, the operator must hear of it again.
        self._last_sent.pop(kill_switch_key(msg.switch, "tripped"), None)
        self.enqueue(
            alert_message(
                kill_switch_key(msg.switch, "cleared"),
                Severity.WARNING.value,
                f"Kill switch cleared: {msg.switch}",
                {"reason": msg.reason, "source": msg.source, "at": msg.at.isoformat()},
            )
        )

    @handles(ActorCrashed)
    async def on_crashed(self, msg: ActorCrashed) -> None:
        severity = Severity.CRITICAL if msg.restarts_in_window >= 2 else Severity.WARNING
        self.enqueue(
            alert_message(
                f"actor_crashed:{msg.actor}",
                severity.value,
                f"Actor {msg.actor} crashed: {msg.error_type}",
                {
                    "while handling": msg.message_type,
                    "error": f"{msg.error_type}: {msg.error}",
                    "restarts in window": msg.restarts_in_window,
                    "at": msg.at.isoformat(),
                },
            )
        )

    @handles(ApplySettings)
    async def apply(self, msg: ApplySettings) -> None:
        """A reloaded configuration's channels: a kept name takes its new settings (its queue
        goes on), a new one starts, a removed one stops (what it still held is recorded)."""
        if self._channels_from is None:
            return
        fresh = {c.name: c for c in self._channels_from(msg.settings)}
        for name in [n for n in self._boxes if n not in fresh]:
            gone = self._boxes.pop(name)
            if gone.task is not None:
                gone.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gone.task
        for name, channel in fresh.items():
            kept = self._boxes.get(name)
            if kept is not None:
                kept.channel = channel
                continue
            self._start(self._boxes.setdefault(name, _Outbox(channel)))
        log.info("notifier_channels_applied", channels=sorted(self._boxes))

    @handles(Flush)
    async def on_flush(self, msg: Flush) -> bool:
        try:
            async with asyncio.timeout(msg.timeout_s):
                for box in self._boxes.values():
                    await box.idle.wait()
        except TimeoutError:
            return False
        return True

    @handles(GetStatus)
    async def status(self, _msg: GetStatus) -> dict[str, Any]:
        channels = {
            name: {
                "queued": len(box.queue),
                "in_flight": box.in_flight is not None,
                **box.counts,
            }
            for name, box in self._boxes.items()
        }
        failures = await self._failures.failures(limit=5)
        return {
            "queue_depth": sum(
                len(b.queue) + (b.in_flight is not None) for b in self._boxes.values()
            ),
            "sent": sum(b.counts["sent"] for b in self._boxes.values()),
            "failed": sum(b.counts["failed"] for b in self._boxes.values()),
            "channels": channels,
            "last_failures": [{k: v for k, v in f.items() if k != "body"} for f in failures],
        }

    # ------------------------------------------------------------ queueing

    def enqueue(self, message: Message) -> bool:
        """Queue ``message`` for every channel; False when deduplicated (sent recently)."""
        if message.key is not None:
            now = self._clock.monotonic()
            last = self._last_sent.get(message.key)
            if last is not None and now - last < self._dedup_window_s:
                for box in self._boxes.values():
                    self._count(box, "deduplicated")
                log.info("notification_deduplicated", key=message.key, subject=message.subject)
                return False
            self._last_sent[message.key] = now
        for box in self._boxes.values():
            self._put(box, message)
        return True

    def _put(self, box: _Outbox, message: Message) -> None:
        if len(box.queue) >= self._queue_size:
            victim = next(
                (m for m in box.queue if message.key is not None and m.key == message.key),
                box.queue[0],
            )
            box.queue.remove(victim)
            self._count(box, "dropped")
            log.warning(
                "notification_dropped",
                channel=box.channel.name,
                kind=victim.kind,
                subject=victim.subject,
                key=victim.key,
                queue_size=self._queue_size,
            )
        box.queue.append(message)
        box.idle.clear()
        box.wakeup.set()

    # ------------------------------------------------------------ delivery

    async def _work(self, box: _Outbox) -> None:
        while True:
            if not box.queue:
                box.idle.set()
                box.wakeup.clear()
                await box.wakeup.wait()
                continue
            box.in_flight = box.queue.popleft()
            await self._deliver(box, box.in_flight)
            box.in_flight = None

    async def _deliver(self, box: _Outbox, message: Message) -> None:
        name = box.channel.name
        tries = 0

        async def send() -> None:
            nonlocal tries
            tries += 1
            await box.channel.send(message)

        def retrying(error: Exception, attempt: int, delay: float) -> None:
            self._count(box, "retried")
            log.warning(
                "notification_retry",
                channel=name,
                kind=message.kind,
                subject=message.subject,
                key=message.key,
                attempt=attempt,
                delay_s=delay,
                error=_describe(error),
            )

        try:
            # DeliveryError is the contract; anything else from a channel is a bug
            # there, and must not kill this worker either: every Exception is retried.
            await retry(
                send,
                policy=self._backoff,
                retry_on=Exception,
                sleep=self._clock.sleep,
                on_retry=retrying,
            )
        except Exception as exc:
            error = _describe(exc)
            self._count(box, "failed")
            log.error(
                "notification_failed",
                channel=name,
                kind=message.kind,
                subject=message.subject,
                key=message.key,
                attempts=tries,
                error=error,
            )
            await self._record(box, message, tries, error, self._clock.now())
            return
        self._count(box, "sent")
        log.info(
            "notification_sent",
            channel=name,
            kind=message.kind,
            subject=message.subject,
            key=message.key,
            attempts=tries,
        )

    async def _record(
        self, box: _Outbox, message: Message, attempts: int, error: str, at: dt.datetime
    ) -> None:
        try:
            await self._failures.record_failure(
                box.channel.name, message.kind, message.subject, message.text, attempts, error, at
            )
        except Exception:
            log.exception("notification_record_failed", channel=box.channel.name)

    def _count(self, box: _Outbox, outcome: str) -> None:
        box.counts[outcome] += 1
        if self._counter is not None:
            self._counter.labels(channel=box.channel.name, outcome=outcome).inc()


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
