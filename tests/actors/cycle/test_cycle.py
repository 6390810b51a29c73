"""One daily cycle through the actors: data feed, strategies, kill switches, CycleRunner."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pandas as pd
import pytest
from structlog.testing import capture_logs

from actors.brokers.prices import ProviderPriceSource
from actors.brokers.sim import SimBroker
from actors.cycle import kill_switches
from actors.cycle.runner import (
    CycleAlreadyCompleted,
    CycleBusy,
    PlanCycle,
    WaitCycle,
)
from actors.data_feed.params import DataParams, UniverseParams
from actors.data_feed.providers import BarProvider
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.messages import (
    AdoptBrokerState,
    CycleCompleted,
    CycleStatus,
    CycleTrigger,
    Flatten,
    GetKillSwitches,
    GetStatus,
    IntentStatus,
    Signal,
    StartCycle,
    TripKillSwitch,
)
from actors.metrics import Metrics
from actors.store.cycles import CycleJournal
from actors.store.equity import EquityCloses
from actors.store.models import ModelStore
from actors.store.signals import SignalStore
from actors.strategies.base import Strategy, StrategyContext
from actors.strategies.params import StrategiesParams
from actors.strategies.registry import STRATEGY_CLASSES
from actors.system.config import load_settings
from actors.system.graph import simulated_graph
from daemon.clock import SimClock
from daemon.errors import ProviderError, Refusal
from daemon.store import Store
from daemon.supervisor import Supervisor

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
    broker: SimBroker
    clock: SimClock

    async def run(
        self,
        asof: dt.date = ASOF,
        run_id: str | None = None,
        *,
        force: bool = False,
        allow_entries: bool = False,
    ) -> CycleCompleted:
        risk = self.sup.ref("risk_supervisor")
        run_id = run_id or f"test-{asof:%Y%m%d}"
        await risk.ask(
            StartCycle(
                run_id, asof, CycleTrigger.OPERATOR, force=force, allow_entries=allow_entries
            )
        )
        done: CycleCompleted = await risk.ask(WaitCycle(run_id), timeout=120)
        return done


class SyntheticPrices:
    """Opens and closes of the synthetic market, known once the clock has passed them."""

    def __init__(self, provider: BarProvider, clock: SimClock) -> None:
        self._inner = ProviderPriceSource(provider, CALENDAR, clock)

    async def open_price(self, symbol: str, session: dt.date) -> float | None:
        return await self._inner.open_price(symbol, session)

    async def close_price(self, symbol: str, session: dt.date) -> float | None:
        return await self._inner.close_price(symbol, session)


def market_hours(day: dt.date = ASOF) -> SimClock:
    """A clock an hour after the open of ``day`` (orders fill at that open)."""
    return SimClock(CALENDAR.session_open(day) + dt.timedelta(hours=1))


async def build(
    store: Store,
    tmp_path: Path,
    *,
    provider: object | None = None,
    exploding: bool = False,
    universe: tuple[str, ...] = ("AAPL", "MSFT", "XOM", "JPM", "KO", "NVDA", "CAT", "PFE"),
    clock: SimClock | None = None,
    strategies: StrategiesParams | None = None,
    broker_source: BarProvider | None = None,
) -> Graph:
    """The real graph (``simulated_graph``) on ``store``; a fake provider or strategy if asked.

    ``broker_source`` prices the simulated broker and gives it its corporate actions
    (default: the synthetic market, with none).
    """
    clock = clock or market_hours()
    environ = {
        "TRADINGD_DAEMON__STATE_DIR": str(tmp_path / "state"),
        "TRADINGD_DAEMON__RESTART_BACKOFF_S": "0",
        "TRADINGD_DAEMON__RESTART_BACKOFF_MAX_S": "0",
    }
    settings = load_settings(None, environ)
    data = settings.data.model_copy(update={"universe": UniverseParams(symbols=universe)})
    strategies = strategies or StrategiesParams()
    settings = settings.model_copy(update={"data": data, "strategies": strategies})
    synthetic = SyntheticProvider(data.synthetic)
    broker = SimBroker(
        store,
        clock=clock,
        calendar=CALENDAR,
        prices=SyntheticPrices(broker_source or synthetic, clock),
        actions=broker_source,
    )
    graph = await simulated_graph(
        settings,
        store=store,
        calendar=CALENDAR,
        clock=clock,
        provider=provider or synthetic,  # type: ignore[arg-type]
        broker=lambda _store, _clock: broker,
        events=True,
        strategy_overrides={"momentum": Exploding(strategies.momentum)} if exploding else None,
    )
    return Graph(graph.supervisor, store, graph.metrics, settings.daemon.events_dir, broker, clock)


async def test_cycle_generates_persists_and_journals_signals(store: Store, tmp_path: Path) -> None:
    """A cycle on the synthetic market runs all four strategies and records what they said."""
    graph = await build(store, tmp_path)
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
    graph = await build(store, tmp_path, universe=DataParams().universe.symbols)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    assert sum(done.raw_signals.values()) > 0


async def test_raising_strategy_fails_only_itself(store: Store, tmp_path: Path) -> None:
    """A strategy that raises yields a failed result for it; the cycle and the others go on."""
    graph = await build(store, tmp_path, exploding=True)
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
    graph = await build(store, tmp_path, provider=FailingProvider())
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
    graph = await build(store, tmp_path, provider=StaleProvider())
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.HALTED
    assert "stale" in done.reason
    rejections = await SignalStore(store).rejections("test-20261123")
    assert rejections
    assert {r["stage"] for r in rejections} == {"DATA"}


async def test_active_kill_switch_blocks_entries_not_the_cycle(
    store: Store, tmp_path: Path
) -> None:
    """A tripped halt switch rejects every entry (stage KILL_SWITCH); no buy is placed."""
    graph = await build(store, tmp_path, universe=DataParams().universe.symbols)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.sup.ref("kill_switches").ask(
            TripKillSwitch(kill_switches.HALT, "operator test", "operator")
        )
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    assert sum(done.raw_signals.values()) > 0
    rejections = await SignalStore(store).rejections("test-20261123")
    assert rejections
    assert {(r["stage"], r["reason"]) for r in rejections} == {("KILL_SWITCH", "kill_switch")}
    orders = await graph.broker.positions()
    assert orders == []


async def test_second_cycle_while_running_is_refused(store: Store, tmp_path: Path) -> None:
    """StartCycle while a cycle runs is refused with the running cycle named."""
    graph = await build(store, tmp_path)
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
    graph = await build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.sup.ref("kill_switches").ask(
            TripKillSwitch(kill_switches.strategy_switch("ml_momentum"), "test", "operator")
        )
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    assert "ml_momentum" not in done.raw_signals
    assert set(done.raw_signals) == set(STRATEGY_CLASSES) - {"ml_momentum"}


async def test_ml_model_is_persisted_and_reloaded(store: Store, tmp_path: Path) -> None:
    """The fitted ML model is stored with its window and reloaded by a fresh actor."""
    graph = await build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.run()
        await graph.sup.stop()
    stored = await ModelStore(store).latest("ml_momentum")
    assert stored is not None
    assert stored.train_to == CALENDAR.previous_session(ASOF)
    again = await build(store, tmp_path)
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
    graph = await build(store, tmp_path)
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
    from actors.system.config import load_settings

    graph = await build(store, tmp_path)
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


DEFAULT_36 = DataParams().universe.symbols


async def intents(store: Store) -> list[dict[str, object]]:
    """The cycle's own order intents (not the protective stops resting at the broker)."""
    rows = await store.fetchall(
        "SELECT intent_id, status, filled_qty FROM order_intents WHERE stop_price IS NULL"
    )
    return [dict(r) for r in rows]


async def broker_order_count(store: Store) -> int:
    row = await store.fetchone("SELECT COUNT(*) FROM sim_orders")
    assert row is not None
    return int(row[0])


async def test_first_day_trades_fills_and_sets_stops(store: Store, tmp_path: Path) -> None:
    """Entries fill at the session's open; positions carry the 3 x ATR catastrophe stop."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    rows = await intents(store)
    assert rows
    assert {r["status"] for r in rows} == {"FILLED"}
    positions = await store.fetchall("SELECT * FROM positions WHERE shares > 0")
    assert len(positions) == len(rows)
    every = await store.fetchall(
        "SELECT symbol, target_qty, stop_price, status FROM order_intents"
        " WHERE stop_price IS NOT NULL"
    )
    resting = {
        r["symbol"]: (r["target_qty"], r["stop_price"], r["status"])
        for r in every
        if r["stop_price"] is not None
    }
    for p in positions:
        assert p["stop_price"] == pytest.approx(p["avg_price"] - 3 * p["atr_at_entry"])
        assert p["entry_date"] == ASOF.isoformat()
        # ... and that stop rests at the broker (orders.broker_stops is on by default).
        assert resting[p["symbol"]] == (
            p["shares"],
            pytest.approx(p["stop_price"], abs=0.006),
            "ACCEPTED",
        )
    trades = await store.fetchall("SELECT * FROM trades")
    for t in trades:
        assert t["commission_cost"] == pytest.approx(0.005 * t["shares"])
        assert t["slippage_cost"] > 0
    funnel = {f.strategy: f for f in await SignalStore(store).funnel("test-20261123")}
    assert sum(f.executed for f in funnel.values()) == len(rows)
    states = await store.fetchall(
        "SELECT terminal_state FROM signals WHERE run_id = 'test-20261123'"
    )
    assert states
    assert all(s["terminal_state"] for s in states)


async def test_event_file_has_each_signal_and_each_intent(store: Store, tmp_path: Path) -> None:
    """The place step writes one event per signal and two per intent, in the order they came."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        await graph.sup.stop()
    assert done.status is CycleStatus.COMPLETED
    lines = [
        json.loads(line)
        for line in (graph.events_dir / "events_test-20261123.jsonl").read_text().splitlines()
    ]
    stored = await SignalStore(store).signals_for_run("test-20261123")
    generated = [e for e in lines if e["event_type"] == "SIGNAL_GENERATED"]
    assert [(e["strategy"], e["symbol"], e["action"]) for e in generated] == [
        (s["strategy"], s["symbol"], s["signal_type"]) for s in stored
    ]
    rows = await intents(store)
    created = [e for e in lines if e["event_type"] == "ORDER_INTENT_CREATED"]
    assert sorted(e["intent_id"] for e in created) == sorted(str(r["intent_id"]) for r in rows)
    kinds = [e["event_type"] for e in lines]
    for i, kind in enumerate(kinds):
        if kind == "ORDER_INTENT_CREATED":
            assert kinds[i + 1] == "ORDER_FILLED"
            assert lines[i + 1]["intent_id"] == lines[i]["intent_id"]


async def test_second_run_same_day_places_nothing_new(store: Store, tmp_path: Path) -> None:
    """A completed date is refused; forced re-runs place no second round of entries."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.run(run_id="first")
        placed = await broker_order_count(store)
        with pytest.raises(CycleAlreadyCompleted, match="2026-11-23 is done"):
            await graph.run(run_id="second")
        forced = await graph.run(run_id="third", force=True)
        entries = await graph.run(run_id="fourth", force=True, allow_entries=True)
        await graph.sup.stop()
    assert placed > 0
    assert await broker_order_count(store) == placed
    assert forced.reason.startswith("0 orders placed")
    # even with entries allowed, the date has the first run's entries: no second round
    assert entries.reason.startswith("0 orders placed")


async def test_reconciliation_mismatch_latches_and_adopt_clears(
    store: Store, tmp_path: Path
) -> None:
    """A position changed behind our back trips reconciliation_failed; adopt makes it pass."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.run(run_id="day1")
        await graph.broker.adjust_position("ZZZ", 7, 10.0)
        graph.clock.set_time(
            CALENDAR.session_open(CALENDAR.next_session(ASOF)) + dt.timedelta(hours=1)
        )
        before = await broker_order_count(store)
        halted = await graph.run(CALENDAR.next_session(ASOF), run_id="day2")
        switches_now = await graph.sup.ref("kill_switches").ask(GetKillSwitches())
        report = await graph.sup.ref("reconciler").ask(AdoptBrokerState("checked by hand"))
        await graph.sup.stop()
    assert "reconciliation failed" in halted.reason
    assert "reconciliation_failed" in [s.name for s in switches_now]
    buys = await store.fetchall(
        "SELECT COUNT(*) FROM order_intents WHERE asof_date = ? AND side = 'buy'",
        (CALENDAR.next_session(ASOF).isoformat(),),
    )
    assert buys[0][0] == 0
    assert await broker_order_count(store) >= before
    assert report.passed


async def test_stop_loss_exit_goes_first(store: Store, tmp_path: Path) -> None:
    """A position whose stop is above the last close is sold as a STOP intent."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.run(run_id="day1")
        row = await store.fetchone("SELECT id, symbol FROM positions WHERE shares > 0 LIMIT 1")
        assert row is not None
        await store.execute("UPDATE positions SET stop_price = 1e9 WHERE id = ?", (row["id"],))
        nxt = CALENDAR.next_session(ASOF)
        graph.clock.set_time(CALENDAR.session_open(nxt) + dt.timedelta(hours=1))
        await graph.run(nxt, run_id="day2")
        await graph.sup.stop()
    assert row is not None
    stop = await store.fetchall(
        "SELECT status, intent_kind, stop_price FROM order_intents"
        " WHERE symbol = ? AND side = 'sell' ORDER BY rowid",
        (row["symbol"],),
    )
    # The stop resting at the broker is cancelled (confirmed) before the daemon's own
    # stop-loss sell is sent, so the two never sell the shares twice.
    assert [(r["status"], r["intent_kind"], r["stop_price"] is None) for r in stop] == [
        ("CANCELED", "STOP", False),
        ("FILLED", "STOP", True),
    ]
    left = await store.fetchone("SELECT shares FROM positions WHERE id = ?", (row["id"],))
    assert left is None


async def test_plan_submits_nothing(store: Store, tmp_path: Path) -> None:
    """A plan lists the orders it would place and writes no intent and no broker order."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        plan = await graph.sup.ref("risk_supervisor").ask(PlanCycle("plan", ASOF))
        await graph.sup.stop()
    assert plan["orders"]
    assert all(o["reasoning"] for o in plan["orders"])
    assert await intents(store) == []
    assert await broker_order_count(store) == 0
    assert await CycleJournal(store).get("plan") is None


async def test_latched_switch_survives_restart(store: Store, tmp_path: Path) -> None:
    """A tripped switch is still active for a fresh board on the same store."""
    graph = await build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.sup.ref("kill_switches").ask(
            TripKillSwitch("daily_drawdown", "equity -6%", "risk")
        )
        await graph.sup.stop()
    again = await build(store, tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(again.sup.run)
        active = await again.sup.ref("kill_switches").ask(GetKillSwitches())
        await again.sup.stop()
    assert [(s.name, s.reason) for s in active] == [("daily_drawdown", "equity -6%")]


async def test_daily_loss_beyond_two_percent_blocks_entries(store: Store, tmp_path: Path) -> None:
    """The last session closed 3% below the one before it: no entry is placed."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    before_last = CALENDAR.previous_session(CALENDAR.previous_session(ASOF))
    await EquityCloses(store).record(
        before_last, 103_100.0, "session_close", dt.datetime(2026, 11, 20, 22, tzinfo=dt.UTC)
    )
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        await graph.sup.stop()
    assert "daily loss 3.01% beyond -2%" in done.reason
    assert await broker_order_count(store) == 0
    rejections = await SignalStore(store).rejections("test-20261123")
    assert {r["reason"] for r in rejections} == {"kill_switch"}


async def test_blocked_broker_account_trips_a_switch(store: Store, tmp_path: Path) -> None:
    """An account with trading_blocked latches broker_blocked; no order is sent."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    await graph.broker.set_trading_blocked(True)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = await graph.run()
        active = await graph.sup.ref("kill_switches").ask(GetKillSwitches())
        await graph.sup.stop()
    assert "does not allow trading" in done.reason
    assert "broker_blocked" in [s.name for s in active]
    assert await broker_order_count(store) == 0


async def test_flatten_sells_one_strategy_even_while_halted(store: Store, tmp_path: Path) -> None:
    """Flatten STRATEGY sells only its positions, also with entries halted; unknown refused."""
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.run(run_id="day1")
        held = await store.fetchall(
            "SELECT s.name AS strategy, p.symbol FROM positions p JOIN strategies s"
            " ON s.id = p.strategy_id WHERE p.shares > 0"
        )
        target = str(held[0]["strategy"])
        await graph.sup.ref("kill_switches").ask(
            TripKillSwitch(kill_switches.HALT, "test", "operator")
        )
        manager = graph.sup.ref("order_manager")
        result = await manager.ask(Flatten("flat", ASOF, target))
        with pytest.raises(Refusal, match="no open position or order matches 'NOPE'"):
            await manager.ask(Flatten("flat2", ASOF, "NOPE"))
        await graph.sup.stop()
    sold = {r.symbol for r in result.results if r.status is IntentStatus.FILLED}
    assert sold == {str(r["symbol"]) for r in held if r["strategy"] == target}
    left = await store.fetchall(
        "SELECT s.name AS strategy FROM positions p JOIN strategies s ON s.id = p.strategy_id"
        " WHERE p.shares > 0"
    )
    assert target not in {r["strategy"] for r in left}
    assert len(left) == len(held) - len(sold)
