"""Drive the daemon's real actor graph over bars, one cycle a session, with restarts.

``Scenario`` is what the end-to-end risk tests stand on::

    bars = crash_day(real_bars(start=date(2007, 6, 1)), date(2008, 10, 15), -0.03)
    async with Scenario(tmp_path, bars, settings={"risk.daily_loss_limit": 0.02}) as sc:
        days = await sc.run(date(2008, 9, 2), date(2008, 11, 28))
        assert not await sc.entries(date(2008, 10, 16))
        assert "risk:daily_loss_limit" in (await sc.why_no_trade())["reasons"]

What is real: ``actors.system.graph.simulated_graph`` (kill switches, data feed,
order manager, reconciler, the four strategies, the CycleRunner), the
settings through ``actors.system.config.load_settings`` (so validation runs; a bad
key fails as ``ConfigError``), the bars through the ``csv`` provider (one
``<SYMBOL>.csv`` per symbol in ``bars_dir``, the volatility index as
``VIX.csv``), the SQLite state database opened with ``Store.open`` as the
daemon opens it, and the ``SimBroker`` pricing from that same provider
(``ProviderPriceSource``). Time is a ``SimClock``. Not started: the
scheduler, the notifier, the control socket, metrics HTTP, backups. What the
graph publishes for the operator (alerts, kill switches tripped or cleared,
cycles completed) is kept in ``published``; the supervisor's escalation trips
``actor_crash_loop`` as the daemon's does, and crashes are kept in ``crashes``.

A session, as ``run`` drives it:

1. ``restart=True``: the graph is stopped, the store closed, and all of it
   built again (a daemon restart: fresh actors that reload everything from the
   store). Only the csv provider object is kept: its cache of parsed files is
   keyed by their modification time and size, so it reads what a new one would.
2. The clock is set to the cycle's time ``at``: ``"open"`` 09:31 New York on
   the session, ``"pre_open"`` 09:00 on it, ``"after_close"`` 16:30 on the
   session before (the cycle for d decides on complete data after the previous
   close; its orders fill at d's open). ``StartCycle(run_id, d, SCHEDULE)``,
   then ``WaitCycle``.
3. ``close_session``: the clock moves one minute past the session's close, the
   broker settles (orders fill at the open they waited for) and the order
   manager books the fills -- what the next cycle's first step would do; done
   now, a test sees a session's fills that session. Then the account is read:
   ``Day(session, cycle, equity, cash)``. With ``mark_closes=True`` the equity
   is also stored in ``equity_closes`` as a ``session_close`` mark, as
   ``actors/system/backtest.py`` does; by default it is not (the daemon does not).

Two switches trade fidelity for speed. Measured on 4 real symbols (2 shared
cores), per session without restarts / with a restart every session:
live + daemon 140 / 215-265 ms, live + scratch 110 / 175 ms, backtest +
scratch 28 / 85 ms. In a live cycle, combining the csv files on every read
(``CsvProvider.load``, 3-4 reads a cycle) and the ml_momentum strategy
dominate; a restart adds the first cycle's cold start.

- ``feed="live"`` (default): the data feed reads the csv provider each cycle
  and validates a ``data.history_days`` window, as the daemon does.
  ``feed="backtest"``: ``actors/system/backtest.py``'s path through the same graph:
  the bars loaded once into a ``PrecomputedMarket`` (indicators over the whole
  history, bad bars decided once) and the broker priced from it. Wilder-type
  indicators depend on where their history starts, so the two feeds agree
  only while the history starts where the live window does; compare runs of
  one feed with each other.
- ``store="daemon"`` (default): ``Store.open(path)``, aiosqlite, fsync as
  configured. ``store="scratch"``: ``Store.open(path, scratch=True)``, the
  backtest's store: the same file and schema, SQL on the loop's thread, no
  fsync. The thread hop per statement is most of the difference.

Run ids (``sc-YYYYMMDD-HHMM``), intent ids and fills are deterministic: the
same scenario gives the same orders with and without restarts. The query
helpers read the store through the store classes the daemon uses
(``OrderStore``, ``SignalStore``, ``KillSwitchStore``, ``CycleJournal``,
``BrokerStateStore``).

Bars should start ``data.history_days`` (300) sessions before the first
cycle and may end with the last: every row is written, and parsing and
combining them is a large part of a live cycle's time (``trim_bars`` cuts a
frame to that).
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
from pydantic import ValidationError

from actors.brokers.base import Broker, BrokerAccount
from actors.brokers.sim import SimBroker
from actors.cycle import kill_switches as manual_switches
from actors.cycle.runner import WaitCycle
from actors.data_feed.market import PrecomputedMarket
from actors.data_feed.providers import BarProvider, make_provider
from actors.market.calendar import ExchangeCalendar
from actors.messages import (
    Alert,
    CycleCompleted,
    CycleTrigger,
    IntentKind,
    SettleOrders,
    StartCycle,
    TripKillSwitch,
)
from actors.store import open_store
from actors.store.bars import BarCache
from actors.store.broker_state import BrokerSnapshot, BrokerStateStore
from actors.store.cycles import CycleJournal, CycleRecord
from actors.store.equity import EquityCloses
from actors.store.orders import IntentRow, OrderStore
from actors.store.signals import FunnelRow, SignalStore
from actors.store.state import KillSwitchRecord, KillSwitchStore
from actors.system.config import Settings, load_settings
from actors.system.graph import Graph, simulated_graph
from daemon.clock import Clock, SimClock
from daemon.errors import ConfigError
from daemon.messages import ActorCrashed
from daemon.store import Store
from daemon.supervisor import Event

At = Literal["open", "pre_open", "after_close"]
Feed = Literal["live", "backtest"]
StoreKind = Literal["daemon", "scratch"]
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


def trim_bars(
    bars: pd.DataFrame, first: dt.date, last: dt.date, *, history_days: int = 300
) -> pd.DataFrame:
    """The rows cycles from ``first`` to ``last`` can use: ``history_days`` sessions before on.

    A live cycle for ``first`` reads the ``history_days`` sessions before it;
    nothing reads past ``last``'s close. Fewer rows make a live cycle faster.
    """
    calendar = exchange_calendar()
    since = calendar.sessions_back(calendar.previous_session(first), history_days)[0]
    keep = (bars["date"] >= pd.Timestamp(since)) & (bars["date"] <= pd.Timestamp(last))
    return bars.loc[keep].reset_index(drop=True)


def write_bars(folder: Path, bars: pd.DataFrame, vix: pd.Series | None = None) -> None:
    """``folder/<SYMBOL>.csv`` per symbol of the long frame (+ ``VIX.csv``); others removed."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"{s}.csv" for s in bars["symbol"].unique()}
    if vix is not None:
        wanted.add("VIX.csv")
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
                **dict.fromkeys(("open", "high", "low", "close"), levels),
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
        feed: Feed = "live",
        store: StoreKind = "daemon",
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
        self._feed = feed
        self._store_kind = store
        self.settings: Settings = Settings()
        self.calendar = exchange_calendar()
        self.clock: SimClock | None = None
        self.published: list[object] = []
        self.crashes: list[ActorCrashed] = []
        self._graph: Graph | None = None
        self._provider: BarProvider | None = None
        self._precomputed: PrecomputedMarket | None = None
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
        """Defaults, then the scenario's data, broker and state dir, then the test's overrides."""
        base: dict[str, Any] = {
            "daemon.state_dir": self.db_path.parent,
            "data.provider": "csv",
            "data.csv.path": self.bars_dir,
            "data.universe.symbols": sorted(s for s in self._bars["symbol"].unique() if s != "VIX"),
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
            try:
                settings = Settings.model_validate(self._overrides(settings).model_dump())
            except ValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(part) for part in first["loc"])
                raise ConfigError(key, first["msg"]) from None
        return settings

    async def start(self, at: dt.datetime | None = None) -> None:
        """Start the graph (a daemon start), at ``at`` if given; no-op when it runs.

        ``run`` and ``run_once`` start it themselves; call this to act on the
        graph before the first cycle (its clock then starts at ``at``).
        """
        if at is not None:
            self._move_to(at)
        if self._graph is not None:
            return
        assert self._tg is not None, "use `async with Scenario(...)`"
        if self.clock is None:
            raise ValueError("the clock has no time yet: give start() a time or run a cycle")
        store = await open_store(self.db_path, scratch=self._store_kind == "scratch")
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

    async def _build(self, store: Store, clock: SimClock) -> Graph:
        if self._provider is None:
            self._provider = make_provider(
                self.settings.data,
                cache=BarCache(store),
                sessions_fn=self.calendar.sessions_between,
            )
        provider = self._provider
        factory = self._broker_factory
        return await simulated_graph(
            lambda: self.settings,
            store=store,
            calendar=self.calendar,
            clock=clock,
            provider=provider,
            market=await self._market(provider) if self._feed == "backtest" else None,
            broker=None
            if factory is None
            else lambda db, c: factory(db, self.calendar, c, provider),
            instrument=True,
            events=True,
            publish=self._publish,
            on_event=self._on_event,
            on_escalate=self._escalate,
        )

    async def _market(self, provider: BarProvider) -> PrecomputedMarket:
        """The backtest's market: every bar of the files, loaded and prepared once."""
        if self._precomputed is None:
            dates = pd.to_datetime(self._bars["date"])
            self._precomputed = await PrecomputedMarket.load(
                provider,
                self.settings.data.universe.symbols,
                dates.min().date(),
                dates.max().date(),
                validation=self.settings.data.validation,
            )
        return self._precomputed

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
        A refusal of the CycleRunner (``CycleAlreadyCompleted``, ``CycleBusy``)
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

    def _running(self) -> Graph:
        assert self._graph is not None, "the graph is not running"
        return self._graph

    def _now(self) -> dt.datetime:
        assert self.clock is not None
        return self.clock.now()

    # ------------------------------------------------------------ changing the world

    async def set_bars(self, bars: pd.DataFrame, vix: pd.Series | None = None) -> None:
        """Replace the bar files: data fresh again, a file broken or fixed, a late correction.

        The universe stays what it was at the start. With ``feed="live"`` the csv
        provider sees the change at its next read. With ``feed="backtest"`` the
        market is loaded again and a running graph restarted (the data feed takes
        its market when it starts).
        """
        self._bars, self._vix = bars, vix
        await anyio.to_thread.run_sync(write_bars, self.bars_dir, bars, vix)
        if self._feed == "backtest":
            self._precomputed = None
            if self._graph is not None:
                await self.restart()

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
        await (
            self._running()
            .supervisor.ref("kill_switches")
            .ask(
                TripKillSwitch(
                    manual_switches.ACTOR_CRASH_LOOP,
                    f"actor {actor} crashed too often ({type(error).__name__}: {error})",
                    "supervisor",
                )
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
        """Order intents (ENTRY/EXIT/STOP/FLATTEN, with status) of a trading date, or all.

        A protective stop resting at the broker counts once it sold something (a
        stop-loss exit); one that only rests is in ``resting_stops``.
        """
        rows = await OrderStore(self.store).intents_for(asof=asof)
        return [r for r in rows if not r.resting or r.filled_qty > 0]

    async def resting_stops(self, asof: dt.date | None = None) -> list[IntentRow]:
        """The protective stops placed at the broker (any state) on a date, or all."""
        return [r for r in await OrderStore(self.store).intents_for(asof=asof) if r.resting]

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
