"""Prometheus metrics: our own registry, ``tradingd_`` prefix, base units, bounded labels.

Labels are drawn from small, fixed sets (actor, strategy, status, outcome,
command, reason, switch); never symbols or order ids. ``LABEL_ALLOWLIST`` is
checked by a test against a real scrape.
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

LABEL_ALLOWLIST = frozenset(
    {"actor", "outcome", "status", "strategy", "command", "reason", "switch", "stage", "regime"}
    | {"channel", "method", "error"}
    | {"version", "python", "le", "quantile"}
)

CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
HANDLER_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)


class Metrics:
    """Every metric tradingd exports, on one registry."""

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
        # ---- cycles
        self.cycle_duration = Histogram(
            "tradingd_cycle_duration_seconds",
            "Wall time of one daily cycle.",
            ["status"],
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.cycles = Counter("tradingd_cycles", "Daily cycles, by status.", ["status"], registry=r)
        self.last_cycle_success = Gauge(
            "tradingd_last_successful_cycle_timestamp_seconds",
            "Unix time the last cycle completed successfully.",
            registry=r,
        )
        self.cycle_running = Gauge(
            "tradingd_cycle_running", "1 while a daily cycle is running.", registry=r
        )
        # ---- data and strategies
        self.data_last_bar = Gauge(
            "tradingd_data_last_bar_timestamp_seconds",
            "Unix time (midnight UTC) of the latest session in the last snapshot.",
            registry=r,
        )
        self.data_symbols = Gauge(
            "tradingd_data_symbols",
            "Symbols in the last snapshot, valid or rejected by validation.",
            ["status"],
            registry=r,
        )
        self.data_rejections = Counter(
            "tradingd_data_rejections",
            "Symbols dropped by data validation, by rule.",
            ["reason"],
            registry=r,
        )
        self.data_fetch_seconds = Histogram(
            "tradingd_data_fetch_duration_seconds",
            "Time to build a market snapshot (fetch, validate, indicators).",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.signals = Gauge(
            "tradingd_signals",
            "Signals in the last cycle per strategy and funnel stage.",
            ["strategy", "stage"],
            registry=r,
        )
        self.strategy_failures = Counter(
            "tradingd_strategy_failures",
            "Strategy runs that raised instead of returning signals.",
            ["strategy"],
            registry=r,
        )
        self.strategy_seconds = Histogram(
            "tradingd_strategy_duration_seconds",
            "Time one strategy took to generate signals.",
            ["strategy"],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        # ---- portfolio, orders, reconciliation
        self.portfolio_value = Gauge(
            "tradingd_portfolio_value_dollars", "Broker equity at the last cycle.", registry=r
        )
        self.daily_pnl_ratio = Gauge(
            "tradingd_daily_pnl_ratio",
            "Equity change since the start-of-day value (0.01 = +1%).",
            registry=r,
        )
        self.heat_ratio = Gauge(
            "tradingd_heat_ratio", "Exposure / portfolio value after the last cycle.", registry=r
        )
        self.heat_limit_ratio = Gauge(
            "tradingd_heat_limit_ratio", "The regime's heat limit at the last cycle.", registry=r
        )
        self.regime = Gauge(
            "tradingd_regime",
            "1 for the regime of the last cycle (low_volatility, normal, high_volatility, crisis).",
            ["regime"],
            registry=r,
        )
        self.positions_count = Gauge(
            "tradingd_positions",
            "Open positions (strategy x symbol) after the last cycle.",
            registry=r,
        )
        self.orders = Counter(
            "tradingd_orders",
            "Order intents by final status of their cycle.",
            ["status"],
            registry=r,
        )
        self.reconciliation_passed = Gauge(
            "tradingd_reconciliation_passed", "1 when the last reconciliation passed.", registry=r
        )
        self.reconciliation_discrepancies = Gauge(
            "tradingd_reconciliation_discrepancies",
            "Discrepancies found by the last reconciliation.",
            registry=r,
        )
        self.last_reconciliation_success = Gauge(
            "tradingd_last_successful_reconciliation_timestamp_seconds",
            "Unix time of the last reconciliation that passed.",
            registry=r,
        )
        self.broker_seconds = Histogram(
            "tradingd_broker_request_duration_seconds",
            "Latency of broker calls, by method.",
            ["method"],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.broker_errors = Counter(
            "tradingd_broker_request_errors",
            "Broker calls that raised, by method and error class.",
            ["method", "error"],
            registry=r,
        )
        self.broker_rate_limit_remaining = Gauge(
            "tradingd_broker_rate_limit_remaining",
            "Requests left in the broker's rate-limit window (Alpaca's X-Ratelimit-Remaining).",
            registry=r,
        )
        self.notifications = Counter(
            "tradingd_notifications",
            "Notifications by channel and outcome (sent, retried, failed, deduplicated, dropped).",
            ["channel", "outcome"],
            registry=r,
        )
        self.backups = Counter(
            "tradingd_backups", "Daily database backups by outcome.", ["outcome"], registry=r
        )
        self.kill_switch_active = Gauge(
            "tradingd_kill_switch_active",
            "1 while a kill switch is tripped.",
            ["switch"],
            registry=r,
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
    def __init__(self, metrics: Metrics) -> None:
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
    metrics: Metrics, interval: float = 0.5, *, on_sample: Callable[[float], Any] | None = None
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
