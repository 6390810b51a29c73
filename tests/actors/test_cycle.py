"""One daily cycle through the actors: data feed, strategies, kill switches, RiskSupervisor."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pandas as pd
import pytest
from structlog.testing import capture_logs

from actors.data_feed.actor import DataFeed
from actors.data_feed.params import DataParams, UniverseParams
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.messages import (
    CycleStatus,
    CycleTrigger,
    GetStatus,
    Signal,
    StartCycle,
    TripKillSwitch,
)
from actors.risk import switches
from actors.risk.kill_switch import KillSwitchBoard
from actors.risk.supervisor import CycleBusy, RiskSupervisor, WaitCycle
from actors.strategies.actor import StrategyActor
from actors.strategies.base import Strategy, StrategyContext
from actors.strategies.params import StrategiesParams, StrategyParams
from actors.strategies.registry import STRATEGY_CLASSES
from daemon.calendar import ExchangeCalendar
from daemon.clock import WallClock
from daemon.errors import ProviderError
from daemon.logging import EventLog
from daemon.metrics import Metrics
from daemon.store import CycleJournal, KillSwitchStore, Store
from daemon.store.models import ModelStore
from daemon.store.signals import SignalStore
from daemon.supervisor import OneForOne, Supervisor

ASOF = dt.date(2026, 11, 23)  # a Monday session
CALENDAR = ExchangeCalendar("XNYS")


class Exploding(Strategy):
    name = "momentum"

    def generate(self, ctx: StrategyContext) -> list[Signal]:
        raise ZeroDivisionError("bad math in a strategy")


class FailingProvider:
    name = "failing"

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        raise ProviderError("HTTP 503 from the data API")

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        return None


class StaleProvider(SyntheticProvider):
    """The synthetic market, but its last three sessions never arrive."""

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        frame = await super().fetch(symbols, start, end)
        cutoff = pd.Timestamp(CALENDAR.sessions_back(end, 3)[0])
        return frame.loc[frame["date"] < cutoff]


@dataclass
class Graph:
    sup: Supervisor
    store: Store
    metrics: Metrics
    events_dir: Path

    async def run(self, asof: dt.date = ASOF) -> object:
        risk = self.sup.ref("risk_supervisor")
        run_id = f"test-{asof:%Y%m%d}"
        await risk.ask(StartCycle(run_id, asof, CycleTrigger.OPERATOR))
        return await risk.ask(WaitCycle(run_id), timeout=120)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "state" / "tradingd.db")
    yield s
    await s.close()


def build(
    store: Store,
    tmp_path: Path,
    *,
    provider: object | None = None,
    exploding: bool = False,
    universe: tuple[str, ...] = ("AAPL", "MSFT", "XOM", "JPM", "KO", "NVDA", "CAT", "PFE"),
) -> Graph:
    clock = WallClock()
    metrics = Metrics()
    sup = Supervisor(OneForOne(backoff_s=0.0, backoff_max_s=0.0), clock=clock)
    params = DataParams(universe=UniverseParams(symbols=universe))
    feed_provider = provider or SyntheticProvider(params.synthetic)
    strategies = StrategiesParams()
    sup.add("kill_switches", lambda: KillSwitchBoard(KillSwitchStore(store), clock))
    sup.add(
        "data_feed",
        lambda: DataFeed(params, feed_provider, CALENDAR, metrics=metrics),  # type: ignore[arg-type]
    )
    refs = {}
    for name in STRATEGY_CLASSES:
        p: StrategyParams = getattr(strategies, name)
        injected = Exploding(p) if exploding and name == "momentum" else None
        refs[name] = sup.add(
            f"strategy.{name}",
            lambda name=name, p=p, injected=injected: StrategyActor(
                name, p, clock=clock, models=ModelStore(store), metrics=metrics, strategy=injected
            ),
        )
    events_dir = tmp_path / "events"
    sup.add(
        "risk_supervisor",
        lambda: RiskSupervisor(
            clock=clock,
            journal=CycleJournal(store),
            signals=SignalStore(store),
            data_feed=sup.ref("data_feed"),
            kill_switches=sup.ref("kill_switches"),
            strategies=refs,
            params=strategies,
            events=EventLog(events_dir),
            metrics=metrics,
        ),
        depends_on=["kill_switches", "data_feed"],
    )
    return Graph(sup, store, metrics, events_dir)


async def test_cycle_generates_persists_and_journals_signals(store: Store, tmp_path: Path) -> None:
    """A cycle on the synthetic market runs all four strategies and records what they said."""
    graph = build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        with capture_logs() as logs:
            done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    assert set(done.raw_signals) == set(STRATEGY_CLASSES)
    logged = [e for e in logs if e["event"] == "signals_generated"]
    assert logged[0]["raw_signals"] == done.raw_signals
    funnel = await SignalStore(store).funnel("test-20261123")
    assert {row.strategy: row.raw for row in funnel} == done.raw_signals
    stored = await SignalStore(store).signals_for_run("test-20261123")
    assert len(stored) == sum(done.raw_signals.values())
    record = await CycleJournal(store).get("test-20261123")
    assert record is not None
    assert record.status == "completed"
    assert await CycleJournal(store).completed_for(ASOF)
    event_file = graph.events_dir / "events_test-20261123.jsonl"
    kinds = [
        line.split('"event_type": "')[1].split('"')[0]
        for line in event_file.read_text().splitlines()
    ]
    assert kinds[0] == "CYCLE_STARTED"
    assert kinds[-1] == "CYCLE_COMPLETED"


async def test_embedded_default_universe_trades_on_first_day(store: Store, tmp_path: Path) -> None:
    """On the default 36-symbol synthetic market the first cycle already has entries."""
    graph = build(store, tmp_path, universe=DataParams().universe.symbols)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    assert sum(done.raw_signals.values()) > 0


async def test_raising_strategy_fails_only_itself(store: Store, tmp_path: Path) -> None:
    """A strategy that raises yields a failed result for it; the cycle and the others go on."""
    graph = build(store, tmp_path, exploding=True)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        status = await graph.sup.ref("strategy.momentum").ask(GetStatus())
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    assert "momentum: ZeroDivisionError: bad math in a strategy" in done.reason
    assert done.raw_signals["momentum"] == 0
    assert status["last_error"] == "ZeroDivisionError: bad math in a strategy"
    assert graph.sup.cell("strategy.momentum").restarts == 0
    failures = graph.metrics.strategy_failures.labels(strategy="momentum")._value.get()
    assert failures == 1


async def test_provider_failure_halts_without_trading(store: Store, tmp_path: Path) -> None:
    """A provider error halts the cycle with the reason; no signals are generated."""
    graph = build(store, tmp_path, provider=FailingProvider())
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.HALTED
    assert "HTTP 503" in done.reason
    assert done.raw_signals == {}
    assert await SignalStore(store).signals_for_run("test-20261123") == []


async def test_stale_data_halts_the_cycle(store: Store, tmp_path: Path) -> None:
    """Bars that stop three sessions early are stale: the cycle halts, naming it."""
    graph = build(store, tmp_path, provider=StaleProvider())
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.HALTED
    assert "stale" in done.reason
    rejections = await SignalStore(store).rejections("test-20261123")
    assert rejections
    assert {r["stage"] for r in rejections} == {"DATA"}


async def test_active_kill_switch_halts_before_data(store: Store, tmp_path: Path) -> None:
    """A tripped halt switch stops the cycle before any data is fetched."""
    graph = build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.sup.ref("kill_switches").ask(
            TripKillSwitch(switches.HALT, "operator test", "operator")
        )
        done = await graph.run()
        data_status = await graph.sup.ref("data_feed").ask(GetStatus())
        await graph.sup.stop()
    assert done.status is CycleStatus.HALTED
    assert "trading_halted: operator test" in done.reason
    assert "last_result" not in data_status


async def test_second_cycle_while_running_is_refused(store: Store, tmp_path: Path) -> None:
    """StartCycle while a cycle runs is refused with the running cycle named."""
    graph = build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        risk = graph.sup.ref("risk_supervisor")
        await risk.ask(StartCycle("first", ASOF, CycleTrigger.OPERATOR))
        with pytest.raises(CycleBusy, match="cycle first is still running"):
            await risk.ask(StartCycle("second", ASOF, CycleTrigger.OPERATOR))
        await risk.ask(WaitCycle("first"), timeout=120)
        await graph.sup.stop()


async def test_disabled_strategy_is_skipped(store: Store, tmp_path: Path) -> None:
    """A strategy_disabled switch keeps that strategy out of the cycle."""
    graph = build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.sup.ref("kill_switches").ask(
            TripKillSwitch(switches.strategy_switch("ml_momentum"), "test", "operator")
        )
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    assert "ml_momentum" not in done.raw_signals
    assert set(done.raw_signals) == set(STRATEGY_CLASSES) - {"ml_momentum"}


async def test_ml_model_is_persisted_and_reloaded(store: Store, tmp_path: Path) -> None:
    """The fitted ML model is stored with its window and reloaded by a fresh actor."""
    graph = build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.run()
        await graph.sup.stop()
    stored = await ModelStore(store).latest("ml_momentum")
    assert stored is not None
    assert stored.train_to == CALENDAR.previous_session(ASOF)
    again = build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(again.sup.run)
        with capture_logs() as logs:
            await again.run(CALENDAR.next_session(ASOF))
        await again.sup.stop()
    assert not [e for e in logs if e["event"] == "model_trained"]


async def test_interrupted_cycle_is_closed_at_start(store: Store, tmp_path: Path) -> None:
    """A cycle left 'running' by a crash is closed as failed when the supervisor starts."""
    journal = CycleJournal(store)
    await journal.begin("crashed", ASOF, "schedule", dt.datetime.now(dt.UTC))
    graph = build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.sup.stop()
    record = await journal.get("crashed")
    assert record is not None
    assert record.status == "failed"
    assert record.reason == "interrupted by a restart"
    assert not await journal.completed_for(ASOF)


async def test_reloaded_settings_disable_a_strategy_from_next_cycle(
    store: Store, tmp_path: Path
) -> None:
    """A reload that disables a strategy keeps it out of the next cycle."""
    from actors.messages import ApplySettings
    from daemon.config import load_settings

    graph = build(store, tmp_path)
    settings = load_settings(None, {"TRADINGD_STRATEGIES__MOMENTUM__ENABLED": "false"})
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        first = await graph.run()
        for name in graph.sup.names():
            await graph.sup.ref(name).tell(ApplySettings(settings))
        second = await graph.run(CALENDAR.next_session(ASOF))
        await graph.sup.stop()
    assert "momentum" in first.raw_signals
    assert "momentum" not in second.raw_signals
