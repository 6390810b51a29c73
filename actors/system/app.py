"""The composition root: builds the actor graph from ``Settings`` and runs the process.

Start-up order (each step must succeed before the next):
store (locked, migrated) -> calendar -> actors in dependency order -> metrics
exporter -> control socket -> scheduler -> ``READY=1``. Shutdown runs it
backwards: ``STOPPING=1``, scheduler, control socket, actors (reverse
order, each with a shielded, time-limited ``on_stop``), exporter, store.

- SIGTERM / SIGINT: graceful stop, exit 0.
- SIGHUP (and ``tradectl reload``): reload the configuration; a bad file is
  rejected with an error and the old configuration stays. Around a reload
  systemd hears ``RELOADING=1`` ... ``READY=1``.
- Watchdog: ``WATCHDOG=1`` only after a heartbeat has gone through every
  running actor's mailbox, so a wedged actor, not only a dead loop, stops it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import TaskStatus

from actors.brokers.base import Broker
from actors.brokers.instrumented import InstrumentedBroker
from actors.brokers.prices import ProviderPriceSource
from actors.brokers.sim import SimBroker
from actors.cycle import kill_switches
from actors.cycle.runner import CycleAlreadyCompleted, WaitCycle
from actors.data_feed.providers import BarProvider, make_provider
from actors.market.calendar import ExchangeCalendar, trading_date
from actors.market.scheduler import Scheduler, default_run_id
from actors.messages import (
    Alert,
    ApplySettings,
    CycleCompleted,
    CycleTrigger,
    GetKillSwitches,
    KillSwitchCleared,
    KillSwitchTripped,
    StartCycle,
    TripKillSwitch,
)
from actors.metrics import Metrics
from actors.notifier.actor import Flush, Notifier
from actors.notifier.channels import Channel, EmailChannel, Message, WebhookChannel
from actors.notifier.digest import render_digest
from actors.notifier.digest_data import digest_data, find_cycle
from actors.notifier.heartbeat import Heartbeat
from actors.store import open_store
from actors.store.bars import BarCache
from actors.store.broker_state import BrokerStateStore
from actors.store.cycles import CycleJournal
from actors.store.signals import SignalStore
from actors.store.state import SystemState
from actors.strategies.registry import STRATEGY_CLASSES
from actors.system.backup import daily_backups
from actors.system.commands import ControlCommands
from actors.system.config import Settings, alpaca_key_mismatch, load_settings
from actors.system.graph import MANUAL, live_graph
from actors.system.order_poll import poll_task
from daemon import __version__
from daemon.clock import Clock, WallClock
from daemon.control import CommandTable, ControlServer
from daemon.errors import ConfigError
from daemon.logging import register_secret, set_level
from daemon.messages import ActorCrashed
from daemon.metrics import watch_event_loop_lag
from daemon.store import Store
from daemon.supervisor import Supervisor
from daemon.systemd import SystemdNotifier

log = structlog.get_logger()

#: Changing these needs a restart: they are bound or opened once at start.
RESTART_ONLY = (
    "daemon",
    "metrics",
    "control",
    "schedule",
    "data",
    "broker",
    "orders",
    "backup",
)


class Daemon:
    """One tradingd process."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.environ = dict(os.environ if environ is None else environ)
        self.clock: Clock = clock or WallClock()
        self.notifier = notifier or SystemdNotifier.from_env(self.environ)
        self.metrics = Metrics()
        self.heartbeat = Heartbeat(settings.notify.heartbeat_url, metrics=self.metrics)
        self.started_monotonic = time.monotonic()
        self.store: Store | None = None
        self.supervisor: Supervisor | None = None
        self.scheduler: Scheduler | None = None
        self.metrics_port: int | None = None
        self.broker: Broker | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._stop = anyio.Event()
        self._ready = anyio.Event()
        self._last_cycle: CycleCompleted | None = None
        for secret in self._secret_values():
            register_secret(secret)

    def _secret_values(self) -> list[str]:
        s = self.settings.secrets
        fields = (s.alpaca_api_key, s.alpaca_secret_key, s.alphavantage_api_key, s.smtp_password)
        return [f.get_secret_value() for f in fields if f is not None]

    # ------------------------------------------------------------ running

    async def run(
        self,
        *,
        once: bool = False,
        asof: dt.date | None = None,
        force: bool = False,
        allow_entries: bool = False,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> int:
        """Run until SIGTERM/SIGINT (or, with ``once``, one cycle); the process exit code.

        ``force`` and ``allow_entries`` are the once-cycle's (see ``StartCycle``).
        """
        cfg = self.settings
        store = await open_store(cfg.daemon.db_path)
        self.store = store
        exit_code = 0
        try:
            await check_account(store, cfg, self.clock.now())
            calendar = ExchangeCalendar(cfg.schedule.calendar)
            await anyio.to_thread.run_sync(calendar.load)
            strategy_ids = await _register_strategies(store, cfg)
            supervisor = self._build_actors(store, calendar, strategy_ids)
            self.metrics.watch_supervisor(supervisor)
            async with anyio.create_task_group() as tg:
                await tg.start(supervisor.run)
                control_scope, scheduler_scope = await self._start_services(
                    tg, store, calendar, supervisor, once=once
                )
                await tg.start(self._signal_loop)
                await self._seed_metrics(store, supervisor)
                self._announce_ready()
                self._ready.set()
                task_status.started()
                if once:
                    exit_code = await self._run_once(
                        calendar, asof, force=force, allow_entries=allow_entries
                    )
                else:
                    await self._stop.wait()
                self.notifier.stopping()
                log.info("daemon_stopping")
                scheduler_scope.cancel()
                await supervisor.stop()
                control_scope.cancel()
                tg.cancel_scope.cancel()
        finally:
            with anyio.move_on_after(10, shield=True):
                if self.broker is not None:
                    await self.broker.close()
                await anyio.to_thread.run_sync(self.metrics.shutdown)
                await store.close()
            log.info("daemon_stopped", exit_code=exit_code)
        return exit_code

    async def _start_services(
        self,
        tg: anyio.abc.TaskGroup,
        store: Store,
        calendar: ExchangeCalendar,
        supervisor: Supervisor,
        *,
        once: bool,
    ) -> tuple[anyio.CancelScope, anyio.CancelScope]:
        """Metrics, control socket, scheduler, watchdog and backups; the two scopes to cancel."""
        cfg = self.settings
        if cfg.metrics.enabled:
            self.metrics_port = await anyio.to_thread.run_sync(
                self.metrics.serve, cfg.metrics.host, cfg.metrics.port
            )
            log.info("metrics_listening", host=cfg.metrics.host, port=self.metrics_port)
        control = ControlServer(
            cfg.daemon.socket_path,
            self._commands(calendar),
            mode_group=cfg.control.group,
            max_request_bytes=cfg.control.max_request_bytes,
            idle_timeout_s=cfg.control.idle_timeout_s,
            max_clients=cfg.control.max_clients,
            on_request=self._count_request,
        )
        control_scope = anyio.CancelScope()
        await tg.start(self._scoped, control_scope, control.run)
        scheduler_scope = anyio.CancelScope()
        if not once:
            self.scheduler = self._build_scheduler(calendar)
            await tg.start(self._scoped, scheduler_scope, self.scheduler.run)
        tg.start_soon(watch_event_loop_lag, self.metrics)
        tg.start_soon(self.heartbeat.run)  # [notify] heartbeat_url: pings off the trading path
        tg.start_soon(self._watchdog_loop, supervisor)
        if not once:  # [orders]: fills and resting stops kept during each session
            tg.start_soon(
                poll_task(supervisor.ref("order_manager"), self.clock, calendar, settings=cfg)
            )
        if cfg.backup.enabled and not once:  # [backup]: the daily backup task
            tg.start_soon(
                functools.partial(
                    daily_backups,
                    store,
                    cfg,
                    self.clock,
                    on_outcome=lambda o: self.metrics.backups.labels(outcome=o).inc(),
                )
            )
        return control_scope, scheduler_scope

    def _announce_ready(self) -> None:
        """READY=1 to systemd, the status line, and the ``daemon_ready`` log."""
        cfg = self.settings
        self.notifier.ready()
        self.notifier.status("ready; waiting for the next cycle")
        log.info(
            "daemon_ready",
            version=__version__,
            pid=os.getpid(),
            socket=str(cfg.daemon.socket_path),
            seconds=round(time.monotonic() - self.started_monotonic, 3),
        )

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    @staticmethod
    async def _scoped(scope: anyio.CancelScope, fn: Any, *, task_status: TaskStatus[None]) -> None:
        """Run ``fn(task_status=...)`` inside ``scope`` so it can be stopped on its own."""
        with scope:
            await fn(task_status=task_status)

    async def _run_once(
        self,
        calendar: ExchangeCalendar,
        asof: dt.date | None,
        *,
        force: bool = False,
        allow_entries: bool = False,
    ) -> int:
        """One cycle for ``asof`` (default: the trading date now); a done date places nothing."""
        assert self.supervisor is not None
        day = asof or trading_date(self.clock.now(), calendar)
        risk = self.supervisor.ref("risk_supervisor")
        run_id = default_run_id(day, CycleTrigger.START, self.clock.now())
        start = StartCycle(run_id, day, CycleTrigger.START, force, allow_entries)
        try:
            await risk.ask(start)
        except CycleAlreadyCompleted as exc:
            # A done date is not an error: nothing to do, and the operator is told why.
            log.info("cycle_refused", asof=str(day), completed_run=exc.run_id, reason=str(exc))
            print(f"tradingd: {exc}", flush=True)
            return 0
        self.heartbeat.started(run_id)
        result: CycleCompleted = await risk.ask(WaitCycle(run_id), timeout=3600)
        # The digest and the heartbeat are queued by now; deliver them before the process exits.
        await self.supervisor.ref("notifier").ask(Flush(timeout_s=60.0), timeout=90)
        await self.heartbeat.flush(timeout_s=3 * self.heartbeat.timeout_s)
        return 0 if result.status == "completed" else 1

    # ------------------------------------------------------------ the actor graph

    def _build_actors(
        self, store: Store, calendar: ExchangeCalendar, strategy_ids: dict[str, int]
    ) -> Supervisor:
        secrets = self.settings.secrets
        provider = make_provider(
            self.settings.data,
            alpaca_api_key=_secret(secrets.alpaca_api_key),
            alpaca_secret_key=_secret(secrets.alpaca_secret_key),
            alphavantage_api_key=_secret(secrets.alphavantage_api_key),
            cache=BarCache(store),
            sessions_fn=calendar.sessions_between,
        )
        broker = InstrumentedBroker(self._build_broker(store, calendar, provider), self.metrics)
        self.broker = broker
        sup = live_graph(
            settings=lambda: self.settings,
            store=store,
            calendar=calendar,
            clock=self.clock,
            metrics=self.metrics,
            strategy_ids=strategy_ids,
            provider=provider,
            broker=broker,
            publish=self._publish,
            on_event=self._on_supervisor_event,
            on_escalate=self._escalate,
        )
        channels = build_channels(self.settings)
        sup.add(
            "notifier",
            lambda: Notifier(
                channels=channels,
                clock=self.clock,
                store=store,
                metrics=self.metrics,
                digest_builder=lambda event: _digest_message(store, event),
                channels_from=build_channels,
            ),
            mailbox_size=self.settings.daemon.mailbox_size,
        )
        self.supervisor = sup
        return sup

    def _build_broker(
        self, store: Store, calendar: ExchangeCalendar, provider: BarProvider
    ) -> Broker:
        b = self.settings.broker
        if b.kind == "sim":
            return SimBroker(
                store,
                clock=self.clock,
                calendar=calendar,
                prices=ProviderPriceSource(provider, calendar, self.clock),
                initial_cash=b.initial_cash,
                actions=provider,
            )
        from actors.brokers.alpaca import AlpacaBroker

        key = _secret(self.settings.secrets.alpaca_api_key)
        secret = _secret(self.settings.secrets.alpaca_secret_key)
        if key is None or secret is None:
            raise ConfigError("secrets.alpaca_api_key", "required when broker.kind = 'alpaca'")
        mismatch = alpaca_key_mismatch(key, live=b.live_trading)
        if mismatch is not None:
            raise ConfigError("secrets.alpaca_api_key", mismatch)
        return AlpacaBroker(
            key, secret, paper=not b.live_trading, base_url=b.base_url, timeout_s=b.timeout_s
        )

    def _build_scheduler(self, calendar: ExchangeCalendar) -> Scheduler:
        assert self.supervisor is not None
        assert self.store is not None
        s = self.settings.schedule
        journal = CycleJournal(self.store)
        risk = self.supervisor.ref("risk_supervisor")

        async def emit(msg: StartCycle) -> None:
            await risk.ask(msg)
            self.heartbeat.started(msg.run_id)  # only once the cycle really began

        return Scheduler(
            clock=self.clock,
            calendar=calendar,
            at=s.time,
            timezone=s.timezone,
            run_on_start=s.run_on_start,
            catch_up=s.catch_up,
            completed=journal.completed_for,
            emit=emit,
        )

    async def _publish(self, event: object) -> None:
        """Events for the operator: metrics, systemd STATUS, and the notifier (alerts, digest)."""
        if self.supervisor is not None and isinstance(
            event, KillSwitchTripped | KillSwitchCleared | CycleCompleted | Alert
        ):
            await self.supervisor.ref("notifier").tell(event)
        if isinstance(event, KillSwitchTripped):
            self.metrics.kill_switch_active.labels(switch=event.switch).set(1)
        elif isinstance(event, KillSwitchCleared):
            self.metrics.kill_switch_active.labels(switch=event.switch).set(0)
        elif isinstance(event, CycleCompleted):
            self._last_cycle = event
            self.heartbeat.finished(event.run_id, str(event.status))
            self.notifier.status(
                f"last cycle {event.run_id} ({event.asof}): {event.status}; "
                f"signals {sum(event.raw_signals.values())}"
            )

    def _on_supervisor_event(self, event: object) -> None:
        if isinstance(event, ActorCrashed):
            log.warning("actor_restarting", actor=event.actor, after=event.message_type)
            if self.supervisor is not None and event.actor != "notifier":
                task = asyncio.ensure_future(self.supervisor.ref("notifier").tell(event))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _escalate(self, actor: str, error: BaseException) -> None:
        assert self.supervisor is not None
        await self.supervisor.ref("kill_switches").ask(
            TripKillSwitch(
                kill_switches.ACTOR_CRASH_LOOP,
                f"actor {actor} crashed too often ({type(error).__name__}: {error})",
                "supervisor",
            )
        )

    # ------------------------------------------------------------ watchdog, signals, reload

    async def _seed_metrics(self, store: Store, supervisor: Supervisor) -> None:
        """Labelled series at 0 (so `increase()` sees the first event) and facts from the store."""
        m = self.metrics
        for name in supervisor.names():
            m.actor_restarts.labels(actor=name)
        known = [
            kill_switches.HALT,
            kill_switches.ENTRIES_PAUSED,
            kill_switches.ENV_DISABLED,
            kill_switches.ACTOR_CRASH_LOOP,
            *kill_switches.AUTO_SWITCHES,
            *(kill_switches.strategy_switch(n) for n in STRATEGY_CLASSES),
        ]
        for switch in known:
            m.kill_switch_active.labels(switch=switch).set(0)
        for switch in await supervisor.ref("kill_switches").ask(GetKillSwitches()):
            m.kill_switch_active.labels(switch=switch.name).set(1)
        for status in ("completed", "halted", "failed"):
            m.cycles.labels(status=status)
        for name in STRATEGY_CLASSES:
            m.strategy_failures.labels(strategy=name)
        for channel in build_channels(self.settings):
            for outcome in ("sent", "retried", "failed", "deduplicated", "dropped"):
                m.notifications.labels(channel=channel.name, outcome=outcome)
        last = await CycleJournal(store).last(status="completed")
        if last is not None and last.finished_at is not None:
            m.last_cycle_success.set(last.finished_at.timestamp())
        recon = await BrokerStateStore(store).latest("RECONCILIATION")
        if recon is not None and recon.passed:
            m.last_reconciliation_success.set(recon.taken_at.timestamp())

    async def _watchdog_loop(self, supervisor: Supervisor) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            answered = await supervisor.heartbeat(timeout=interval)
            if all(answered.values()):
                self.notifier.watchdog()
                self.metrics.watchdog_pings.inc()
            else:
                wedged = sorted(name for name, ok in answered.items() if not ok)
                self.metrics.watchdog_missed.inc()
                log.error("watchdog_withheld", wedged_actors=wedged)
            await anyio.sleep(interval)

    async def _signal_loop(self, *, task_status: TaskStatus[None]) -> None:
        """Handle signals; ready only once the handlers replace the default actions."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await self.reload()
                else:
                    log.info("signal_received", signal=signal.Signals(signum).name)
                    self.request_stop()

    async def reload(self) -> dict[str, Any]:
        """Load the configuration again; keep the old one when the new one is bad."""
        self.notifier.reloading()
        try:
            new = await anyio.to_thread.run_sync(load_settings, self.config_path, self.environ)
        except ConfigError as exc:
            self.metrics.config_reloads.labels(outcome="rejected").inc()
            log.error("config_reload_rejected", key=exc.key, reason=exc.reason)
            self.notifier.ready()
            return {"reloaded": False, "error": str(exc)}
        old, self.settings = self.settings, new
        changed = changed_keys(old, new)
        needs_restart = [k for k in changed if k.split(".", 1)[0] in RESTART_ONLY]
        applied = [k for k in changed if k not in needs_restart]
        set_level(new.daemon.log_level)
        self.heartbeat.url = new.notify.heartbeat_url
        for secret in self._secret_values():
            register_secret(secret)
        if self.supervisor is not None:
            for name in self.supervisor.names():
                await self.supervisor.ref(name).tell(ApplySettings(new))
        self.metrics.config_reloads.labels(outcome="applied").inc()
        log.info("config_reloaded", applied=applied, needs_restart=needs_restart)
        self.notifier.ready()
        return {"reloaded": True, "applied": applied, "needs_restart": needs_restart}

    def _count_request(self, command: str, outcome: str, _seconds: float) -> None:
        self.metrics.control_requests.labels(command=command, outcome=outcome).inc()

    # ------------------------------------------------------------ control commands

    def _commands(self, calendar: ExchangeCalendar) -> CommandTable:
        return ControlCommands(self, calendar).table()


#: SystemState key: which broker account the state database's book belongs to.
ACCOUNT_KEY = "broker.account"


def account_identity(cfg: Settings) -> str:
    """The account a configuration trades: ``sim``, ``alpaca-paper`` or ``alpaca-live``
    (with a non-default ``base_url``, its address too)."""
    b = cfg.broker
    if b.kind == "sim":
        return "sim"
    name = "alpaca-paper" if b.paper else "alpaca-live"
    return f"{name} at {b.base_url}" if b.base_url else name


async def check_account(store: Store, cfg: Settings, now: dt.datetime) -> None:
    """The state database holds one account's book: refuse to start on another's.

    Reconciling the demo's simulated book against a real Alpaca account would report a
    mismatch for every position (or, adopted, mix the two). The first start records the
    account; a later start with another one is a ``ConfigError`` naming the command
    that starts from a fresh state.
    """
    state = SystemState(store)
    mine = account_identity(cfg)
    recorded = await state.get(ACCOUNT_KEY)
    if recorded is None:
        await state.set(ACCOUNT_KEY, mine, now, durable=True)
        return
    if recorded == mine:
        return
    db = cfg.daemon.db_path
    raise ConfigError(
        "broker.kind",
        f"the state database {db} holds the book of the {recorded} account, and this"
        f" configuration trades the {mine} account; start from a fresh state: stop the"
        f" daemon, then `mv {db} {db}.{recorded.split()[0]}` (keep it: it is that account's"
        " history) and start again",
    )


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The dotted keys whose values differ between two configurations (secrets by name only)."""

    def leaves(data: Any, prefix: str) -> dict[str, Any]:
        if isinstance(data, dict):
            out: dict[str, Any] = {}
            for key, value in data.items():
                out |= leaves(value, f"{prefix}{key}.")
            return out
        return {prefix.rstrip("."): data}

    a = leaves(old.model_dump(mode="json"), "")
    b = leaves(new.model_dump(mode="json"), "")
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def build_channels(settings: Settings) -> list[Channel]:
    """The notification channels ``[notify]`` configures (none: alerts go to the log only)."""
    n = settings.notify
    channels: list[Channel] = []
    if n.smtp_host and n.mail_to and n.mail_from:
        password = _secret(settings.secrets.smtp_password)
        channels.append(
            EmailChannel(
                n.smtp_host,
                n.smtp_port,
                n.smtp_security,
                n.smtp_user,
                password,
                n.mail_from,
                n.mail_to,
            )
        )
    if n.webhook_url:
        channels.append(WebhookChannel(n.webhook_url, style=n.webhook_style))
    return channels


async def _digest_message(store: Store, event: CycleCompleted) -> Message:
    """The daily digest of ``event``'s cycle, read from the store."""
    return render_digest(await digest_data(store, await find_cycle(store, run_id=event.run_id)))


async def _register_strategies(store: Store, cfg: Settings) -> dict[str, int]:
    """Each configured strategy's id in the store (created on first run), and the manual book's."""
    signals = SignalStore(store)
    strategy_ids = {
        name: await signals.ensure_strategy(name, name.replace("_", " "), params.capital)
        for name, params in cfg.strategies.items()
    }
    strategy_ids[MANUAL] = await signals.ensure_strategy(
        MANUAL, "positions adopted from the broker or placed by hand", 0.0
    )
    return strategy_ids
