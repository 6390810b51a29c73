"""The systemd watchdog of the real ``Daemon``: pings stop when the loop or an actor is stuck.

An in-process ``actors.system.app.Daemon`` with a ``SystemdNotifier`` bound to a datagram
socket of the test's (``WATCHDOG_USEC`` = 1 s, so a ping every 0.5 s). A thread
timestamps every datagram as it arrives, so a blocked event loop cannot hide
the gap. Two ways to get stuck:

- the event loop itself, blocked by a synchronous ``time.sleep``;
- one actor: the data feed reading a CSV "file" that is a FIFO with no writer
  (configuration only, no patching). Its mailbox is stuck in a handler, the
  heartbeat cannot go round, and ``_watchdog_loop`` withholds ``WATCHDOG=1``
  until the FIFO is closed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from actors.messages import FetchSnapshot
from actors.system.app import Daemon
from actors.system.config import load_settings
from daemon.systemd import SystemdNotifier

pytestmark = pytest.mark.slow


@dataclass
class Datagrams:
    """Every datagram on the notify socket, stamped with ``time.monotonic()`` on arrival."""

    sock: socket.socket
    got: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self.lock:
                self.got.append((time.monotonic(), data.decode()))

    def pings(self, after: float = 0.0) -> list[float]:
        with self.lock:
            return [t for t, d in self.got if "WATCHDOG=1" in d.split("\n") and t > after]

    async def wait_pings(self, n: int, after: float = 0.0, timeout: float = 20.0) -> list[float]:
        """At least ``n`` pings after ``after`` (bounded polling of the list)."""
        with anyio.fail_after(timeout):
            while len(self.pings(after)) < n:
                await anyio.sleep(0.05)
        return self.pings(after)


@asynccontextmanager
async def running_daemon(short_dir: Path) -> AsyncIterator[tuple[Daemon, Datagrams, Path]]:
    """A Daemon whose data folder holds ``STUCK.csv``, a FIFO; yields it, datagrams, the FIFO."""
    data = short_dir / "data"
    data.mkdir()
    fifo = data / "STUCK.csv"
    os.mkfifo(fifo)
    environ = {
        "TRADINGD_DAEMON__STATE_DIR": str(short_dir / "state"),
        "TRADINGD_DAEMON__RUN_DIR": str(short_dir / "run"),
        "TRADINGD_METRICS__PORT": "0",
        "TRADINGD_SCHEDULE__RUN_ON_START": "false",
        "TRADINGD_SCHEDULE__CATCH_UP": "false",
        "TRADINGD_DATA__PROVIDER": "csv",
        "TRADINGD_DATA__CSV__PATH": str(data),
    }
    settings = load_settings(None, environ)
    notify_path = short_dir / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    grams = Datagrams(sock)
    reader = threading.Thread(target=grams.run, name="notify-reader", daemon=True)
    reader.start()
    notifier = SystemdNotifier(str(notify_path), watchdog_usec=1_000_000, use_library=False)
    daemon = Daemon(settings, environ=environ, notifier=notifier)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            try:
                yield daemon, grams, fifo
            finally:
                unblock(fifo)
                daemon.request_stop()
    finally:
        unblock(fifo)
        grams.stop.set()
        reader.join(timeout=5)
        sock.close()


def unblock(fifo: Path) -> None:
    """Release every reader of the FIFO from now on: a reader stuck in open() sees an empty file.

    The feed may open the file more than once per cycle (bars, then the volatility
    index), so the write end is opened and closed in a loop until the FIFO is removed
    with its directory.
    """

    def keep_releasing() -> None:
        while fifo.exists():
            with contextlib.suppress(OSError):  # ENXIO: nobody is reading it right now
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            time.sleep(0.01)

    threading.Thread(target=keep_releasing, name="fifo-release", daemon=True).start()


async def test_blocked_event_loop_stops_the_pings(short_dir: Path) -> None:
    """Pings every 0.5 s; a 2.5 s synchronous block leaves a gap of at least 2 s; then resume."""
    async with running_daemon(short_dir) as (_daemon, grams, _fifo):
        normal = await grams.wait_pings(3)
        assert len(normal) >= 3

        blocked_from = time.monotonic()
        time.sleep(2.5)  # the point of the test: the event loop cannot run
        blocked_until = time.monotonic()

        after = await grams.wait_pings(2, after=blocked_until)
        during = [t for t in grams.pings() if blocked_from + 0.05 < t < blocked_until]
        assert during == [], "a WATCHDOG=1 was sent while the loop was blocked"
        around = sorted(grams.pings())
        gaps = [b - a for a, b in itertools.pairwise(around)]
        print(f"watchdog: longest gap between pings {max(gaps):.2f} s")
        assert max(gaps) >= 2.0, gaps
        assert after


async def test_wedged_actor_withholds_the_pings_until_it_answers(short_dir: Path) -> None:
    """The data feed stuck in a handler: no WATCHDOG=1 for 3 s, a withheld log; pings resume."""
    async with running_daemon(short_dir) as (daemon, grams, fifo):
        await grams.wait_pings(2)
        assert daemon.supervisor is not None
        feed = daemon.supervisor.ref("data_feed")
        with capture_logs() as logs:
            await feed.tell(FetchSnapshot("wedge", dt.date(2026, 11, 24)))
            with anyio.fail_after(10):  # the handler has begun (and is stuck in open())
                while daemon.supervisor.cell("data_feed").current_message is None:
                    await anyio.sleep(0.05)
            wedged_at = time.monotonic()
            await anyio.sleep(3.0)
            during = grams.pings(after=wedged_at + 0.6)  # one ping may already be on its way
            withheld = [e for e in logs if e["event"] == "watchdog_withheld"]
            unblock(fifo)
            released_at = time.monotonic()
            resumed = await grams.wait_pings(1, after=released_at)
        print(f"watchdog: wedged 3 s, {len(withheld)} pings withheld, resumed after release")
        assert during == [], "WATCHDOG=1 sent while the data feed was wedged"
        assert withheld, [e["event"] for e in logs]
        assert all(e["wedged_actors"] == ["data_feed"] for e in withheld), withheld
        assert resumed
