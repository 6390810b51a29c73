"""The Notifier actor: off-path delivery, retries, failure records, dedup, overflow."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import pytest
from prometheus_client import Counter
from structlog.testing import capture_logs

from actors.messages import (
    Alert,
    CycleCompleted,
    CycleStatus,
    GetStatus,
    KillSwitchCleared,
    KillSwitchTripped,
    Severity,
)
from actors.metrics import Metrics
from actors.notifier import (
    Channel,
    DeliveryError,
    EmailChannel,
    Flush,
    Message,
    Notifier,
    WebhookChannel,
)
from actors.store.notifications import NotificationStore
from daemon.actor import ActorRef
from daemon.clock import SimClock
from daemon.messages import ActorCrashed
from daemon.store import Store
from daemon.supervisor import OneForOne, Supervisor
from tests.actors.notifier import SmtpSink, WebhookSink

T0 = dt.datetime(2026, 11, 23, 21, 0, tzinfo=dt.UTC)
DONE = CycleCompleted("run-20261123", dt.date(2026, 11, 23), CycleStatus.COMPLETED, "ok")


class NotifierMetrics(Metrics):
    """``Metrics`` with the notifications counter the lead adds to the real class."""

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "notifications"):
            self.notifications = Counter(
                "tradingd_notifications",
                "Notification deliveries by channel and outcome.",
                ["channel", "outcome"],
                registry=self.registry,
            )

    def count(self, channel: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "tradingd_notifications_total", {"channel": channel, "outcome": outcome}
        )
        return value or 0.0


class RecordingChannel:
    """A channel that keeps what it is sent; fails the first ``failures`` sends."""

    def __init__(self, name: str = "recorder", *, failures: int = 0) -> None:
        self.name = name
        self.failures = failures
        self.sent: list[Message] = []
        self.calls = 0

    async def send(self, message: Message) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise DeliveryError(f"flaky attempt {self.calls}")
        self.sent.append(message)


class GatedChannel(RecordingChannel):
    """Blocks every send until ``gate`` is set; ``entered`` tells a send has begun."""

    def __init__(self, name: str = "gated") -> None:
        super().__init__(name)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def send(self, message: Message) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().send(message)


def email_to(sink: SmtpSink) -> EmailChannel:
    return EmailChannel(
        "127.0.0.1", sink.port, "none", None, None, "tradingd@example.test", ["ops@example.test"]
    )


@asynccontextmanager
async def running(
    channels: Sequence[Channel], store: Store, **kwargs: Any
) -> AsyncIterator[ActorRef]:
    """A supervised Notifier on a SimClock that jumps over backoff sleeps."""
    kwargs.setdefault("clock", SimClock(T0, auto_advance=True))
    sup = Supervisor(OneForOne(backoff_s=0.0, backoff_max_s=0.0))
    ref = sup.add("notifier", lambda: Notifier(channels=channels, store=store, **kwargs))
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        try:
            yield ref
        finally:
            await sup.stop()


def tripped(switch: str = "daily_loss") -> KillSwitchTripped:
    return KillSwitchTripped(switch, "daily loss -2.4% beyond -2%", T0, "risk_supervisor")


def cleared(switch: str = "daily_loss") -> KillSwitchCleared:
    return KillSwitchCleared(switch, "operator reviewed", T0, "tradectl")


async def test_digest_goes_to_every_channel(store: Store, smtp: SmtpSink) -> None:
    """One CycleCompleted delivers the digest by e-mail and to a webhook."""
    hook = WebhookSink().start()
    try:
        channels: list[Channel] = [email_to(smtp), WebhookChannel(hook.url(), style="slack")]
        async with running(channels, store) as ref:
            await ref.ask(DONE)
            assert await ref.ask(Flush(timeout_s=20)) is True
    finally:
        hook.stop()
    [mail] = smtp.messages
    assert mail["Subject"].startswith("tradingd 2026-11-23: completed")
    [body] = hook.bodies
    assert body["text"].startswith("*tradingd 2026-11-23: completed")


async def test_digest_builder_is_used(store: Store) -> None:
    """The injected builder renders the digest from the event."""
    seen: list[CycleCompleted] = []

    async def build(event: CycleCompleted) -> Message:
        seen.append(event)
        return Message(kind="digest", subject=f"built {event.run_id}", text="body")

    recorder = RecordingChannel()
    async with running([recorder], store, digest_builder=build) as ref:
        await ref.ask(DONE)
        await ref.ask(Flush())
    assert seen == [DONE]
    assert [m.subject for m in recorder.sent] == ["built run-20261123"]


async def test_failing_builder_falls_back_to_minimal_digest(store: Store) -> None:
    """A builder that raises still yields a digest from the event, and the actor lives on."""

    async def build(event: CycleCompleted) -> Message:
        raise RuntimeError("store read failed")

    recorder = RecordingChannel()
    with capture_logs() as logs:
        async with running([recorder], store, digest_builder=build) as ref:
            await ref.ask(DONE)
            await ref.ask(Flush())
    [digest] = recorder.sent
    assert digest.kind == "digest"
    assert digest.subject.startswith("tradingd 2026-11-23: completed")
    assert any(e["event"] == "digest_build_failed" for e in logs)


async def test_refusing_smtp_is_retried_then_stored_and_counted(store: Store) -> None:
    """A server answering 554 gets max_attempts tries with backoff, then a stored failure."""
    sink = SmtpSink(reply="554 5.7.1 relay denied").start()
    metrics = NotifierMetrics()
    clock = SimClock(T0, auto_advance=True)
    try:
        with capture_logs() as logs:
            async with running(
                [email_to(sink)], store, clock=clock, metrics=metrics, max_attempts=3
            ) as ref:
                await ref.ask(DONE)
                await ref.ask(Flush(timeout_s=30))
                status = await ref.ask(GetStatus())
    finally:
        sink.stop()
    assert sink.attempts == 3
    # Backoff 2 s then 4 s, on the simulated clock.
    assert clock.now() == T0 + dt.timedelta(seconds=6)
    [row] = await NotificationStore(store).failures()
    assert row["channel"] == "email"
    assert row["kind"] == "digest"
    assert row["attempts"] == 3
    assert "554" in row["last_error"]
    assert row["subject"].startswith("tradingd 2026-11-23")
    assert metrics.count("email", "retried") == 2
    assert metrics.count("email", "failed") == 1
    assert metrics.count("email", "sent") == 0
    events = [e["event"] for e in logs if e["event"].startswith("notification_")]
    assert events == ["notification_retry", "notification_retry", "notification_failed"]
    assert status["failed"] == 1
    assert status["channels"]["email"]["retried"] == 2
    assert status["last_failures"][0]["attempts"] == 3
    assert "body" not in status["last_failures"][0]


async def test_flaky_channel_recovers_after_retry(store: Store) -> None:
    """Two failures then success: sent once, counted as two retries, nothing stored."""
    flaky = RecordingChannel("flaky", failures=2)
    metrics = NotifierMetrics()
    async with running([flaky], store, metrics=metrics) as ref:
        await ref.tell(Alert("data_stale", Severity.WARNING, "data is stale"))
        await ref.ask(Flush())
    assert len(flaky.sent) == 1
    assert metrics.count("flaky", "retried") == 2
    assert metrics.count("flaky", "sent") == 1
    assert await NotificationStore(store).failures() == []


async def test_hanging_webhook_blocks_neither_the_cycle_nor_email(
    store: Store, smtp: SmtpSink
) -> None:
    """With the webhook stuck mid-request, the ask returns and e-mail still delivers."""
    release = threading.Event()
    hook = WebhookSink(hold=release).start()
    try:
        channels: list[Channel] = [WebhookChannel(hook.url(), timeout_s=60), email_to(smtp)]
        async with running(channels, store) as ref:
            await ref.ask(DONE, timeout=30)
            # The reply came while the webhook handler is still blocked on the event.
            assert await anyio.to_thread.run_sync(hook.entered.wait, 30)
            assert not release.is_set()
            assert hook.bodies == []
            assert await anyio.to_thread.run_sync(smtp.received.wait, 30)
            status = await ref.ask(GetStatus())
            assert status["channels"]["webhook"]["in_flight"] is True
            release.set()
            assert await ref.ask(Flush(timeout_s=30)) is True
    finally:
        release.set()
        hook.stop()
    assert len(hook.bodies) == 1
    assert len(smtp.messages) == 1
    assert status["channels"]["webhook"]["sent"] == 0


async def test_same_kill_switch_tripped_five_times_alerts_once(store: Store) -> None:
    """Exactly one alert per condition: five trips of one switch send one message."""
    recorder = RecordingChannel()
    metrics = NotifierMetrics()
    async with running([recorder], store, metrics=metrics) as ref:
        for _ in range(5):
            await ref.ask(tripped())
        await ref.ask(Flush())
    [alert] = recorder.sent
    assert alert.subject == "tradingd CRITICAL: Kill switch tripped: daily_loss"
    assert alert.key == "kill_switch:daily_loss:tripped"
    assert "daily loss -2.4% beyond -2%" in alert.text
    assert metrics.count("recorder", "deduplicated") == 4


async def test_cleared_switch_alerts_again_on_next_trip(store: Store) -> None:
    """Trip, clear, trip: the second trip is a new condition and alerts again."""
    recorder = RecordingChannel()
    async with running([recorder], store) as ref:
        await ref.ask(tripped())
        await ref.ask(tripped())
        await ref.ask(cleared())
        await ref.ask(tripped())
        await ref.ask(Flush())
    assert [m.key for m in recorder.sent] == [
        "kill_switch:daily_loss:tripped",
        "kill_switch:daily_loss:cleared",
        "kill_switch:daily_loss:tripped",
    ]
    assert recorder.sent[1].subject == "tradingd WARNING: Kill switch cleared: daily_loss"


async def test_dedup_window_expires_on_the_clock(store: Store) -> None:
    """The same alert key is sent again once dedup_window_s has passed on the clock."""
    clock = SimClock(T0)
    recorder = RecordingChannel()
    alert = Alert("broker_unreachable", Severity.CRITICAL, "broker unreachable")
    async with running([recorder], store, clock=clock, dedup_window_s=600) as ref:
        await ref.ask(alert)
        clock.advance(599)
        await ref.ask(alert)
        clock.advance(1)
        await ref.ask(alert)
        await ref.ask(Flush())
    assert len(recorder.sent) == 2


async def test_different_switches_are_different_conditions(store: Store) -> None:
    """Two different switches tripped together give two alerts."""
    recorder = RecordingChannel()
    async with running([recorder], store) as ref:
        await ref.ask(tripped("daily_loss"))
        await ref.ask(tripped("reconciliation"))
        await ref.ask(Flush())
    assert {m.key for m in recorder.sent} == {
        "kill_switch:daily_loss:tripped",
        "kill_switch:reconciliation:tripped",
    }


async def test_actor_crash_alerts_once_per_actor(store: Store) -> None:
    """ActorCrashed alerts keyed by actor; a crash loop of one actor alerts once."""
    recorder = RecordingChannel()
    crash = ActorCrashed("data_feed", "FetchSnapshot", "KeyError", "'AAPL'", 1, T0)
    async with running([recorder], store) as ref:
        await ref.ask(crash)
        await ref.ask(crash)
        await ref.ask(ActorCrashed("reconciler", "Reconcile", "ValueError", "x", 1, T0))
        await ref.ask(Flush())
    assert [m.key for m in recorder.sent] == [
        "actor_crashed:data_feed",
        "actor_crashed:reconciler",
    ]
    first = recorder.sent[0]
    assert first.kind == "alert"
    assert "data_feed" in first.subject
    assert "KeyError: 'AAPL'" in first.text
    assert "FetchSnapshot" in first.text


async def test_alert_message_carries_details_and_severity(store: Store) -> None:
    """An Alert becomes a message with its severity, key, summary and details."""
    recorder = RecordingChannel()
    alert = Alert(
        "reconciliation_mismatch", Severity.CRITICAL, "positions differ", {"AAPL": "10 vs 12"}, T0
    )
    async with running([recorder], store) as ref:
        await ref.ask(alert)
        await ref.ask(Flush())
    [message] = recorder.sent
    assert message.severity == "critical"
    assert message.key == "reconciliation_mismatch"
    assert message.subject == "tradingd CRITICAL: positions differ"
    assert "AAPL: 10 vs 12" in message.text
    assert T0.isoformat() in message.text


async def test_digest_is_never_deduplicated(store: Store) -> None:
    """Two cycles give two digests: the digest has no dedup key."""
    recorder = RecordingChannel()
    async with running([recorder], store) as ref:
        await ref.ask(DONE)
        await ref.ask(DONE)
        await ref.ask(Flush())
    assert [m.kind for m in recorder.sent] == ["digest", "digest"]


async def test_full_queue_drops_and_counts(store: Store) -> None:
    """Past queue_size the oldest queued message is dropped, counted and logged."""
    gated = GatedChannel()
    metrics = NotifierMetrics()
    with capture_logs() as logs:
        async with running([gated], store, metrics=metrics, queue_size=2) as ref:
            await ref.ask(Alert("a", Severity.WARNING, "first"))
            await gated.entered.wait()  # "first" is in flight; the queue is empty
            for name in ("second", "third", "fourth"):
                await ref.ask(Alert(name, Severity.WARNING, name))
            status = await ref.ask(GetStatus())
            gated.gate.set()
            await ref.ask(Flush())
    assert status["channels"]["gated"]["queued"] == 2
    assert status["queue_depth"] == 3
    assert [m.subject.split(": ")[1] for m in gated.sent] == ["first", "third", "fourth"]
    assert metrics.count("gated", "dropped") == 1
    [dropped] = [e for e in logs if e["event"] == "notification_dropped"]
    assert dropped["key"] == "second"


async def test_stop_records_undelivered_messages(store: Store) -> None:
    """Messages still queued at shutdown are stored as failures, not lost silently."""
    gated = GatedChannel()
    async with running([gated], store) as ref:
        await ref.ask(DONE)
        await gated.entered.wait()
        await ref.ask(Alert("x", Severity.WARNING, "queued behind the digest"))
    failures = await NotificationStore(store).failures()
    assert sorted(f["kind"] for f in failures) == ["alert", "digest"]
    assert {f["last_error"] for f in failures} == {"not delivered before the notifier stopped"}
    assert gated.sent == []


async def test_flush_times_out_while_a_channel_hangs(store: Store) -> None:
    """Flush answers False when a channel cannot drain within its timeout."""
    gated = GatedChannel()
    async with running([gated], store) as ref:
        await ref.ask(DONE)
        await gated.entered.wait()
        assert await ref.ask(Flush(timeout_s=0.05)) is False
        gated.gate.set()
        assert await ref.ask(Flush()) is True


async def test_duplicate_channel_names_are_refused(store: Store) -> None:
    """Channel names label metrics and queues, so they must be unique."""
    with pytest.raises(ValueError, match="unique"):
        Notifier(
            channels=[RecordingChannel("a"), RecordingChannel("a")], clock=SimClock(T0), store=store
        )
