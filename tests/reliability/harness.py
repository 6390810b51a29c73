"""The daemon's own actor graph on a SimClock, driven one session at a time (test helper).

As in ``tests/test_live_vs_backtest.py``: ``actors.system.graph.build_graph`` with the live
``DataFeed`` and a provider, a broker of the test's choosing (the SimBroker over
``ProviderPriceSource``, or ``AlpacaBroker`` against the fake trading server), and
a store in a temporary directory. ``run_day`` sets the clock to just after the
session's open, runs one cycle and waits for its end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from actors.brokers.base import Broker
from actors.brokers.prices import ProviderPriceSource
from actors.brokers.sim import SimBroker
from actors.cycle.supervisor import WaitCycle
from actors.data_feed.providers import BarProvider
from actors.market.calendar import ExchangeCalendar
from actors.messages import CycleCompleted, CycleTrigger, GetKillSwitches, StartCycle
from actors.metrics import Metrics
from actors.store import open_store
from actors.store.signals import SignalStore
from actors.system.backtest import AFTER_CLOSE, AFTER_OPEN
from actors.system.config import Settings
from actors.system.graph import MANUAL, build_graph
from daemon.actor import ActorState
from daemon.clock import SimClock, WallClock
from daemon.store import Store
from daemon.supervisor import Supervisor

CAL = ExchangeCalendar("XNYS")

BrokerFactory = Callable[[Store, SimClock, BarProvider], Broker]


def sim_broker(settings: Settings) -> BrokerFactory:
    """The simulated broker, priced by the cycle's own provider."""

    def build(store: Store, clock: SimClock, provider: BarProvider) -> Broker:
        return SimBroker(
            store,
            clock=clock,
            calendar=CAL,
            prices=ProviderPriceSource(provider, CAL, clock),
            initial_cash=settings.broker.initial_cash,
        )

    return build


@dataclass
class Graph:
    """A running graph: its supervisor, clock and store."""

    sup: Supervisor
    clock: SimClock
    store: Store
    broker: Broker

    async def run_day(self, day: dt.date, tag: str = "") -> CycleCompleted:
        """One cycle for ``day`` (clock at the open), then the clock moves past the close."""
        self.clock.set_time(CAL.session_open(day) + AFTER_OPEN)
        run_id = f"rel-{day:%Y%m%d}{tag}"
        risk = self.sup.ref("risk_supervisor")
        await risk.ask(StartCycle(run_id, day, CycleTrigger.SCHEDULE))
        done: CycleCompleted = await risk.ask(WaitCycle(run_id), timeout=300)
        self.clock.set_time(CAL.session_close(day) + AFTER_CLOSE)
        return done

    async def active_switches(self) -> set[str]:
        """Names of the active kill switches, from the board."""
        views = await self.sup.ref("kill_switches").ask(GetKillSwitches())
        return {v.name for v in views}

    def all_running(self) -> bool:
        """Every actor is RUNNING (none crashed out, none gave up)."""
        return all(s is ActorState.RUNNING for s in self.sup.states().values())

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts."""
        return [dict(r) for r in await self.store.fetchall(sql, params)]


@asynccontextmanager
async def running_graph(
    settings: Settings,
    db: Path,
    provider: BarProvider,
    broker: BrokerFactory,
    *,
    start: dt.date,
) -> AsyncIterator[Graph]:
    """Build and start the graph; stop it and close the store on the way out."""
    store = await open_store(db)
    built: Broker | None = None
    try:
        signals = SignalStore(store)
        ids = {
            n: await signals.ensure_strategy(n, n, p.capital)
            for n, p in settings.strategies.items()
        }
        ids[MANUAL] = await signals.ensure_strategy(MANUAL, "manual", 0.0)
        clock = SimClock(CAL.session_open(start) - dt.timedelta(hours=1))
        built = broker(store, clock, provider)
        sup = build_graph(
            settings=lambda: settings,
            store=store,
            calendar=CAL,
            clock=clock,
            metrics=Metrics(),
            strategy_ids=ids,
            provider=provider,
            broker=built,
            write_events=False,
            supervisor_clock=WallClock(),
        )
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            try:
                yield Graph(sup, clock, store, built)
            finally:
                with anyio.move_on_after(30, shield=True):
                    await sup.stop()
                tg.cancel_scope.cancel()
    finally:
        with anyio.move_on_after(10, shield=True):
            if built is not None:
                await built.close()
            await store.close()
