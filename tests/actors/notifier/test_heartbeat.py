"""The dead man's switch: ``/start``, success and ``/fail`` pings on a real HTTP server.

The server is stdlib ``http.server`` on 127.0.0.1 in a thread; it records the path
of every GET it answers and, with ``hold``, keeps each request waiting until the
test releases it (a hung endpoint). Nothing reaches the internet, and no test
asserts on how long anything took.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from structlog.testing import capture_logs

from actors.market.calendar import ExchangeCalendar
from actors.messages import CycleCompleted, CycleStatus
from actors.metrics import Metrics
from actors.notifier.heartbeat import Heartbeat, ping_url
from actors.system.app import Daemon
from actors.system.config import load_settings
from daemon.clock import SimClock
from daemon.errors import ConfigError
from daemon.systemd import SystemdNotifier

ASOF = dt.date(2026, 11, 23)
CAL = ExchangeCalendar("XNYS")
CHECK = "/ping/0b1c-check"


class PingSink:
    """A real HTTP server on loopback recording every GET path it answers (with ``status``)."""

    def __init__(self, *, status: int = 200, hold: threading.Event | None = None) -> None:
        self.status = status
        self.hold = hold
        self.paths: list[str] = []
        self.entered = threading.Event()
        self.answered = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sink.entered.set()
                if sink.hold is not None:
                    sink.hold.wait(timeout=60)
                sink.paths.append(self.path)
                try:
                    self.send_response(sink.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                except OSError:
                    pass  # the client gave up waiting
                sink.answered.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = False  # server_close() joins the handlers
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = CHECK) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    async def wait_paths(self, n: int) -> list[str]:
        """The paths once at least ``n`` requests were answered (bounded polling)."""
        with anyio.fail_after(30):
            while len(self.paths) < n:
                await anyio.sleep(0.01)
        return list(self.paths)

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def sink() -> Iterator[PingSink]:
    server = PingSink()
    yield server
    server.stop()


def failures(metrics: Metrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "tradingd_notifications_total", {"channel": "heartbeat", "outcome": outcome}
    )


# --- the Heartbeat on its own ----------------------------------------------------------------


def test_ping_urls_drop_a_trailing_slash() -> None:
    """``<url>/start``, ``<url>`` and ``<url>/fail``, with one trailing slash dropped first."""
    assert ping_url("https://hc-ping.com/u/", "start") == "https://hc-ping.com/u/start"
    assert ping_url("https://hc-ping.com/u/", "success") == "https://hc-ping.com/u"
    assert ping_url("https://hc-ping.com/u", "fail") == "https://hc-ping.com/u/fail"


async def test_a_completed_cycle_pings_start_then_success(sink: PingSink) -> None:
    """A completed cycle: GET /start when it begins, GET <url> when it ends, in that order."""
    metrics = Metrics()
    beat = Heartbeat(sink.url() + "/", metrics=metrics)
    async with anyio.create_task_group() as tg:
        await tg.start(beat.run)
        beat.started("r1")
        beat.finished("r1", "completed")
        assert await beat.flush(timeout_s=30)
        tg.cancel_scope.cancel()
    assert sink.paths == [f"{CHECK}/start", CHECK]
    assert failures(metrics, "sent") == 2
    assert failures(metrics, "failed") == 0


async def test_a_halted_or_failed_cycle_pings_fail(sink: PingSink) -> None:
    """Any status but "completed" (halted, failed) ends with GET <url>/fail."""
    beat = Heartbeat(sink.url())
    async with anyio.create_task_group() as tg:
        await tg.start(beat.run)
        for run_id, status in (("r1", CycleStatus.HALTED), ("r2", CycleStatus.FAILED)):
            beat.started(run_id)
            beat.finished(run_id, str(status))
        assert await beat.flush(timeout_s=30)
        tg.cancel_scope.cancel()
    assert sink.paths == [f"{CHECK}/start", f"{CHECK}/fail"] * 2


async def test_a_hung_endpoint_never_delays_the_cycle() -> None:
    """The endpoint holds /start unanswered; the cycle still runs to its end meanwhile."""
    hold = threading.Event()
    sink = PingSink(hold=hold)
    beat = Heartbeat(sink.url(), timeout_s=60)
    cycle_done = anyio.Event()

    async def cycle() -> None:
        beat.started("r1")
        # The ping is now stuck inside the server; the cycle goes on regardless.
        assert await anyio.to_thread.run_sync(sink.entered.wait, 30)
        for _ in range(10):
            await anyio.sleep(0)
        beat.finished("r1", "completed")
        cycle_done.set()

    try:
        async with anyio.create_task_group() as tg:
            await tg.start(beat.run)
            with anyio.fail_after(30):
                await cycle()
            assert cycle_done.is_set()
            assert not hold.is_set()  # the cycle finished before the server let go
            assert sink.paths == []  # ... and nothing had been answered yet
            hold.set()
            assert await beat.flush(timeout_s=30)
            tg.cancel_scope.cancel()
    finally:
        sink.stop()
    assert sink.paths == [f"{CHECK}/start", CHECK]


async def test_a_ping_past_its_timeout_is_logged_counted_and_the_next_one_goes() -> None:
    """A ping unanswered for ``timeout_s`` is given up (logged, counted); the next is sent."""
    hold = threading.Event()
    sink = PingSink(hold=hold)
    metrics = Metrics()
    beat = Heartbeat(sink.url(), timeout_s=0.2, metrics=metrics)
    try:
        with capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                await tg.start(beat.run)
                beat.started("r1")
                assert await beat.flush(timeout_s=30)
                hold.set()
                beat.finished("r1", "completed")
                assert await beat.flush(timeout_s=30)
                tg.cancel_scope.cancel()
    finally:
        sink.stop()
    (failed,) = [e for e in logs if e["event"] == "heartbeat_failed"]
    assert failed["kind"] == "start"
    assert "no answer within 0.2s" in failed["reason"]
    assert "0b1c" not in failed["url"]  # the check's id stays out of the log
    assert failures(metrics, "failed") == 1
    assert failures(metrics, "sent") == 1
    assert CHECK in sink.paths  # (the abandoned /start may be logged by the server after it)


async def test_an_error_answer_or_no_server_is_logged_and_never_raised() -> None:
    """HTTP 500 and a refused connection: ``heartbeat_failed``, nothing raised to the caller."""
    sink = PingSink(status=500)
    closed = PingSink()
    refused = closed.url()
    closed.stop()
    try:
        with capture_logs() as logs:
            for url in (sink.url(), refused):
                beat = Heartbeat(url, timeout_s=10)
                async with anyio.create_task_group() as tg:
                    await tg.start(beat.run)
                    beat.finished("r1", "failed")
                    assert await beat.flush(timeout_s=30)
                    tg.cancel_scope.cancel()
    finally:
        sink.stop()
    reasons = [e["reason"] for e in logs if e["event"] == "heartbeat_failed"]
    assert reasons[0] == "HTTP 500"
    assert reasons[1].startswith("cannot connect")
    assert len(reasons) == 2


async def test_no_url_sends_nothing(sink: PingSink) -> None:
    """Unset (None) or blank: the switch is off and nothing is queued."""
    for url in (None, ""):
        beat = Heartbeat(url)
        beat.started("r1")
        beat.finished("r1", "completed")
        assert await beat.flush(timeout_s=1)
    assert sink.paths == []


async def test_a_start_heard_after_its_end_is_skipped(sink: PingSink) -> None:
    """A cycle that ended before its starter was told it began: no /start after the end."""
    beat = Heartbeat(sink.url())
    async with anyio.create_task_group() as tg:
        await tg.start(beat.run)
        beat.finished("r1", "halted")
        beat.started("r1")
        assert await beat.flush(timeout_s=30)
        tg.cancel_scope.cancel()
    assert sink.paths == [f"{CHECK}/fail"]


async def test_the_queue_is_bounded_and_drops_its_oldest(sink: PingSink) -> None:
    """With no sender running, a full queue drops its oldest ping (logged, counted)."""
    metrics = Metrics()
    beat = Heartbeat(sink.url(), queue_size=2, metrics=metrics)
    with capture_logs() as logs:
        for n in range(3):
            beat.finished(f"r{n}", "completed")
    assert [e["run_id"] for e in logs if e["event"] == "heartbeat_dropped"] == ["r0"]
    assert failures(metrics, "dropped") == 1
    async with anyio.create_task_group() as tg:
        await tg.start(beat.run)
        assert await beat.flush(timeout_s=30)
        tg.cancel_scope.cancel()
    assert sink.paths == [CHECK, CHECK]


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["ftp://hc-ping.example.com/x", "hc-ping.example.com/x", "https:///no-host"]
)
def test_a_heartbeat_url_must_be_http_with_a_host(tmp_path: Path, value: str) -> None:
    """Anything but an http(s) URL with a host is a ConfigError naming the key."""
    path = tmp_path / "tradingd.toml"
    path.write_text(f'[notify]\nheartbeat_url = "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert info.value.key == "notify.heartbeat_url"
    assert "http:// or https://" in info.value.reason


def test_a_blank_heartbeat_url_is_off() -> None:
    """An empty value (handy in the environment) is the same as unset."""
    settings = load_settings(None, {"TRADINGD_NOTIFY__HEARTBEAT_URL": ""})
    assert settings.notify.heartbeat_url is None
    url = "https://hc-ping.example.com/0b1c"
    assert load_settings(None, {"TRADINGD_NOTIFY__HEARTBEAT_URL": url}).notify.heartbeat_url == url


# --- the real daemon ------------------------------------------------------------------------


def daemon_environ(state: Path, sink: PingSink, **extra: str) -> dict[str, str]:
    return {
        "TRADINGD_DAEMON__STATE_DIR": str(state / "state"),
        "TRADINGD_DAEMON__RUN_DIR": str(state / "run"),
        "TRADINGD_METRICS__PORT": "0",
        "TRADINGD_NOTIFY__HEARTBEAT_URL": sink.url(),
        **extra,
    }


def run_once(environ: dict[str, str]) -> int:
    settings = load_settings(None, environ)
    clock = SimClock(CAL.session_open(ASOF) + dt.timedelta(hours=1))
    daemon = Daemon(settings, environ=environ, clock=clock, notifier=SystemdNotifier(None))
    return anyio.run(lambda: daemon.run(once=True, asof=ASOF))


def test_run_once_pings_start_then_success(short_dir: Path, sink: PingSink) -> None:
    """`tradingd run --once`: /start, then <url> once the cycle completed, before the exit."""
    assert run_once(daemon_environ(short_dir, sink)) == 0
    assert sink.paths == [f"{CHECK}/start", CHECK]


def test_run_once_of_a_halted_cycle_pings_fail(short_dir: Path, sink: PingSink) -> None:
    """No bars in the CSV folder halt the cycle on bad data: /start, then /fail."""
    (short_dir / "bars").mkdir()
    env = daemon_environ(
        short_dir,
        sink,
        TRADINGD_DATA__PROVIDER="csv",
        TRADINGD_DATA__CSV__PATH=str(short_dir / "bars"),
    )
    assert run_once(env) == 1
    assert sink.paths == [f"{CHECK}/start", f"{CHECK}/fail"]


async def test_the_scheduled_cycle_of_a_running_daemon_pings(
    short_dir: Path, sink: PingSink
) -> None:
    """The scheduler's cycle (run_on_start) in a running daemon: /start, then success."""
    environ = daemon_environ(short_dir, sink)
    settings = load_settings(None, environ)
    clock = SimClock(CAL.session_open(ASOF) + dt.timedelta(hours=1))
    daemon = Daemon(settings, environ=environ, clock=clock, notifier=SystemdNotifier(None))
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        paths = await sink.wait_paths(2)
        daemon.request_stop()
    assert paths == [f"{CHECK}/start", CHECK]
    assert daemon._last_cycle is not None
    assert daemon._last_cycle.status is CycleStatus.COMPLETED


async def test_a_halted_cycle_published_to_the_daemon_pings_fail(sink: PingSink) -> None:
    """``Daemon._publish`` hands each CycleCompleted to the heartbeat: halted -> /fail."""
    settings = load_settings(None, {"TRADINGD_NOTIFY__HEARTBEAT_URL": sink.url()})
    daemon = Daemon(settings, environ={}, clock=SimClock(dt.datetime(2026, 11, 23, tzinfo=dt.UTC)))
    event = CycleCompleted("r1", ASOF, CycleStatus.HALTED, "no trading on bad data")
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.heartbeat.run)
        await daemon._publish(event)
        assert await daemon.heartbeat.flush(timeout_s=30)
        tg.cancel_scope.cancel()
    assert sink.paths == [f"{CHECK}/fail"]
