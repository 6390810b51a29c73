"""The one composition root: the actor graph, for the live daemon and for simulated accounts.

``live_graph`` (the daemon) and ``simulated_graph`` (backtest, replay, the
reliability harness, scenarios, benchmarks and tests) register the same actors
through one function: kill-switch board, data feed, order manager, reconciler,
one actor per strategy and the CycleRunner (as ``risk_supervisor``). The
callers choose only the clock, the provider (or a precomputed market), the
broker and the store. There is one implementation of strategies, risk rules,
costs and order handling.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from actors.brokers.base import Broker
from actors.brokers.instrumented import InstrumentedBroker
from actors.brokers.market_prices import MarketPrices
from actors.brokers.prices import ProviderPriceSource
from actors.brokers.sim import PriceSource, SimBroker
from actors.cycle.context import CycleDeps
from actors.cycle.kill_switch_board import KillSwitchBoard
from actors.cycle.runner import CycleRunner, WaitCycle
from actors.data_feed.actor import DataFeed
from actors.data_feed.market import PrecomputedMarket
from actors.data_feed.providers import BarProvider
from actors.market.calendar import ExchangeCalendar
from actors.messages import CycleCompleted, CycleTrigger, StartCycle
from actors.metrics import Metrics
from actors.orders.manager import OrderManager
from actors.reconciliation.reconciler import Reconciler
from actors.risk.fill_terms import ReferenceFillTerms
from actors.store import open_store
from actors.store.corporate_actions import CorporateActionStore
from actors.store.cycles import CycleJournal
from actors.store.equity import EquityCloses
from actors.store.models import ModelStore
from actors.store.orders import OrderStore
from actors.store.pending import PendingStore
from actors.store.signals import SignalStore
from actors.store.state import KillSwitchStore, SystemState
from actors.strategies.actor import StrategyActor
from actors.strategies.base import Strategy
from actors.strategies.params import StrategiesParams
from actors.strategies.registry import STRATEGY_CLASSES
from actors.system.config import Settings
from daemon.actor import ActorRef
from daemon.clock import Clock, SimClock, WallClock
from daemon.logging import EventLog
from daemon.store import Store
from daemon.supervisor import EscalationHook, EventSink, OneForOne, Supervisor

#: The pseudo-strategy that owns positions adopted from the broker or placed by hand.
MANUAL = "manual"

#: Where in a session a simulated account stands when it runs the cycle / marks the close.
AFTER_OPEN = dt.timedelta(minutes=1)
AFTER_CLOSE = dt.timedelta(minutes=1)

#: How long a simulated graph's supervisor may take to stop on the way out.
STOP_TIMEOUT_S = 30.0

Publish = Callable[[object], Awaitable[None]]
SettingsSource = Settings | Callable[[], Settings]
#: Builds the simulated account's broker on the graph's store and clock.
BrokerFactory = Callable[[Store, SimClock], Broker]


@dataclass(frozen=True, slots=True)
class _Wiring:
    """What the actors of one graph are built from."""

    settings: Callable[[], Settings]
    store: Store
    calendar: ExchangeCalendar
    clock: Clock
    metrics: Metrics
    strategy_ids: dict[str, int]
    provider: BarProvider
    broker: Broker
    publish: Publish | None
    market: PrecomputedMarket | None
    events: EventLog | None
    strategy_overrides: Mapping[str, Strategy]


@dataclass
class Graph:
    """A simulated account's graph: its supervisor and what it was built on."""

    supervisor: Supervisor
    store: Store
    #: What the graph trades through (instrumented when asked for).
    broker: Broker
    #: The simulated broker built here; None when the caller supplied the broker.
    sim: SimBroker | None
    clock: SimClock
    calendar: ExchangeCalendar
    metrics: Metrics
    strategy_ids: dict[str, int]
    market: PrecomputedMarket | None
    owns_store: bool

    def ref(self, name: str) -> ActorRef:
        """The address of actor ``name``."""
        return self.supervisor.ref(name)

    async def run_session(
        self, day: dt.date, run_id: str, *, timeout: float = 3600.0
    ) -> CycleCompleted:
        """One scheduled cycle for ``day`` just after its open; then the clock passes its close."""
        self.clock.set_time(self.calendar.session_open(day) + AFTER_OPEN)
        risk = self.ref("risk_supervisor")
        await risk.ask(StartCycle(run_id, day, CycleTrigger.SCHEDULE))
        done: CycleCompleted = await risk.ask(WaitCycle(run_id), timeout=timeout)
        self.clock.set_time(self.calendar.session_close(day) + AFTER_CLOSE)
        return done

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Graph]:
        """The graph started for the block; stopped (time-limited, shielded) on the way out."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.supervisor.run)
            try:
                yield self
            finally:
                with anyio.move_on_after(STOP_TIMEOUT_S, shield=True):
                    await self.supervisor.stop()
                tg.cancel_scope.cancel()

    async def close(self) -> None:
        """Close the broker, and the store when the graph opened it."""
        try:
            await self.broker.close()
        finally:
            if self.owns_store:
                await self.store.close()


async def register_strategies(store: Store, strategies: StrategiesParams) -> dict[str, int]:
    """The strategy ids the graph needs, every configured strategy and ``MANUAL`` created."""
    signals = SignalStore(store)
    ids = {
        name: await signals.ensure_strategy(name, name.replace("_", " "), params.capital)
        for name, params in strategies.items()
    }
    ids[MANUAL] = await signals.ensure_strategy(
        MANUAL, "positions adopted from the broker or placed by hand", 0.0
    )
    return ids


def live_graph(
    *,
    settings: Callable[[], Settings],
    store: Store,
    calendar: ExchangeCalendar,
    clock: Clock,
    metrics: Metrics,
    strategy_ids: dict[str, int],
    provider: BarProvider,
    broker: Broker,
    publish: Publish | None = None,
    on_event: EventSink | None = None,
    on_escalate: EscalationHook | None = None,
) -> Supervisor:
    """The daemon's graph, writing per-run event files; factories read ``settings()``."""
    sup = _supervisor(settings(), clock, metrics, on_event, on_escalate)
    wiring = _Wiring(
        settings=settings,
        store=store,
        calendar=calendar,
        clock=clock,
        metrics=metrics,
        strategy_ids=strategy_ids,
        provider=provider,
        broker=broker,
        publish=publish,
        market=None,
        events=EventLog(settings().daemon.events_dir),
        strategy_overrides={},
    )
    _register(sup, wiring)
    return sup


async def simulated_graph(
    settings: SettingsSource,
    *,
    store: Store | Path,
    calendar: ExchangeCalendar,
    clock: SimClock,
    provider: BarProvider,
    scratch: bool = False,
    market: PrecomputedMarket | None = None,
    broker: BrokerFactory | None = None,
    initial_cash: float | None = None,
    instrument: bool = False,
    metrics: Metrics | None = None,
    events: bool = False,
    publish: Publish | None = None,
    on_event: EventSink | None = None,
    on_escalate: EscalationHook | None = None,
    strategy_overrides: Mapping[str, Strategy] | None = None,
) -> Graph:
    """A simulated account's graph on a SimClock; not started (see ``Graph.running``).

    ``store`` is an open store or the path of one to open (``scratch``: no
    fsync, the backtest's store); the configured strategies are registered in
    it. The broker is ``broker(store, clock)`` if given, else a ``SimBroker``
    priced from ``market`` (when given) or ``provider``, starting with
    ``initial_cash`` (default: the configured ``broker.initial_cash``);
    ``instrument`` wraps it for the broker metrics. ``events`` writes per-run
    event files to the configured directory. The supervisor backs off on wall
    time, so restarts do not wait for the simulated clock.
    """
    get = settings if callable(settings) else _constant(settings)
    opened = await open_store(store, scratch=scratch) if isinstance(store, Path) else None
    db = opened or store
    assert isinstance(db, Store)
    try:
        ids = await register_strategies(db, get().strategies)
        metrics = metrics or Metrics()
        sim: SimBroker | None = None
        if broker is not None:
            inner = broker(db, clock)
        else:
            prices = _prices(calendar, clock, provider, market)
            cash = get().broker.initial_cash if initial_cash is None else initial_cash
            # A precomputed market's broker trades at the prices as they printed and
            # applies the market's corporate actions as they come (point in time).
            inner = sim = SimBroker(
                db,
                clock=clock,
                calendar=calendar,
                prices=prices,
                initial_cash=cash,
                actions=provider if market is None else (market if market.actions else None),
            )
    except BaseException:
        if opened is not None:
            with anyio.move_on_after(10, shield=True):
                await opened.close()
        raise
    traded: Broker = InstrumentedBroker(inner, metrics) if instrument else inner
    sup = _supervisor(get(), WallClock(), metrics, on_event, on_escalate)
    wiring = _Wiring(
        settings=get,
        store=db,
        calendar=calendar,
        clock=clock,
        metrics=metrics,
        strategy_ids=ids,
        provider=provider,
        broker=traded,
        publish=publish,
        market=market,
        events=EventLog(get().daemon.events_dir) if events else None,
        strategy_overrides=strategy_overrides or {},
    )
    _register(sup, wiring)
    return Graph(sup, db, traded, sim, clock, calendar, metrics, ids, market, opened is not None)


def _constant(settings: Settings) -> Callable[[], Settings]:
    return lambda: settings


def _prices(
    calendar: ExchangeCalendar,
    clock: SimClock,
    provider: BarProvider,
    market: PrecomputedMarket | None,
) -> PriceSource:
    if market is not None:
        return MarketPrices(market, calendar, clock)
    return ProviderPriceSource(provider, calendar, clock)


def _supervisor(
    cfg: Settings,
    clock: Clock,
    metrics: Metrics,
    on_event: EventSink | None,
    on_escalate: EscalationHook | None,
) -> Supervisor:
    d = cfg.daemon
    return Supervisor(
        OneForOne(
            max_restarts=d.max_restarts,
            window_s=d.restart_window_s,
            backoff_s=d.restart_backoff_s,
            backoff_max_s=d.restart_backoff_max_s,
            stop_timeout_s=d.shutdown_timeout_s,
        ),
        clock=clock,
        ask_timeout=d.ask_timeout_s,
        observer=metrics.actor_observer(),
        on_event=on_event,
        on_escalate=on_escalate,
    )


def _register(sup: Supervisor, w: _Wiring) -> None:
    """Register every actor of the graph on ``sup``, in dependency order."""
    size = w.settings().daemon.mailbox_size
    _register_services(sup, w, size)
    strategies = {
        name: sup.add(f"strategy.{name}", _strategy_factory(w, name), mailbox_size=size)
        for name in STRATEGY_CLASSES
    }
    sup.add(
        "risk_supervisor",
        lambda: _cycle_runner(sup, w, strategies),
        depends_on=[
            "kill_switches",
            "data_feed",
            "order_manager",
            "reconciler",
            *(f"strategy.{n}" for n in STRATEGY_CLASSES),
        ],
        mailbox_size=size,
    )


def _register_services(sup: Supervisor, w: _Wiring, size: int) -> None:
    """The kill-switch board, data feed, order manager and reconciler."""
    settings = w.settings
    sup.add(
        "kill_switches",
        lambda: KillSwitchBoard(
            KillSwitchStore(w.store),
            w.clock,
            trading_disabled=settings().risk.trading_disabled,
            disabled_strategies=tuple(settings().risk.disabled_strategies),
            publish=w.publish,
        ),
        mailbox_size=size,
    )
    sup.add(
        "data_feed",
        lambda: DataFeed(
            settings().data, w.provider, w.calendar, metrics=w.metrics, market=w.market
        ),
        mailbox_size=size,
    )
    sup.add(
        "order_manager",
        lambda: OrderManager(
            store=w.store,
            broker=w.broker,
            clock=w.clock,
            terms=ReferenceFillTerms(stop_atr_multiple=settings().risk.stop_atr_multiple),
            strategy_ids=w.strategy_ids,
            metrics=w.metrics,
            broker_stops=settings().orders.broker_stops,
            limits=settings().limits,
        ),
        mailbox_size=size,
    )
    sup.add(
        "reconciler",
        lambda: Reconciler(
            store=w.store,
            broker=w.broker,
            clock=w.clock,
            tolerance=settings().risk.reconcile_tolerance,
            manual_strategy_id=w.strategy_ids[MANUAL],
        ),
        depends_on=["order_manager"],
        mailbox_size=size,
    )


def _cycle_runner(sup: Supervisor, w: _Wiring, strategies: dict[str, ActorRef]) -> CycleRunner:
    store = w.store
    deps = CycleDeps(
        clock=w.clock,
        calendar=w.calendar,
        journal=CycleJournal(store),
        signals=SignalStore(store),
        pending=PendingStore(store),
        state=SystemState(store),
        data_feed=sup.ref("data_feed"),
        kill_switches=sup.ref("kill_switches"),
        order_manager=sup.ref("order_manager"),
        reconciler=sup.ref("reconciler"),
        strategies=strategies,
        strategy_ids=w.strategy_ids,
        orders=OrderStore(store),
        equity=EquityCloses(store),
        switch_records=KillSwitchStore(store),
        # A precomputed market (a backtest) without actions costs no step.
        corporate_actions=(
            CorporateActionStore(store) if w.market is None or w.market.actions else None
        ),
        events=w.events,
        metrics=w.metrics,
        alert=w.publish,
    )
    cfg = w.settings()
    return CycleRunner(deps, strategies=cfg.strategies, risk=cfg.cycle_risk, publish=w.publish)


def _strategy_factory(w: _Wiring, name: str) -> Any:
    models = ModelStore(w.store)

    def build() -> StrategyActor:
        return StrategyActor(
            name,
            getattr(w.settings().strategies, name),
            clock=w.clock,
            models=models,
            metrics=w.metrics,
            strategy=w.strategy_overrides.get(name),
        )

    return build
