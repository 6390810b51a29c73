"""Drive the daemon's real actor graph over bars, one cycle a session, with restarts.

``Scenario`` is what the end-to-end risk tests stand on::

    async with Scenario(tmp_path, bars, settings={"risk.daily_loss_limit": 0.02}) as sc:
        days = await sc.run(date(2008, 9, 2), date(2008, 11, 28))
        assert not await sc.entries(date(2008, 10, 16))
        assert "daily_loss_limit" in (await sc.why_no_trade())["reasons"] ...

What is real: ``daemon.graph.build_graph`` (kill switches, data feed,
order manager, reconciler, the four strategies, the RiskSupervisor), the
settings through ``daemon.config.load_settings`` (so validation runs), the
bars through the ``csv`` provider (one ``<SYMBOL>.csv`` per symbol in
``bars_dir``, a volatility index as ``VIX.csv``), a SQLite state database
opened with ``Store.open`` as the daemon opens it, and the ``SimBroker``
pricing from that same provider (``ProviderPriceSource``). Time is a
``SimClock``. Not started: the scheduler, the notifier, the control socket,
metrics HTTP, backups. What the graph publishes for the operator (alerts,
kill switches tripped or cleared, cycles completed) is kept in
``published``; the supervisor's escalation trips ``actor_crash_loop`` as the
daemon's does, and crashes are kept in ``crashes``.

A session, as ``run`` drives it:

1. ``restart=True``: the graph is stopped, the store closed, and everything
   built again (a daemon restart: fresh actors that reload all from the store).
2. The clock is set to the cycle's time (``at``): ``"open"`` 09:31 New York on
   the session, ``"pre_open"`` 09:00 on it, ``"after_close"`` 16:30 on the
   session before (the cycle for d decides on complete data after the previous
   close, its orders fill at d's open). ``StartCycle(run_id, d, SCHEDULE)``,
   then ``WaitCycle``.
3. ``close_session``: the clock moves one minute past the session's close, the
   broker settles (orders fill at the open they were waiting for) and the
   order manager books the fills (what the next cycle's first step would do:
   booked now, a test sees the day's fills the same day), then the account is
   read: ``Day(session, cycle, equity, cash)``. With ``mark_closes=True`` the
   equity is also stored in ``equity_closes`` as a ``session_close`` mark, as
   ``daemon/backtest.py`` does; by default it is not (the daemon does not).

Intent ids, run ids and fills are deterministic: the same scenario gives the
same orders with and without restarts. The query helpers read the store
through the store classes the daemon uses (``OrderStore``, ``SignalStore``,
``KillSwitchStore``, ``CycleJournal``, ``BrokerStateStore``).

Bars should start about ``data.history_days`` (300) sessions before the first
cycle; the harness writes what it is given and the data feed decides.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import anyio
import pandas as pd
from anyio.abc import TaskGroup

from actors.brokers.base import Broker, BrokerAccount
from actors.brokers.instrumented import InstrumentedBroker
from actors.brokers.prices import ProviderPriceSource
from actors.brokers.sim import SimBroker
from actors.data_feed.providers import BarProvider, make_provider
from actors.messages import (
    ActorCrashed,
    Alert,
    CycleCompleted,
    CycleTrigger,
    IntentKind,
    SettleOrders,
    StartCycle,
    TripKillSwitch,
)
from actors.risk import switches as manual_switches
from actors.risk.supervisor import WaitCycle
from daemon.calendar import ExchangeCalendar
from daemon.clock import Clock, SimClock, WallClock
from daemon.config import Settings, load_settings
from daemon.graph import MANUAL, build_graph
from daemon.metrics import Metrics
from daemon.store import CycleJournal, KillSwitchStore, Store
from daemon.store.bars import BarCache
from daemon.store.broker_state import BrokerSnapshot, BrokerStateStore
from daemon.store.cycles import CycleRecord
from daemon.store.equity import EquityCloses
from daemon.store.orders import IntentRow, OrderStore
from daemon.store.signals import FunnelRow, SignalStore
from daemon.store.state import KillSwitchRecord
from daemon.supervisor import Event, Supervisor

At = Literal["open", "pre_open", "after_close"]
#: New York wall time of each kind of cycle (``after_close`` is on the session before).
CYCLE_TIMES: Mapping[str, dt.time] = {
    "open": dt.time(9, 31),
    "pre_open": dt.time(9, 0),
    "after_close": dt.time(16, 30),
}
#: How long after a session's close it is marked.
AFTER_CLOSE = dt.timedelta(minutes=1)
WAIT_CYCLE_S = 600.0
STOP_TIMEOUT_S = 30.0

SettingsOverrides = Mapping[str, Any] | Callable[[Settings], Settings]
BrokerFactory = Callable[[Store, ExchangeCalendar, Clock, BarProvider], Broker]
"""Builds the broker of one graph: (store, calendar, clock, provider) -> broker."""


@dataclass(frozen=True, slots=True)
class Day:
    """One session as ``run`` drove it: its cycle and the account after the close."""

    session: dt.date
    cycle: CycleCompleted
    equity: float
    cash: float


@dataclass(frozen=True, slots=True)
class Fill:
    """One booked trade (a row of ``trades``), as the performance report reads it."""

    strategy: str
    symbol: str
    action: str  # BUY | SELL
    shares: int
    price: float
    session: dt.date


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a signal or a symbol went no further (a ``signal_rejections`` row)."""

    run_id: str
    strategy: str | None
    symbol: str
    stage: str
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Position:
    """A strategy's open position with its catastrophe stop."""

    strategy: str
    symbol: str
    shares: int
    avg_price: float
    stop_price: float | None
    entry_date: dt.date | None


@functools.cache
def exchange_calendar(name: str = "XNYS") -> ExchangeCalendar:
    """One built calendar per process (building one costs a few hundred ms)."""
    return ExchangeCalendar(name, start=dt.date(1990, 1, 1), end=dt.date(2030, 12, 31)).load()


def write_bars(folder: Path, bars: pd.DataFrame, vix: pd.Series | None = None) -> None:
    """``folder/<SYMBOL>.csv`` per symbol of the long frame (+ ``VIX.csv``); others removed."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"{s}.csv" for s in bars["symbol"].unique()} | ({"VIX.csv"} if vix is not None else set())
    for old in folder.glob("*.csv"):
        if old.name not in wanted:
            old.unlink()
    for symbol, rows in bars.groupby("symbol", sort=True):
        out = rows.loc[:, ["date", "open", "high", "low", "close", "volume"]].copy()
        out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
        out.sort_values("date").to_csv(folder / f"{symbol}.csv", index=False)
    if vix is not None:
        levels = vix.to_numpy(dtype=float)
        frame = pd.DataFrame(
            {
                "date": pd.DatetimeIndex(vix.index).strftime("%Y-%m-%d"),
                **{c: levels for c in ("open", "high", "low", "close")},
                "volume": 0.0,
            }
        )
        frame.to_csv(folder / "VIX.csv", index=False)


def settings_environ(overrides: Mapping[str, Any]) -> dict[str, str]:
    """Dotted keys (``risk.daily_loss_limit``) as the daemon's ``TRADINGD_*`` variables."""
    env = {}
    for key, value in overrides.items():
        name = "TRADINGD_" + "__".join(part.upper() for part in key.split("."))
        env[name] = json.dumps(list(value) if isinstance(value, tuple) else value, default=str)
    return env


class _Graph:
    """One start of the daemon: its store, broker and supervised actors."""

    def __init__(self, store: Store, supervisor: Supervisor, broker: Broker, sim: SimBroker | None):
        self.store = store
        self.supervisor = supervisor
        self.broker = broker
        self.sim = sim


class Scenario:
    """The daemon's actor graph over ``bars``, driven one session at a time (module docstring)."""

    def __init__(
        self,
        tmp_path: Path,
        bars: pd.DataFrame,
        *,
        vix: pd.Series | None = None,
        settings: SettingsOverrides | None = None,
        cash: float = 100_000.0,
        mark_closes: bool = False,
        broker: BrokerFactory | None = None,
    ) -> None:
        self.root = tmp_path
        self.bars_dir = tmp_path / "bars"
        self.db_path = tmp_path / "state" / "tradingd.db"
        self._bars = bars
        self._vix = vix
        self._overrides = settings
        self._cash = cash
        self._mark_closes = mark_closes
        self._broker_factory = broker
        self.settings: Settings = Settings()
        self.calendar = exchange_calendar()
        self.clock: SimClock | None = None
        self.published: list[object] = []
        self.crashes: list[ActorCrashed] = []
        self._graph: _Graph | None = None
        self._tg: TaskGroup | None = None
        self._run_ids: set[str] = set()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Scenario:
        write_bars(self.bars_dir, self._bars, self._vix)
        self.settings = self._load_settings()
        self.calendar = exchange_calendar(self.settings.schedule.calendar)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        try:
            with anyio.move_on_after(STOP_TIMEOUT_S, shield=True):
                await self.stop()
        finally:
            self._tg.cancel_scope.cancel()
            tg, self._tg = self._tg, None
            await tg.__aexit__(exc_type, exc, tb)
        return None

    def _load_settings(self) -> Settings:
        """Defaults + the scenario's data, broker and state dir + the test's overrides, validated."""
        base: dict[str, Any] = {
            "daemon.state_dir": self.db_path.parent,
            "data.provider": "csv",
            "data.csv.path": self.bars_dir,
            "data.universe.symbols": sorted(
                s for s in self._bars["symbol"].unique() if s != "VIX"
            ),
            "broker.kind": "sim",
            "broker.initial_cash": self._cash,
            "metrics.enabled": False,
        }
        given = dict(self._overrides) if isinstance(self._overrides, Mapping) else {}
        settings = load_settings(None, settings_environ({**base, **given}))
        # The cash split evenly over the enabled strategies (as `backtest --capital` does),
        # unless the test sets a strategy's capital itself.
        enabled = settings.strategies.enabled_names() or ["_"]
        shares = {
            f"strategies.{name}.capital": self._cash / len(enabled)
            for name, _ in settings.strategies.items()
            if f"strategies.{name}.capital" not in given
        }
        settings = load_settings(None, settings_environ({**base, **shares, **given}))
        if callable(self._overrides):
            settings = Settings.model_validate(self._overrides(settings).model_dump())
        return settings

    async def start(self) -> None:
        """Start the graph (a daemon start) at the clock's time; no-op when it runs."""
        if self._graph is not None:
            return
        assert self._tg is not None, "use `async with Scenario(...)`"
        assert self.clock is not None
        store = await Store.open(self.db_path)
        try:
            self._graph = await self._build(store, self.clock)
            await self._tg.start(self._graph.supervisor.run)
        except BaseException:
            self._graph = None
            with anyio.move_on_after(STOP_TIMEOUT_S, shield=True):
                await store.close()
            raise

    async def stop(self) -> None:
        """Stop the graph and close the store (a daemon stop); no-op when none runs."""
        graph, self._graph = self._graph, None
        if graph is None:
            return
        try:
            await graph.supervisor.stop()
        finally:
            await graph.broker.close()
            await graph.store.close()

    async def restart(self) -> None:
        """Stop everything and build it again from the store."""
        await self.stop()
        await self.start()

    async def _build(self, store: Store, clock: SimClock) -> _Graph:
        cfg = self.settings
        signals = SignalStore(store)
        ids = {
            name: await signals.ensure_strategy(name, name.replace("_", " "), params.capital)
            for name, params in cfg.strategies.items()
        }
        ids[MANUAL] = await signals.ensure_strategy(MANUAL, "manual", 0.0)
        provider = make_provider(
            cfg.data, cache=BarCache(store), sessions_fn=self.calendar.sessions_between
        )
        metrics = Metrics()
        sim: SimBroker | None = None
        if self._broker_factory is not None:
            inner = self._broker_factory(store, self.calendar, clock, provider)
        else:
            inner = sim = SimBroker(
                store,
                clock=clock,
                calendar=self.calendar,
                prices=ProviderPriceSource(provider, self.calendar, clock),
                initial_cash=cfg.broker.initial_cash,
            )
        broker = InstrumentedBroker(inner, metrics)
        sup = build_graph(
            settings=lambda: self.settings,
            store=store,
            calendar=self.calendar,
            clock=clock,
            metrics=metrics,
            strategy_ids=ids,
            provider=provider,
            broker=broker,
            publish=self._publish,
            on_event=self._on_event,
            on_escalate=self._escalate,
            supervisor_clock=WallClock(),
        )
        return _Graph(store, sup, broker, sim)

    # ------------------------------------------------------------ driving

    async def run(
        self, start: dt.date, end: dt.date, *, at: At = "open", restart: bool = True
    ) -> list[Day]:
        """One cycle per session in ``[start, end]``; each session closed and marked."""
        sessions = self.calendar.sessions_between(start, end)
        if not sessions:
            raise ValueError(f"no {self.calendar.name} session between {start} and {end}")
        days = []
        for day in sessions:
            if restart and self._graph is not None:
                await self.restart()
            cycle = await self.run_once(day, at=at)
            account = await self.close_session(day)
            days.append(Day(day, cycle, account.equity, account.cash))
        return days

    async def run_once(
        self,
        session: dt.date,
        *,
        at: At | dt.time = "open",
        trigger: CycleTrigger = CycleTrigger.SCHEDULE,
        force: bool = False,
        allow_entries: bool = False,
    ) -> CycleCompleted:
        """One cycle for ``session`` at ``at`` (a kind of cycle, or a New York time on it).

        The clock only moves forward: a time before the clock raises ``ValueError``.
        A refusal of the RiskSupervisor (``CycleAlreadyCompleted``, ``CycleBusy``)
        propagates.
        """
        when = self.cycle_time(session, at)
        self._move_to(when)
        await self.start()
        run_id = self._run_id(session, when)
        risk = self._running().supervisor.ref("risk_supervisor")
        await risk.ask(StartCycle(run_id, session, trigger, force, allow_entries))
        done: CycleCompleted = await risk.ask(WaitCycle(run_id), timeout=WAIT_CYCLE_S)
        return done

    async def close_session(self, session: dt.date) -> BrokerAccount:
        """Move past ``session``'s close, settle and book the fills; the account then."""
        self._move_to(self.calendar.session_close(session) + AFTER_CLOSE)
        await self.start()
        graph = self._running()
        if graph.sim is not None:
            await graph.sim.settle()
        await graph.supervisor.ref("order_manager").ask(SettleOrders(), timeout=WAIT_CYCLE_S)
        account = await graph.broker.account()
        if self._mark_closes:
            await EquityCloses(graph.store).record(
                session, account.equity, "session_close", self._now()
            )
        return account

    def cycle_time(self, session: dt.date, at: At | dt.time) -> dt.datetime:
        """When a cycle of kind ``at`` for ``session`` runs (UTC)."""
        if not self.calendar.is_session(session):
            raise ValueError(f"{session} is not a {self.calendar.name} session")
        if isinstance(at, dt.time):
            local_day, local_time = session, at
        elif at in CYCLE_TIMES:
            local_time = CYCLE_TIMES[at]
            local_day = self.calendar.previous_session(session) if at == "after_close" else session
        else:
            raise ValueError(f"unknown cycle time {at!r}; known: {', '.join(CYCLE_TIMES)}")
        local = dt.datetime.combine(local_day, local_time, tzinfo=self.calendar.tz)
        return local.astimezone(dt.UTC)

    def _move_to(self, when: dt.datetime) -> None:
        if self.clock is None:
            self.clock = SimClock(when)
            return
        if when < self.clock.now():
            raise ValueError(
                f"the clock is at {self.clock.now().astimezone(self.calendar.tz):%Y-%m-%d %H:%M %Z}"
                f"; it cannot go back to {when.astimezone(self.calendar.tz):%Y-%m-%d %H:%M %Z}"
            )
        self.clock.set_time(when)

    def _run_id(self, session: dt.date, when: dt.datetime) -> str:
        """``sc-YYYYMMDD-HHMM`` (New York time), ``-2``, ``-3`` ... when already used."""
        base = f"sc-{session:%Y%m%d}-{when.astimezone(self.calendar.tz):%H%M}"
        run_id, n = base, 1
        while run_id in self._run_ids:
            n += 1
            run_id = f"{base}-{n}"
        self._run_ids.add(run_id)
        return run_id

    def _running(self) -> _Graph:
        assert self._graph is not None, "the graph is not running"
        return self._graph

    def _now(self) -> dt.datetime:
        assert self.clock is not None
        return self.clock.now()

    # ------------------------------------------------------------ changing the world

    async def set_bars(self, bars: pd.DataFrame, vix: pd.Series | None = None) -> None:
        """Replace the bar files (the csv provider sees the change at its next read)."""
        self._bars, self._vix = bars, vix
        await anyio.to_thread.run_sync(write_bars, self.bars_dir, bars, vix)

    @property
    def broker(self) -> SimBroker:
        """The running graph's simulated broker (``set_trading_blocked``, ``adjust_position``)."""
        sim = self._running().sim
        assert sim is not None, "the scenario runs a broker of its own factory"
        return sim

    # ------------------------------------------------------------ the graph's callbacks

    async def _publish(self, event: object) -> None:
        self.published.append(event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ActorCrashed):
            self.crashes.append(event)

    async def _escalate(self, actor: str, error: BaseException) -> None:
        """As the daemon: an actor that crashes too often trips ``actor_crash_loop``."""
        await self._running().supervisor.ref("kill_switches").ask(
            TripKillSwitch(
                manual_switches.ACTOR_CRASH_LOOP,
                f"actor {actor} crashed too often ({type(error).__name__}: {error})",
                "supervisor",
            )
        )

    def alerts(self) -> list[Alert]:
        """Every alert the graph raised for the operator, in order."""
        return [e for e in self.published if isinstance(e, Alert)]

    # ------------------------------------------------------------ what the store says

    @property
    def store(self) -> Store:
        """The running graph's store (start one with ``start()`` to query before any cycle)."""
        return self._running().store

    async def orders(self, asof: dt.date | None = None) -> list[IntentRow]:
        """Order intents (ENTRY/EXIT/STOP/FLATTEN, with status) of a trading date, or all."""
        return await OrderStore(self.store).intents_for(asof=asof)

    async def entries(self, asof: dt.date | None = None) -> list[IntentRow]:
        """The entry intents of a trading date (or all)."""
        return [r for r in await self.orders(asof) if r.kind is IntentKind.ENTRY]

    async def fills(self) -> list[Fill]:
        """Every booked trade, oldest first."""
        return [
            Fill(
                strategy=r["strategy"],
                symbol=r["symbol"],
                action=r["action"],
                shares=int(r["shares"]),
                price=float(r["exec_price"]),
                session=dt.date.fromisoformat(r["executed"]),
            )
            for r in await OrderStore(self.store).fills()
        ]

    async def cycles(self, asof: dt.date) -> list[CycleRecord]:
        """The journal's cycles of a trading date, in start order."""
        return await CycleJournal(self.store).for_asof(asof)

    async def rejections(self, asof: dt.date) -> list[Rejection]:
        """Every rejection recorded by the cycles of a trading date (data, regime, risk ...)."""
        signals = SignalStore(self.store)
        out = []
        for cycle in await self.cycles(asof):
            for r in await signals.rejections(cycle.run_id):
                out.append(
                    Rejection(
                        cycle.run_id,
                        r["strategy"],
                        r["symbol"],
                        r["stage"],
                        r["reason"],
                        r["details"],
                    )
                )
        return out

    async def funnel(self, asof: dt.date) -> list[FunnelRow]:
        """The signal funnel of every cycle of a trading date (one row per strategy and run)."""
        signals = SignalStore(self.store)
        return [row for c in await self.cycles(asof) for row in await signals.funnel(c.run_id)]

    async def switches(self) -> list[KillSwitchRecord]:
        """The active kill switches with their reasons."""
        return await KillSwitchStore(self.store).active()

    async def positions(self) -> list[Position]:
        """Open positions per strategy, with their stop prices."""
        return [
            Position(
                strategy=r["strategy"],
                symbol=r["symbol"],
                shares=int(r["shares"]),
                avg_price=float(r["avg_price"] or 0.0),
                stop_price=None if r["stop_price"] is None else float(r["stop_price"]),
                entry_date=dt.date.fromisoformat(r["entry_date"]) if r["entry_date"] else None,
            )
            for r in await OrderStore(self.store).positions()
            if r["shares"] > 0
        ]

    async def reconciliations(self) -> list[BrokerSnapshot]:
        """Every reconciliation gate's snapshot, oldest first (``passed``, ``discrepancies``)."""
        rows = await BrokerStateStore(self.store).history(limit=1_000_000)
        return [s for s in reversed(rows) if s.kind == "RECONCILIATION"]

    async def why_no_trade(self, strategy: str | None = None) -> dict[str, Any]:
        """What ``tradectl why-no-trade`` shows for the last cycle: reasons counted, rows."""
        rows = await SignalStore(self.store).why_no_trade(strategy)
        counts: dict[str, int] = {}
        for row in rows:
            key = f"{row['stage']}:{row['reason']}"
            counts[key] = counts.get(key, 0) + 1
        return {"strategy": strategy, "reasons": counts, "rejections": rows}
