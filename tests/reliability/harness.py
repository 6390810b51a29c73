"""The daemon's own actor graph on a SimClock, driven one session at a time (test helper).

``actors.system.graph.simulated_graph`` with the live ``DataFeed`` and a
provider, a broker of the test's choosing (the SimBroker over
``ProviderPriceSource``, or ``AlpacaBroker`` against the fake trading server),
and a store in a temporary directory. ``run_day`` sets the clock to just after
the session's open, runs one cycle and waits for its end.
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
from actors.data_feed.providers import BarProvider
from actors.market.calendar import ExchangeCalendar
from actors.messages import CycleCompleted, GetKillSwitches
from actors.system.config import Settings
from actors.system.graph import Graph as SimulatedGraph
from actors.system.graph import simulated_graph
from daemon.actor import ActorState
from daemon.clock import SimClock
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
    """A running graph, with the questions the reliability tests ask it."""

    graph: SimulatedGraph

    @property
    def sup(self) -> Supervisor:
        return self.graph.supervisor

    @property
    def clock(self) -> SimClock:
        return self.graph.clock

    @property
    def store(self) -> Store:
        return self.graph.store

    @property
    def broker(self) -> Broker:
        return self.graph.broker

    async def run_day(self, day: dt.date, tag: str = "") -> CycleCompleted:
        """One cycle for ``day`` (clock at the open), then the clock moves past the close."""
        return await self.graph.run_session(day, f"rel-{day:%Y%m%d}{tag}", timeout=300)

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
    """Build and start the graph; stop it, close the broker and the store on the way out."""
    graph = await simulated_graph(
        settings,
        store=db,
        calendar=CAL,
        clock=SimClock(CAL.session_open(start) - dt.timedelta(hours=1)),
        provider=provider,
        broker=lambda store, clock: broker(store, clock, provider),
    )
    try:
        async with graph.running():
            yield Graph(graph)
    finally:
        with anyio.move_on_after(10, shield=True):
            await graph.close()
