"""Prometheus exporter and the runtime's metrics: own registry, ``tradingd_`` prefix, base units.

Labels are drawn from small, fixed sets, never symbols or order ids; the
application's metrics (``actors.metrics``) extend ``RUNTIME_LABELS``.
"""

from __future__ import annotations

import asyncio
import platform
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon import __version__
from daemon.actor import ActorState

if TYPE_CHECKING:
    from daemon.supervisor import Supervisor

RUNTIME_LABELS = frozenset({"actor", "outcome", "command", "version", "python", "le", "quantile"})
"""The labels of the runtime's metrics; the application adds its own (``actors.metrics``)."""

HANDLER_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)


class RuntimeMetrics:
    """The runtime's metrics (actors, event loop, control socket, watchdog, backups), exported.

    The application subclasses it to add its own on the same registry.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info("tradingd_build", "Version of tradingd and Python.", registry=r)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self.start_time = Gauge(
            "tradingd_start_time_seconds", "Unix time the daemon started.", registry=r
        )
        self.start_time.set(time.time())
        # ---- runtime
        self.actor_restarts = Counter(
            "tradingd_actor_restarts", "Actor restarts after a crash.", ["actor"], registry=r
        )
        self.actor_messages = Counter(
            "tradingd_actor_messages",
            "Messages handled by actors, by outcome.",
            ["actor", "outcome"],
            registry=r,
        )
        self.actor_handler_seconds = Histogram(
            "tradingd_actor_handler_duration_seconds",
            "Time spent in one message handler.",
            ["actor"],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.event_loop_lag = Gauge(
            "tradingd_event_loop_lag_seconds",
            "How late the event loop woke a 0.5 s timer, last sample.",
            registry=r,
        )
        self.event_loop_lag_max = Gauge(
            "tradingd_event_loop_lag_max_seconds",
            "Largest event-loop lag seen over the last minute.",
            registry=r,
        )
        self.control_requests = Counter(
            "tradingd_control_requests",
            "Control-socket requests, by command and outcome.",
            ["command", "outcome"],
            registry=r,
        )
        self.watchdog_pings = Counter(
            "tradingd_watchdog_pings", "WATCHDOG=1 sent to systemd.", registry=r
        )
        self.watchdog_missed = Counter(
            "tradingd_watchdog_missed",
            "Heartbeat rounds in which some actor did not answer (no WATCHDOG=1 sent).",
            registry=r,
        )
        self.config_reloads = Counter(
            "tradingd_config_reloads", "Configuration reloads, by outcome.", ["outcome"], registry=r
        )
        self.backups = Counter(
            "tradingd_backups", "Daily database backups by outcome.", ["outcome"], registry=r
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ wiring

    def watch_supervisor(self, supervisor: Supervisor) -> None:
        """Export per-actor up and mailbox depth, read at scrape time."""
        self.registry.register(_SupervisorCollector(supervisor))

    def actor_observer(self) -> _ActorObserver:
        return _ActorObserver(self)

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP exporter in a thread; returns the bound port."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _ActorObserver:
    def __init__(self, metrics: RuntimeMetrics) -> None:
        self._m = metrics

    def state_changed(self, actor: str, old: ActorState, new: ActorState) -> None:
        if new is ActorState.RESTARTING:
            self._m.actor_restarts.labels(actor=actor).inc()

    def message_handled(self, actor: str, outcome: str, seconds: float) -> None:
        self._m.actor_messages.labels(actor=actor, outcome=outcome).inc()
        self._m.actor_handler_seconds.labels(actor=actor).observe(seconds)


class _SupervisorCollector(Collector):
    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "tradingd_actor_up",
            "1 when the actor is running and serving its mailbox.",
            labels=["actor"],
        )
        depth = GaugeMetricFamily(
            "tradingd_actor_mailbox_depth",
            "Messages waiting in the actor's mailbox.",
            labels=["actor"],
        )
        for name, state in self._sup.states().items():
            up.add_metric([name], 1.0 if state is ActorState.RUNNING else 0.0)
            depth.add_metric([name], float(self._sup.cell(name).mailbox.depth))
        yield up
        yield depth

    def describe(self) -> Iterator[Metric]:
        return iter(())


async def watch_event_loop_lag(
    metrics: RuntimeMetrics,
    interval: float = 0.5,
    *,
    on_sample: Callable[[float], Any] | None = None,
) -> None:
    """Measure how late the loop wakes a timer: a direct reading of a blocked loop.

    This measures the real loop, so it deliberately uses real time, not the
    injected clock.
    """
    window: list[tuple[float, float]] = []
    while True:
        start = time.perf_counter()
        await asyncio.sleep(interval)
        lag = max(0.0, time.perf_counter() - start - interval)
        now = time.monotonic()
        window.append((now, lag))
        window = [(t, v) for t, v in window if now - t <= 60.0]
        metrics.event_loop_lag.set(lag)
        metrics.event_loop_lag_max.set(max(v for _, v in window))
        if on_sample is not None:
            on_sample(lag)
