"""``Heartbeat``: a dead man's switch pinged around each cycle, off the trading path.

An outside service (healthchecks.io, or any with the same URL convention) tells
the operator when the pings stop: when the daemon, or the VPS under it, is gone.

- **Pings.** ``started`` queues ``GET <url>/start``; ``finished`` queues
  ``GET <url>`` for a cycle whose status is ``"completed"`` and
  ``GET <url>/fail`` for any other (halted, failed). A trailing slash of the
  URL is dropped first. No URL (``None``): both do nothing.
- **Never on the trading path.** ``started`` and ``finished`` only append to a
  bounded queue and return; they never block, await or raise. One background
  task (``run``) sends the queue in order, each ping in a worker thread under
  ``timeout_s``, so a slow, hung or failing endpoint costs at most that per
  ping and nothing to the cycle. A full queue drops its oldest ping.
- **Failures** are logged (``heartbeat_failed``, ``heartbeat_dropped``) and
  counted in ``metrics.notifications`` with ``channel="heartbeat"`` (outcomes
  sent, failed, dropped); nothing is retried: the next cycle pings again.
- **Order.** A ``/start`` that arrives after its cycle's end was queued (the
  cycle ended before the caller heard it had begun) is skipped, so the
  service never sees a start that no end follows.

Logs show the URL as ``scheme://host/***``: its path identifies the check.
"""

from __future__ import annotations

import asyncio
import http.client
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import structlog
from anyio.abc import TaskStatus

from actors.metrics import Metrics
from actors.notifier.channels import redact_url

log = structlog.get_logger()

CHANNEL = "heartbeat"
OUTCOMES = ("sent", "failed", "dropped")


class PingError(Exception):
    """One ping did not get a 2xx answer; the message says why."""


@dataclass(frozen=True, slots=True)
class Ping:
    """One queued ping: what it says (start, success, fail), for which run, and where."""

    kind: str
    run_id: str
    url: str


def ping_url(base: str, kind: str) -> str:
    """The URL of a ``kind`` ping: ``<base>/start``, ``<base>`` or ``<base>/fail``."""
    base = base.rstrip("/")
    return {"start": f"{base}/start", "success": base, "fail": f"{base}/fail"}[kind]


class Heartbeat:
    """Pings ``url`` when a cycle begins and ends; see the module docstring."""

    def __init__(
        self,
        url: str | None,
        *,
        timeout_s: float = 10.0,
        queue_size: int = 16,
        metrics: Metrics | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.url = url
        """The check's URL (None: off); ``tradectl reload`` may change it."""
        self.timeout_s = timeout_s
        self._queue: deque[Ping] = deque()
        self._queue_size = queue_size
        self._ended: deque[str] = deque(maxlen=64)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._counter: Any = getattr(metrics, "notifications", None)
        if self._counter is not None and url:
            for outcome in OUTCOMES:
                self._counter.labels(channel=CHANNEL, outcome=outcome)

    # ------------------------------------------------------------ the cycle's side

    def started(self, run_id: str) -> None:
        """Queue ``/start`` for ``run_id``; returns at once."""
        if run_id in self._ended:
            log.debug("heartbeat_start_skipped", run_id=run_id, reason="the cycle already ended")
            return
        self._enqueue("start", run_id)

    def finished(self, run_id: str, status: str) -> None:
        """Queue the success ping (``status == "completed"``) or ``/fail``; returns at once."""
        self._ended.append(run_id)
        self._enqueue("success" if status == "completed" else "fail", run_id)

    def _enqueue(self, kind: str, run_id: str) -> None:
        url = self.url
        if not url:
            return
        if len(self._queue) >= self._queue_size:
            dropped = self._queue.popleft()
            self._count("dropped")
            log.warning("heartbeat_dropped", kind=dropped.kind, run_id=dropped.run_id)
        self._queue.append(Ping(kind, run_id, ping_url(url, kind)))
        self._idle.clear()
        self._wakeup.set()

    # ------------------------------------------------------------ the background task

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send queued pings in order, forever (cancel to stop)."""
        task_status.started()
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._send(self._queue.popleft())

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued ping was sent or given up on; False after ``timeout_s``."""
        with anyio.move_on_after(timeout_s):
            await self._idle.wait()
            return True
        return False

    async def _send(self, ping: Ping) -> None:
        """One ping; every failure is logged and counted, never raised."""
        try:
            with anyio.fail_after(self.timeout_s):
                await anyio.to_thread.run_sync(self._get, ping.url, abandon_on_cancel=True)
        except TimeoutError:
            self._failed(ping, f"no answer within {self.timeout_s:g}s")
        except PingError as exc:
            self._failed(ping, str(exc))
        except Exception as exc:  # a ping must never take the daemon down
            self._failed(ping, type(exc).__name__)  # its text may quote the URL
        else:
            self._count("sent")
            log.debug("heartbeat_sent", kind=ping.kind, run_id=ping.run_id)

    def _get(self, url: str) -> None:
        """GET ``url`` (blocking, in a worker thread); ``PingError`` unless it answers 2xx."""
        request = urllib.request.Request(url, headers={"User-Agent": "tradingd"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                response.read(1024)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response, and so the socket
            raise PingError(f"HTTP {exc.code}") from None
        except TimeoutError:
            raise PingError(f"no answer within {self.timeout_s:g}s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise PingError(f"no answer within {self.timeout_s:g}s") from None
            raise PingError(f"cannot connect: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise PingError(f"{type(exc).__name__}: {exc}") from None

    def _failed(self, ping: Ping, reason: str) -> None:
        self._count("failed")
        log.warning(
            "heartbeat_failed",
            kind=ping.kind,
            run_id=ping.run_id,
            url=redact_url(ping.url),
            reason=reason,
        )

    def _count(self, outcome: str) -> None:
        if self._counter is not None:
            self._counter.labels(channel=CHANNEL, outcome=outcome).inc()
