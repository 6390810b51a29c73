"""The actor graph, built one way for the live daemon and for backtests.

``build_graph`` wires the same actors in both: kill-switch board, data feed,
order manager, reconciler, one actor per strategy and the RiskSupervisor. The
callers choose only the clock, the provider (or a precomputed market), the
broker and the store. There is one implementation of strategies, risk rules,
costs and order handling.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from actors.brokers.base import Broker
from actors.cycle.cycle import CycleDeps
from actors.cycle.kill_switch_board import KillSwitchBoard
from actors.cycle.supervisor import RiskSupervisor
from actors.data_feed.actor import DataFeed
from actors.data_feed.market import PrecomputedMarket
from actors.data_feed.providers import BarProvider
from actors.market.calendar import ExchangeCalendar
from actors.metrics import Metrics
from actors.orders.manager import OrderManager
from actors.reconciliation.reconciler import Reconciler
from actors.store.cycles import CycleJournal
from actors.store.equity import EquityCloses
from actors.store.models import ModelStore
from actors.store.orders import OrderStore
from actors.store.pending import PendingStore
from actors.store.signals import SignalStore
from actors.store.state import KillSwitchStore, SystemState
from actors.strategies.actor import StrategyActor
from actors.strategies.registry import STRATEGY_CLASSES
from actors.system.config import Settings
from daemon.clock import Clock
from daemon.logging import EventLog
from daemon.store import Store
from daemon.supervisor import EscalationHook, EventSink, OneForOne, Supervisor

#: The pseudo-strategy that owns positions adopted from the broker or placed by hand.
MANUAL = "manual"

Publish = Callable[[object], Awaitable[None]]


def build_graph(
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
    market: PrecomputedMarket | None = None,
    events: EventLog | None = None,
    write_events: bool = True,
    supervisor_clock: Clock | None = None,
) -> Supervisor:
    """Register every actor on a new supervisor; factories read ``settings()`` at (re)start."""
    cfg = settings()
    d = cfg.daemon
    sup = Supervisor(
        OneForOne(
            max_restarts=d.max_restarts,
            window_s=d.restart_window_s,
            backoff_s=d.restart_backoff_s,
            backoff_max_s=d.restart_backoff_max_s,
        ),
        clock=supervisor_clock or clock,
        ask_timeout=d.ask_timeout_s,
        observer=metrics.actor_observer(),
        on_event=on_event,
        on_escalate=on_escalate,
    )
    if not write_events:
        events = None
    elif events is None:
        events = EventLog(d.events_dir)
    size = d.mailbox_size
    sup.add(
        "kill_switches",
        lambda: KillSwitchBoard(
            KillSwitchStore(store),
            clock,
            trading_disabled=settings().risk.trading_disabled,
            disabled_strategies=tuple(settings().risk.disabled_strategies),
            publish=publish,
        ),
        mailbox_size=size,
    )
    sup.add(
        "data_feed",
        lambda: DataFeed(settings().data, provider, calendar, metrics=metrics, market=market),
        mailbox_size=size,
    )
    sup.add(
        "order_manager",
        lambda: OrderManager(
            store=store,
            broker=broker,
            clock=clock,
            strategy_ids=strategy_ids,
            metrics=metrics,
            stop_atr_multiple=settings().risk.stop_atr_multiple,
        ),
        mailbox_size=size,
    )
    sup.add(
        "reconciler",
        lambda: Reconciler(
            store=store,
            broker=broker,
            clock=clock,
            tolerance=settings().risk.reconcile_tolerance,
            manual_strategy_id=strategy_ids[MANUAL],
        ),
        depends_on=["order_manager"],
        mailbox_size=size,
    )
    strategy_refs = {}
    for name in STRATEGY_CLASSES:
        strategy_refs[name] = sup.add(
            f"strategy.{name}",
            _strategy_factory(settings, clock, metrics, name, ModelStore(store)),
            mailbox_size=size,
        )

    def risk_supervisor() -> RiskSupervisor:
        deps = CycleDeps(
            clock=clock,
            calendar=calendar,
            journal=CycleJournal(store),
            signals=SignalStore(store),
            pending=PendingStore(store),
            state=SystemState(store),
            data_feed=sup.ref("data_feed"),
            kill_switches=sup.ref("kill_switches"),
            order_manager=sup.ref("order_manager"),
            reconciler=sup.ref("reconciler"),
            strategies=strategy_refs,
            strategy_ids=strategy_ids,
            orders=OrderStore(store),
            equity=EquityCloses(store),
            switch_records=KillSwitchStore(store),
            events=events,
            metrics=metrics,
            alert=publish,
        )
        return RiskSupervisor(
            deps,
            strategies=settings().strategies,
            risk=settings().risk.rules,
            publish=publish,
        )

    sup.add(
        "risk_supervisor",
        risk_supervisor,
        depends_on=[
            "kill_switches",
            "data_feed",
            "order_manager",
            "reconciler",
            *(f"strategy.{n}" for n in STRATEGY_CLASSES),
        ],
        mailbox_size=size,
    )
    return sup


def _strategy_factory(
    settings: Callable[[], Settings], clock: Clock, metrics: Metrics, name: str, models: ModelStore
) -> Any:
    def build() -> StrategyActor:
        return StrategyActor(
            name,
            getattr(settings().strategies, name),
            clock=clock,
            models=models,
            metrics=metrics,
        )

    return build
