"""The trading system's metrics (cycles, data, signals, portfolio, orders, broker, kill switches).

``Metrics`` adds them to the runtime's (``daemon.metrics.RuntimeMetrics``) on the
same registry, so one exporter serves both. Labels are drawn from small, fixed
sets (actor, strategy, status, outcome, command, reason, switch, stage, regime,
channel, method, error); never symbols or order ids. ``LABEL_ALLOWLIST`` is
checked by a test against a real scrape.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from daemon.metrics import HANDLER_BUCKETS, RUNTIME_LABELS, RuntimeMetrics

LABEL_ALLOWLIST = RUNTIME_LABELS | frozenset(
    {"status", "strategy", "reason", "switch", "stage", "regime", "channel", "method", "error"}
)

CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics(RuntimeMetrics):
    """Every metric tradingd exports, on one registry: the runtime's and the trading system's."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self._cycle_metrics(self.registry)
        self._data_metrics(self.registry)
        self._portfolio_metrics(self.registry)
        self._order_metrics(self.registry)

    def _cycle_metrics(self, r: CollectorRegistry) -> None:
        """Cycles."""
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

    def _data_metrics(self, r: CollectorRegistry) -> None:
        """Data and strategies."""
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

    def _portfolio_metrics(self, r: CollectorRegistry) -> None:
        """Portfolio, heat, regime, positions."""
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

    def _order_metrics(self, r: CollectorRegistry) -> None:
        """Orders, reconciliation, broker, notifications, kill switches."""
        self.orders = Counter(
            "tradingd_orders",
            "Orders placed (entries, exits, flatten sells; not resting stops), by status.",
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
        self.kill_switch_active = Gauge(
            "tradingd_kill_switch_active",
            "1 while a kill switch is tripped.",
            ["switch"],
            registry=r,
        )
