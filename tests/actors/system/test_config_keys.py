"""Every config key reaches the code that uses it: a table of key -> (changed value, probe).

The consumers are built twice, the way the daemon builds itself (``Daemon._build_actors``
and so ``build_graph``, ``Daemon._build_scheduler``, ``Daemon._build_broker``,
``build_channels``, ``make_provider``, ``daily_backups``): once from the defaults, once
from a TOML file that changes every key, read by ``load_settings`` (secrets, which never
come from the file, from the environment). A probe returns what the consumer holds: the
defaults must give the default, the file the changed value.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel, SecretStr
from structlog.testing import capture_logs

from actors.brokers.alpaca import AlpacaBroker
from actors.brokers.instrumented import InstrumentedBroker
from actors.brokers.sim import SimBroker
from actors.cycle.context import CycleContext
from actors.cycle.cycle import Cycle
from actors.cycle.kill_switch_board import KillSwitchBoard
from actors.cycle.kill_switches import ENV_DISABLED, disabled_strategies
from actors.cycle.runner import CycleRunner
from actors.data_feed.actor import DataFeed
from actors.data_feed.params import AlpacaDataParams, AlphaVantageParams, DataParams
from actors.data_feed.providers import make_provider
from actors.data_feed.providers.alpaca import AlpacaBarProvider
from actors.data_feed.providers.alphavantage import AlphaVantageProvider
from actors.data_feed.providers.csv_provider import CsvProvider
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.data_feed.universe import load_universe
from actors.market.calendar import ExchangeCalendar
from actors.market.scheduler import Scheduler
from actors.messages import StartCycle
from actors.notifier.channels import EmailChannel, WebhookChannel
from actors.orders.manager import OrderManager
from actors.reconciliation.reconciler import Reconciler
from actors.risk.fill_terms import ReferenceFillTerms
from actors.store import open_store
from actors.strategies.actor import StrategyActor
from actors.strategies.params import StrategyParams
from actors.strategies.registry import STRATEGY_CLASSES
from actors.system.app import Daemon, build_channels
from actors.system.backup import daily_backups
from actors.system.config import SECRET_ENV, Settings, load_settings
from actors.system.graph import MANUAL
from actors.system.order_poll import poll_task
from daemon.actor import Actor
from daemon.clock import SimClock
from daemon.errors import ConfigError
from daemon.store import Store
from daemon.supervisor import Supervisor

EXAMPLE = Path(__file__).resolve().parents[3] / "ops" / "tradingd.example.toml"
START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)  # a Monday, before any backup time
ASOF = dt.date(2026, 6, 1)
KEY_ID = "TESTKEYID"  # neither PK... (paper) nor AK... (live): valid for both account modes
SECRETS = {
    "alpaca_api_key": KEY_ID,
    "alpaca_secret_key": "test-alpaca-secret",
    "alphavantage_api_key": "test-alphavantage-key",
    "smtp_password": "test-smtp-password",
}
T = TypeVar("T")


# --- building the consumers ------------------------------------------------------------------


@dataclass(frozen=True)
class BackupRun:
    """What one turn of the daily backup task did."""

    due: dt.datetime
    path: Path
    older_than: dt.datetime


@dataclass
class Built:
    """The consumers of one ``Settings``, built as the daemon builds them (none started)."""

    settings: Settings
    store: Store
    calendar: ExchangeCalendar
    daemon: Daemon
    sup: Supervisor
    actors: dict[str, Actor]
    scheduler: Scheduler
    backup_run: BackupRun | None

    @property
    def backup(self) -> BackupRun:
        """The first turn of the daily backup task."""
        assert self.backup_run is not None, "built without the backup task"
        return self.backup_run

    def one(self, kind: type[T]) -> T:
        """The only actor of type ``kind`` in the graph."""
        (found,) = [a for a in self.actors.values() if isinstance(a, kind)]
        return found

    def strategy(self, name: str) -> StrategyParams:
        """The parameters strategy ``name``'s own object (inside its actor) holds."""
        actor = self.actors[f"strategy.{name}"]
        assert isinstance(actor, StrategyActor)
        return actor._strategy.params

    def cycle(self) -> CycleContext:
        """The context a cycle runs on, made as the cycle runner makes it."""
        runner = self.one(CycleRunner)
        return Cycle(runner._d, runner._strategies, runner._risk, StartCycle("probe", ASOF)).context

    def data(self) -> DataParams:
        """The data parameters the DataFeed holds."""
        return self.one(DataFeed)._params

    def provider(self, kind: str) -> Any:
        """``make_provider`` on the DataFeed's parameters with ``kind`` selected."""
        s = self.settings.secrets
        return make_provider(
            self.data().model_copy(update={"provider": kind}),
            alpaca_api_key=_plain(s.alpaca_api_key) or KEY_ID,
            alpaca_secret_key=_plain(s.alpaca_secret_key) or "x",
            alphavantage_api_key=_plain(s.alphavantage_api_key) or "x",
        )

    def broker(self, kind: str, *, fill_keys: bool = True) -> Any:
        """``Daemon._build_broker`` with ``broker.kind = kind`` (None: the keys are missing)."""
        s = self.settings
        secrets = s.secrets
        if fill_keys:
            secrets = secrets.model_copy(
                update={
                    "alpaca_api_key": secrets.alpaca_api_key or SecretStr(KEY_ID),
                    "alpaca_secret_key": secrets.alpaca_secret_key or SecretStr("x"),
                }
            )
        update = {"broker": s.broker.model_copy(update={"kind": kind}), "secrets": secrets}
        daemon = Daemon(s.model_copy(update=update), environ={}, clock=SimClock(START))
        try:
            return daemon._build_broker(self.store, self.calendar, self.provider("synthetic"))
        except ConfigError:
            return None

    def email(self, *, complete: bool = True) -> EmailChannel | None:
        """``build_channels``' e-mail channel; ``complete`` fills a missing host, sender, rcpt."""
        n = self.settings.notify
        if complete:
            n = n.model_copy(
                update={
                    "smtp_host": n.smtp_host or "smtp.probe",
                    "mail_from": n.mail_from or "from@probe",
                    "mail_to": n.mail_to or ("to@probe",),
                }
            )
        found = [c for c in _channels(self.settings, n) if isinstance(c, EmailChannel)]
        return found[0] if found else None

    def webhook(self, *, complete: bool = True) -> WebhookChannel | None:
        """``build_channels``' webhook channel; ``complete`` fills a missing URL."""
        n = self.settings.notify
        if complete and n.webhook_url is None:
            n = n.model_copy(update={"webhook_url": "https://hooks.probe/x"})
        found = [c for c in _channels(self.settings, n) if isinstance(c, WebhookChannel)]
        return found[0] if found else None


def _plain(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _channels(settings: Settings, notify: Any) -> list[Any]:
    return list(build_channels(settings.model_copy(update={"notify": notify})))


async def _backup_run(store: Store, settings: Settings) -> BackupRun:
    """Run the daemon's daily backup task on a SimClock through its first backup."""
    clock = SimClock(START)
    with capture_logs() as logs, anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daily_backups, store, settings, clock)
            while clock.pending == 0:
                await anyio.lowlevel.checkpoint()
            deadline = clock.next_deadline()
            assert deadline is not None
            due: dt.datetime = deadline
            clock.set_time(due)
            while not any(e["event"] == "backups_pruned" for e in logs):
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
    done = next(e for e in logs if e["event"] == "backup_completed")
    pruned = next(e for e in logs if e["event"] == "backups_pruned")
    return BackupRun(due, Path(done["path"]), dt.datetime.fromisoformat(pruned["older_than"]))


async def build(settings: Settings, *, backups: bool = True) -> Built:
    """Every consumer of ``settings``, as ``Daemon.run`` builds them, on its own state DB."""
    store = await open_store(settings.daemon.db_path)
    calendar = ExchangeCalendar(settings.schedule.calendar)
    daemon = Daemon(settings, environ={}, clock=SimClock(START))
    ids = {name: i for i, name in enumerate([*STRATEGY_CLASSES, MANUAL], start=1)}
    sup = daemon._build_actors(store, calendar, ids)
    daemon.store = store
    scheduler = daemon._build_scheduler(calendar)
    actors = {name: sup.cell(name).factory() for name in sup.names()}
    backup = await _backup_run(store, settings) if backups else None
    return Built(settings, store, calendar, daemon, sup, actors, scheduler, backup)


# --- the table ----------------------------------------------------------------------------

Probe = Callable[[Built], object]


@dataclass(frozen=True)
class Row:
    """A changed, valid, non-default value and the probe that reads it back from its consumer."""

    changed: object
    probe: Probe
    via: str


def _stored_default(built: Built) -> float:
    """The ATR multiple the order manager books a stop with when an intent carries none."""
    terms = built.one(OrderManager)._orders._terms
    assert isinstance(terms, ReferenceFillTerms)
    return terms.stop_atr_multiple


def _field(of: Callable[[Built], object], key: str) -> Probe:
    """A probe reading ``key`` off what ``of`` returns."""

    def probe(b: Built) -> object:
        return getattr(of(b), key)

    return probe


def _strategy_field(name: str, key: str) -> Probe:
    """A probe reading ``key`` off strategy ``name``'s parameters."""

    def probe(b: Built) -> object:
        return getattr(b.strategy(name), key)

    return probe


def _mailbox_size(b: Built) -> int:
    (size,) = {b.sup.cell(name).mailbox.size for name in b.sup.names()}
    return size


def _sim_cash(b: Built) -> float:
    broker = b.broker("sim")
    assert isinstance(broker, SimBroker)
    return broker._initial_cash


def _alpaca(b: Built) -> AlpacaBroker:
    broker = b.broker("alpaca")
    assert isinstance(broker, AlpacaBroker)
    return broker


def _alpaca_data(b: Built) -> AlpacaDataParams:
    provider = b.provider("alpaca")
    assert isinstance(provider, AlpacaBarProvider)
    return provider.params


def _alphavantage(b: Built) -> AlphaVantageParams:
    provider = b.provider("alphavantage")
    assert isinstance(provider, AlphaVantageProvider)
    provider.close()
    return provider.params


def _alphavantage_key(b: Built) -> str | None:
    key = _plain(b.settings.secrets.alphavantage_api_key)
    data = b.data().model_copy(update={"provider": "alphavantage"})
    try:
        provider = make_provider(data, alphavantage_api_key=key)
    except ConfigError:
        return None
    assert isinstance(provider, AlphaVantageProvider)
    provider.close()
    return provider._api_key


def _synthetic(b: Built) -> SyntheticProvider:
    provider = b.provider("synthetic")
    assert isinstance(provider, SyntheticProvider)
    return provider


def _csv_path(b: Built) -> Path | None:
    if b.data().csv.path is None:
        return None  # no CsvProvider can be built: make_provider refuses
    provider = b.provider("csv")
    assert isinstance(provider, CsvProvider)
    return provider.path


def _alpaca_key(attr: str) -> Probe:
    def probe(b: Built) -> str | None:
        broker = b.broker("alpaca", fill_keys=False)
        return None if broker is None else str(getattr(broker, attr))

    return probe


def _board(b: Built) -> KillSwitchBoard:
    return b.one(KillSwitchBoard)


def _static_symbols(b: Built) -> tuple[str, ...]:
    universe = b.data().universe.model_copy(update={"mode": "static"})
    return load_universe(universe).symbols


def _backup_local(b: Built) -> dt.time:
    return b.backup.due.astimezone(ZoneInfo(b.settings.schedule.timezone)).time()


DAEMON: dict[str, Row] = {
    "daemon.state_dir": Row(Path("state"), lambda b: b.store.path.parent, "the state DB opened"),
    "daemon.run_dir": Row(
        Path("/run/tradingd-probe"),
        lambda b: b.settings.daemon.socket_path.parent,
        "derived: app.py binds ControlServer at daemon.socket_path (no builder to call)",
    ),
    "daemon.log_level": Row(
        "debug", lambda b: b.settings.daemon.log_level, "derived: cli.py configure_logging"
    ),
    "daemon.log_json": Row(
        True, lambda b: b.settings.daemon.log_json, "derived: cli.py configure_logging"
    ),
    "daemon.mailbox_size": Row(64, _mailbox_size, "every actor's mailbox"),
    "daemon.ask_timeout_s": Row(12.0, lambda b: b.sup.ask_timeout, "Supervisor"),
    "daemon.shutdown_timeout_s": Row(
        4.0, lambda b: b.sup.strategy.stop_timeout_s, "OneForOne: each actor's on_stop limit"
    ),
    "daemon.max_restarts": Row(7, lambda b: b.sup.strategy.max_restarts, "OneForOne"),
    "daemon.restart_window_s": Row(90.0, lambda b: b.sup.strategy.window_s, "OneForOne"),
    "daemon.restart_backoff_s": Row(1.5, lambda b: b.sup.strategy.backoff_s, "OneForOne"),
    "daemon.restart_backoff_max_s": Row(45.0, lambda b: b.sup.strategy.backoff_max_s, "OneForOne"),
}

PROCESS: dict[str, Row] = {
    "schedule.time": Row(dt.time(10, 15), lambda b: b.scheduler._at, "Scheduler"),
    "schedule.timezone": Row("America/Chicago", lambda b: b.scheduler._tz.key, "Scheduler"),
    "schedule.calendar": Row("XLON", lambda b: b.scheduler._calendar.name, "Scheduler"),
    "schedule.run_on_start": Row(False, lambda b: b.scheduler._run_on_start, "Scheduler"),
    "schedule.catch_up": Row(False, lambda b: b.scheduler._catch_up, "Scheduler"),
    "metrics.enabled": Row(
        False, lambda b: b.settings.metrics.enabled, "derived: app.py serves metrics if set"
    ),
    "metrics.host": Row(
        "127.0.0.2", lambda b: b.settings.metrics.host, "derived: app.py metrics.serve(host)"
    ),
    "metrics.port": Row(
        9999, lambda b: b.settings.metrics.port, "derived: app.py metrics.serve(port)"
    ),
    "control.group": Row(
        "tradingd-ops", lambda b: b.settings.control.group, "derived: app.py -> ControlServer"
    ),
    "control.idle_timeout_s": Row(
        30.0, lambda b: b.settings.control.idle_timeout_s, "derived: app.py -> ControlServer"
    ),
    "control.max_request_bytes": Row(
        4096, lambda b: b.settings.control.max_request_bytes, "derived: app.py -> ControlServer"
    ),
    "control.max_clients": Row(
        8, lambda b: b.settings.control.max_clients, "derived: app.py -> ControlServer"
    ),
    "backup.enabled": Row(
        False, lambda b: b.settings.backup.enabled, "derived: app.py starts daily_backups if set"
    ),
    "backup.retention_days": Row(
        30, lambda b: (b.backup.due - b.backup.older_than).days, "daily_backups: its prune"
    ),
    "backup.dir": Row(Path("backups-elsewhere"), lambda b: b.backup.path.parent, "daily_backups"),
    "backup.at": Row(dt.time(18, 30), _backup_local, "daily_backups: when it wakes"),
    # A backtest's, not the daemon's: tests/test_backtest_report.py runs one with it set.
    "backtest.benchmark": Row(
        "equal_weight",
        lambda b: b.settings.backtest.benchmark,
        "derived: backtest_report.benchmark_for",
    ),
}

DATA: dict[str, Row] = {
    "data.provider": Row("alpaca", lambda b: b.one(DataFeed)._provider.name, "DataFeed"),
    "data.history_days": Row(200, lambda b: b.data().history_days, "DataFeed"),
    "data.volatility_symbol": Row(
        "^VIX", lambda b: _synthetic(b).volatility_symbol, "the provider from DataFeed's params"
    ),
    "data.universe.mode": Row("csv", lambda b: b.data().universe.mode, "DataFeed"),
    "data.universe.symbols": Row(("AAA", "BBB"), _static_symbols, "load_universe (static)"),
    "data.universe.file": Row(Path("universe.csv"), lambda b: b.data().universe.file, "DataFeed"),
    "data.synthetic.seed": Row(7, lambda b: _synthetic(b).params.seed, "SyntheticProvider"),
    "data.synthetic.sectors": Row(4, lambda b: _synthetic(b).params.sectors, "SyntheticProvider"),
    "data.synthetic.start_price_min": Row(
        10.0, lambda b: _synthetic(b).params.start_price_min, "SyntheticProvider"
    ),
    "data.synthetic.start_price_max": Row(
        200.0, lambda b: _synthetic(b).params.start_price_max, "SyntheticProvider"
    ),
    "data.synthetic.corporate_actions_per_year": Row(
        2.5, lambda b: _synthetic(b).params.corporate_actions_per_year, "SyntheticProvider"
    ),
    "data.csv.path": Row(Path("bars"), _csv_path, "CsvProvider"),
    "data.alpaca.feed": Row("sip", lambda b: _alpaca_data(b).feed, "AlpacaBarProvider"),
    "data.alpaca.base_url": Row(
        "http://127.0.0.1:8089", lambda b: _alpaca_data(b).base_url, "AlpacaBarProvider"
    ),
    "data.alpaca.batch_size": Row(50, lambda b: _alpaca_data(b).batch_size, "AlpacaBarProvider"),
    "data.alpaca.timeout_s": Row(10.0, lambda b: _alpaca_data(b).timeout_s, "AlpacaBarProvider"),
    "data.alphavantage.base_url": Row(
        "http://127.0.0.1:8090", lambda b: _alphavantage(b).base_url, "AlphaVantageProvider"
    ),
    "data.alphavantage.calls_per_minute": Row(
        75, lambda b: _alphavantage(b).calls_per_minute, "AlphaVantageProvider"
    ),
    "data.alphavantage.max_retries": Row(
        5, lambda b: _alphavantage(b).max_retries, "AlphaVantageProvider"
    ),
    "data.alphavantage.backoff_s": Row(
        1.0, lambda b: _alphavantage(b).backoff_s, "AlphaVantageProvider"
    ),
    "data.alphavantage.timeout_s": Row(
        12.0, lambda b: _alphavantage(b).timeout_s, "AlphaVantageProvider"
    ),
    **{
        f"data.validation.{key}": Row(
            value, _field(lambda b: b.data().validation, key), "DataFeed -> validator"
        )
        for key, value in {
            "max_failed_share": 0.3,
            "min_failed_symbols": 2,
            "max_one_day_move": 0.4,
            "split_tolerance": 0.05,
            "max_zero_volume_run": 5,
            "max_missing_sessions": 8,
        }.items()
    },
}

_COMMON = {"enabled": False, "capital": 30000.0, "risk_per_trade": 0.02}
_OWN: dict[str, dict[str, object]] = {
    "rsi_mean_reversion": {
        **_COMMON,
        "stop_atr_multiple": 2.5,
        "breakout": True,
        "rsi_entry": 30.0,
        "rsi_exit": 55.0,
        "vwap_band": 0.04,
        "max_hold_days": 15,
    },
    "ma_crossover": {
        **_COMMON,
        "stop_atr_multiple": 3.5,
        "breakout": True,
        "fast": 10,
        "slow": 50,
        "adx_min": 25.0,
    },
    "momentum": {
        **_COMMON,
        "stop_atr_multiple": 4.0,
        "breakout": False,
        "lookback": 30,
        "threshold": 0.1,
        "volume_ratio_min": 1.5,
        "hold_days": 8,
        "exit_momentum": -0.02,
        "max_entries": 3,
    },
    "ml_momentum": {
        **_COMMON,
        "stop_atr_multiple": 1.5,
        "breakout": True,
        "probability_entry": 0.65,
        "horizon_days": 3,
        "hold_days": 4,
        "train_window_days": 200,
        "retrain_every_days": 10,
        "min_train_rows": 300,
        "regularization_c": 0.5,
        "max_entries": 4,
    },
}
STRATEGIES: dict[str, Row] = {
    f"strategies.{name}.{key}": Row(
        value,
        _strategy_field(name, key),
        "the strategy object inside its StrategyActor",
    )
    for name, keys in _OWN.items()
    for key, value in keys.items()
}

BROKER: dict[str, Row] = {
    "broker.kind": Row(
        "alpaca",
        lambda b: _inner_broker(b).name,
        "Daemon._build_actors' broker (credentials from the environment)",
    ),
    "broker.paper": Row(False, lambda b: _alpaca(b)._paper, "AlpacaBroker"),
    "broker.live_confirm": Row(
        True,
        lambda b: not _alpaca(b)._paper,
        "AlpacaBroker trades live only with paper = false (set in the same file) and this",
    ),
    "broker.base_url": Row("http://127.0.0.1:8081", lambda b: _alpaca(b)._base_url, "AlpacaBroker"),
    "broker.timeout_s": Row(7.5, lambda b: _alpaca(b).timeout_s, "AlpacaBroker"),
    "broker.initial_cash": Row(50000.0, _sim_cash, "SimBroker"),
}


def _inner_broker(b: Built) -> Any:
    assert isinstance(b.daemon.broker, InstrumentedBroker)
    return b.daemon.broker.inner


_SWITCHES = {
    "max_daily_drawdown": 0.06,
    "max_consecutive_failures": 4,
    "max_rejection_rate": 0.6,
    "min_rejections": 6,
    "max_drawdown": 0.2,
}
_REGIME = {
    "low_vix": 12.0,
    "high_vix": 22.0,
    "crisis_vix": 40.0,
    "heat_low": 0.35,
    "heat_normal": 0.25,
    "heat_high": 0.15,
    "heat_crisis": 0.05,
    "size_low": 1.1,
    "size_normal": 0.9,
    "size_high": 0.7,
    "size_crisis": 0.1,
    "max_vix_age_sessions": 2,
}
_CORRELATION = {
    "full_size_below": 0.4,
    "reject_above": 0.85,
    "min_multiplier": 0.3,
    "long_window": 90,
    "short_window": 30,
}


def _poll_keyword(name: str) -> Callable[[Built], Any]:
    def probe(b: Built) -> Any:
        ref = b.sup.ref("order_manager")
        task = poll_task(ref, SimClock(START), b.calendar, settings=b.settings)
        assert isinstance(task, functools.partial)
        return task.keywords[name]

    return probe


ORDERS: dict[str, Row] = {
    "orders.broker_stops": Row(
        False, lambda b: b.one(OrderManager)._broker_stops, "OrderManager (and the poll)"
    ),
    "orders.poll_interval_s": Row(
        30.0, _poll_keyword("interval_s"), "poll_task: the daemon's order poll"
    ),
}


def _limit(key: str) -> Callable[[Built], Any]:
    """A ``[limits]`` key as the cycle holds it, after checking the order manager holds the same."""

    def probe(b: Built) -> Any:
        cycle = b.cycle().risk.limits
        assert b.one(OrderManager)._limits == cycle
        return getattr(cycle, key)

    return probe


LIMITS: dict[str, Row] = {
    f"limits.{key}": Row(value, _limit(key), "the cycle's filters and the OrderManager")
    for key, value in {
        "max_order_notional": 12_000.0,
        "max_order_qty": 500,
        "max_position_notional": 15_000.0,
        "price_collar_pct": 0.05,
        "max_orders_per_cycle": 12,
        "max_orders_per_day": 20,
        "restricted_symbols": ("GME", "AMC"),
    }.items()
}

RISK: dict[str, Row] = {
    "risk.trading_disabled": Row(
        True, lambda b: any(v.name == ENV_DISABLED for v in _board(b).active()), "KillSwitchBoard"
    ),
    "risk.disabled_strategies": Row(
        ("momentum",),
        lambda b: tuple(sorted(disabled_strategies(_board(b).active()))),
        "KillSwitchBoard",
    ),
    "risk.daily_loss_limit": Row(
        0.03, lambda b: b.cycle().risk.loss.daily_loss_limit, "the cycle's risk params"
    ),
    **{
        f"risk.{key}": Row(
            value,
            _field(lambda b: b.cycle().risk.kill_switches, key),
            "the cycle's kill-switch params",
        )
        for key, value in _SWITCHES.items()
    },
    "risk.reconcile_tolerance": Row(0.02, lambda b: b.one(Reconciler)._tolerance, "Reconciler"),
    "risk.stop_atr_multiple": Row(
        2.0,
        _stored_default,
        "OrderManager's order store (and the cycle: see the special case below)",
    ),
    "risk.sizing_base": Row("strategy", lambda b: b.cycle().risk.sizing_base, "the cycle"),
    **{
        f"risk.regime.{key}": Row(
            value, _field(lambda b: b.cycle().risk.regime, key), "the cycle's regime"
        )
        for key, value in _REGIME.items()
    },
    **{
        f"risk.correlation.{key}": Row(
            value,
            _field(lambda b: b.cycle().risk.correlation, key),
            "the cycle's correlation filter",
        )
        for key, value in _CORRELATION.items()
    },
    "risk.pending.decay_sessions": Row(
        5, lambda b: b.cycle().risk.pending.decay_sessions, "the cycle's pending signals"
    ),
}


def _email_attr(attr: str) -> Probe:
    return lambda b: getattr(b.email(), attr)


NOTIFY: dict[str, Row] = {
    "notify.smtp_host": Row(
        "smtp.example.com", lambda b: _attr(b.email(complete=False), "host"), "EmailChannel"
    ),
    "notify.smtp_port": Row(465, _email_attr("port"), "EmailChannel"),
    "notify.smtp_security": Row("tls", _email_attr("security"), "EmailChannel"),
    "notify.smtp_user": Row("tradingd@example.com", _email_attr("user"), "EmailChannel"),
    "notify.mail_from": Row(
        "tradingd@example.com",
        lambda b: _attr(b.email(complete=False), "mail_from"),
        "EmailChannel",
    ),
    "notify.mail_to": Row(
        ("ops@example.com",),
        lambda b: _attr(b.email(complete=False), "mail_to", ()),
        "EmailChannel",
    ),
    "notify.webhook_url": Row(
        "https://hooks.example.com/T0/B0",
        lambda b: _attr(b.webhook(complete=False), "_url"),
        "WebhookChannel",
    ),
    "notify.webhook_style": Row("slack", lambda b: _attr(b.webhook(), "style"), "WebhookChannel"),
    "notify.heartbeat_url": Row(
        "https://hc-ping.example.com/0b1c", lambda b: b.daemon.heartbeat.url, "Heartbeat"
    ),
}


def _attr(obj: object, name: str, missing: object = None) -> object:
    return missing if obj is None else getattr(obj, name)


SECRETS_TABLE: dict[str, Row] = {
    "secrets.alpaca_api_key": Row(
        SECRETS["alpaca_api_key"], _alpaca_key("_api_key"), "AlpacaBroker (environment)"
    ),
    "secrets.alpaca_secret_key": Row(
        SECRETS["alpaca_secret_key"], _alpaca_key("_secret_key"), "AlpacaBroker (environment)"
    ),
    "secrets.alphavantage_api_key": Row(
        SECRETS["alphavantage_api_key"], _alphavantage_key, "AlphaVantageProvider (environment)"
    ),
    "secrets.smtp_password": Row(
        SECRETS["smtp_password"], _email_attr("_password"), "EmailChannel (environment)"
    ),
}

TABLE: dict[str, Row] = {
    **DAEMON,
    **PROCESS,
    **DATA,
    **STRATEGIES,
    **BROKER,
    **ORDERS,
    **LIMITS,
    **RISK,
    **NOTIFY,
    **SECRETS_TABLE,
}


# --- helpers ------------------------------------------------------------------------------


def _leaves(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every leaf setting of ``model``, dotted."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def _value_at(settings: Settings, key: str) -> object:
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return _plain(value) if isinstance(value, SecretStr) else value


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _changed_toml(rows: Mapping[str, Row]) -> str:
    """A TOML file setting every non-secret key of ``rows`` to its changed value."""
    sections: dict[str, list[str]] = {}
    for key, row in rows.items():
        section, _, leaf = key.rpartition(".")
        if section != "secrets":
            sections.setdefault(section, []).append(f"{leaf} = {_toml_value(row.changed)}")
    return "".join(f"[{s}]\n" + "\n".join(lines) + "\n\n" for s, lines in sections.items())


def _example_keys(text: str) -> set[str]:
    """Every key the example sets, or shows commented out as ``# key = value``, dotted."""
    keys: set[str] = set()

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for name, value in table.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{name}.")
            else:
                keys.add(f"{prefix}{name}")

    walk(tomllib.loads(text), "")
    section: str | None = None
    for line in text.splitlines():
        header = re.match(r"\[([a-z_.]+)\]", line)
        if header:
            section = header.group(1)
        commented = re.match(r"# ?([a-z_][a-z0-9_]*) = ", line)
        if commented and section is not None:
            keys.add(f"{section}.{commented.group(1)}")
    return keys


def _prepare(cwd: Path) -> None:
    """The files the changed settings name (relative paths resolve against ``cwd``)."""
    (cwd / "bars").mkdir()
    (cwd / "universe.csv").write_text("symbol\nAAA\nBBB\n", encoding="utf-8")


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in ``tmp_path``: the default ``./var`` state directory lands there."""
    monkeypatch.chdir(tmp_path)
    _prepare(tmp_path)
    return tmp_path


async def _close(built: Built) -> None:
    await built.store.close()


# --- tests --------------------------------------------------------------------------------


def test_the_table_has_every_settings_key() -> None:
    """A key in Settings without a row (or a row without a key) fails: add its probe."""
    keys = set(_leaves(Settings))
    assert sorted(keys - set(TABLE)) == [], "Settings keys without a probe"
    assert sorted(set(TABLE) - keys) == [], "rows for keys Settings does not have"


def test_every_example_key_is_a_setting() -> None:
    """Every key ops/tradingd.example.toml sets or shows commented out exists in Settings."""
    example = _example_keys(EXAMPLE.read_text(encoding="utf-8"))
    assert sorted(example - set(_leaves(Settings))) == []
    assert "strategies.momentum.stop_atr_multiple" in example


def test_changed_values_are_not_the_defaults() -> None:
    """Each row changes its key: the changed value differs from the default."""
    defaults = load_settings(None, {})
    same = [k for k, row in TABLE.items() if _value_at(defaults, k) == row.changed]
    assert same == []


async def test_every_key_reaches_its_consumer(cwd: Path) -> None:
    """Defaults give each consumer the default; a file changing every key gives the change."""
    defaults = load_settings(None, environ={})
    path = cwd / "tradingd.toml"
    path.write_text(_changed_toml(TABLE), encoding="utf-8")
    environ = {SECRET_ENV[name]: value for name, value in SECRETS.items()}
    changed = load_settings(path, environ=environ)

    default_built = await build(defaults)
    try:
        got_default = {key: row.probe(default_built) for key, row in TABLE.items()}
    finally:
        await _close(default_built)
    changed_built = await build(changed)
    try:
        got_changed = {key: row.probe(changed_built) for key, row in TABLE.items()}
    finally:
        await _close(changed_built)

    want_default = {key: _value_at(defaults, key) for key in TABLE}
    want_changed = {key: row.changed for key, row in TABLE.items()}
    assert {k: v for k, v in got_default.items() if v != want_default[k]} == {}
    assert {k: v for k, v in got_changed.items() if v != want_changed[k]} == {}


async def test_risk_stop_multiple_is_every_strategys_default(cwd: Path) -> None:
    """[risk] stop_atr_multiple 3 -> 2 moves every strategy without its own key, not the others."""
    path = cwd / "tradingd.toml"
    path.write_text(
        "[risk]\nstop_atr_multiple = 2.0\n[strategies.momentum]\nstop_atr_multiple = 4.0\n",
        encoding="utf-8",
    )
    for settings, own, risk in (
        (load_settings(None, {}), 3.0, 3.0),
        (load_settings(path, {}), 4.0, 2.0),
    ):
        built = await build(settings, backups=False)
        try:
            cycle = built.cycle()
            multiples = {name: cycle.stop_multiple(name) for name in STRATEGY_CLASSES}
            stored_default = _stored_default(built)
        finally:
            await _close(built)
        others = {name: risk for name in STRATEGY_CLASSES if name != "momentum"}
        assert multiples == {**others, "momentum": own}
        assert stored_default == risk
