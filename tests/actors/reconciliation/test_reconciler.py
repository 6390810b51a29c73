"""The Reconciler actor under a Supervisor, against an in-test fake broker."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest
from structlog.testing import capture_logs

from actors.brokers.base import BrokerAccount, BrokerPosition, BrokerUnavailable
from actors.messages import (
    AdoptBrokerState,
    Discrepancy,
    GetStatus,
    Reconcile,
    ReconciliationReport,
)
from actors.reconciliation.reconciler import BrokerUnreadable, Reconciler
from actors.store.broker_state import BrokerStateStore
from actors.store.signals import SignalStore
from daemon.actor import ActorRef
from daemon.clock import SimClock
from daemon.errors import Refusal
from daemon.store import Store
from daemon.supervisor import OneForOne, Supervisor

T0 = dt.datetime(2026, 11, 23, 14, 35, tzinfo=dt.UTC)


class FakeBroker:
    """Positions and cash in dicts; ``down`` makes every read raise BrokerUnavailable."""

    name = "fake"

    def __init__(self, cash: float, positions: dict[str, tuple[int, float]] | None = None) -> None:
        self.cash = cash
        self.held = dict(positions or {})
        self.closes: dict[dt.date, float] = {}  # equity at the close of a session
        self.down = False

    async def account(self) -> BrokerAccount:
        if self.down:
            raise BrokerUnavailable("HTTP 503 from the broker")
        equity = self.cash + sum(q * p for q, p in self.held.values())
        return BrokerAccount(cash=self.cash, equity=equity, last_equity=equity, buying_power=0.0)

    async def positions(self) -> list[BrokerPosition]:
        if self.down:
            raise BrokerUnavailable("HTTP 503 from the broker")
        return [BrokerPosition(s, q, p) for s, (q, p) in sorted(self.held.items())]

    async def closing_equity(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        if self.down:
            raise BrokerUnavailable("HTTP 503 from the broker")
        return {s: self.closes[s] for s in sessions if s in self.closes}


@pytest.fixture
async def ids(store: Store) -> dict[str, int]:
    signals = SignalStore(store)
    return {
        name: await signals.ensure_strategy(name, name, 10_000.0)
        for name in ("momentum", "rsi", "manual")
    }


class Running:
    def __init__(self, sup: Supervisor, ref: ActorRef) -> None:
        self.sup = sup
        self.ref = ref

    async def reconcile(self, kind: str = "RECONCILIATION") -> ReconciliationReport:
        report = await self.ref.ask(Reconcile("run-1", kind))
        assert isinstance(report, ReconciliationReport)
        return report

    @property
    def restarts(self) -> int:
        return self.sup.cell("reconciler").restarts


@asynccontextmanager
async def running(store: Store, broker: FakeBroker, manual_id: int) -> AsyncIterator[Running]:
    clock = SimClock(T0)
    sup = Supervisor(OneForOne(backoff_s=0.0, backoff_max_s=0.0), clock=clock)
    ref = sup.add(
        "reconciler",
        lambda: Reconciler(
            store=store,
            broker=broker,  # type: ignore[arg-type]
            clock=clock,
            tolerance=0.01,
            manual_strategy_id=manual_id,
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        try:
            yield Running(sup, ref)
        finally:
            await sup.stop()


async def hold(store: Store, strategy_id: int, symbol: str, shares: int) -> None:
    await store.execute(
        "INSERT INTO positions (strategy_id, symbol, shares, avg_price, entry_date, stop_price)"
        " VALUES (?, ?, ?, 100.0, '2026-11-02', 90.0)",
        (strategy_id, symbol, shares),
    )


async def buy(store: Store, strategy_id: int, notional: float, commission: float) -> None:
    await store.execute(
        "INSERT INTO trades (run_id, strategy_id, symbol, action, shares, notional,"
        " commission_cost) VALUES ('r0', ?, 'AAPL', 'BUY', 10, ?, ?)",
        (strategy_id, notional, commission),
    )


async def test_agreeing_books_pass(store: Store, ids: dict[str, int]) -> None:
    """Local positions and cash equal to the broker's give a passing report."""
    await hold(store, ids["momentum"], "AAPL", 10)
    broker = FakeBroker(50_000.0, {"AAPL": (10, 100.0)})
    async with running(store, broker, ids["manual"]) as actor:
        report = await actor.reconcile()
    assert report.passed
    assert report.discrepancies == ()
    assert report.error is None
    assert (report.local_cash, report.broker_cash, report.broker_equity) == (
        50_000.0,
        50_000.0,
        51_000.0,
    )
    assert report.at == T0


async def test_position_changed_behind_our_back_fails(store: Store, ids: dict[str, int]) -> None:
    """A broker position that moved without us is a failed report naming the symbol."""
    await hold(store, ids["momentum"], "AAPL", 10)
    broker = FakeBroker(50_000.0, {"AAPL": (10, 100.0)})
    async with running(store, broker, ids["manual"]) as actor:
        assert (await actor.reconcile()).passed
        broker.held["AAPL"] = (5, 100.0)
        with capture_logs() as logs:
            report = await actor.reconcile()
    assert not report.passed
    assert report.discrepancies == (Discrepancy("position", "AAPL", 10.0, 5.0),)
    logged = [e for e in logs if e["event"] == "reconciliation_discrepancy"]
    assert [(e["symbol"], e["local"], e["broker"]) for e in logged] == [("AAPL", 10.0, 5.0)]


async def test_cash_mismatch_fails(store: Store, ids: dict[str, int]) -> None:
    """Broker cash that moved beyond 1% without a recorded trade fails the gate."""
    broker = FakeBroker(50_000.0)
    async with running(store, broker, ids["manual"]) as actor:
        broker.cash = 47_000.0
        report = await actor.reconcile()
    assert not report.passed
    assert report.discrepancies == (Discrepancy("cash", None, 50_000.0, 47_000.0),)


async def test_broker_unavailable_is_a_failed_report_not_a_crash(
    store: Store, ids: dict[str, int]
) -> None:
    """An unreadable broker gives passed=False with the error; the actor is not restarted."""
    broker = FakeBroker(50_000.0)
    async with running(store, broker, ids["manual"]) as actor:
        broker.down = True
        with capture_logs() as logs:
            report = await actor.reconcile("START")
        status = await actor.ref.ask(GetStatus())
        broker.down = False
        again = await actor.reconcile()
        restarts = actor.restarts
    assert not report.passed
    assert report.error == "BrokerUnavailable: HTTP 503 from the broker"
    assert [e["error"] for e in logs if e["event"] == "reconciliation_failed"] == [report.error]
    assert status["passed"] is False
    assert status["broker_cash"] is None
    assert again.passed
    assert restarts == 0
    kinds = [s.kind for s in await BrokerStateStore(store).history(10)]
    assert kinds == ["RECONCILIATION"]  # nothing was read from the broker: no START snapshot


async def test_snapshots_are_written_with_the_requested_kind(
    store: Store, ids: dict[str, int]
) -> None:
    """START, RECONCILIATION and END reconciliations each leave a snapshot of that kind."""
    broker = FakeBroker(50_000.0, {"MSFT": (3, 400.0)})
    await hold(store, ids["rsi"], "MSFT", 3)
    async with running(store, broker, ids["manual"]) as actor:
        for kind in ("START", "RECONCILIATION", "END"):
            await actor.reconcile(kind)
    history = await BrokerStateStore(store).history(10)
    assert [s.kind for s in history] == ["END", "RECONCILIATION", "START"]
    assert all(s.run_id == "run-1" and s.passed for s in history)
    assert history[0].positions == {"MSFT": 3}
    assert history[0].cash == 50_000.0


async def test_failed_reconciliation_snapshot_records_discrepancies(
    store: Store, ids: dict[str, int]
) -> None:
    """A failed reconciliation's snapshot carries passed=False and the discrepancies."""
    broker = FakeBroker(50_000.0, {"NVDA": (2, 120.0)})
    async with running(store, broker, ids["manual"]) as actor:
        await actor.reconcile("START")
    snap = await BrokerStateStore(store).latest("START")
    assert snap is not None
    assert snap.passed is False
    assert snap.discrepancies == (Discrepancy("position", "NVDA", 0.0, 2.0),)


async def test_unknown_kind_is_refused(store: Store, ids: dict[str, int]) -> None:
    """A kind other than START/RECONCILIATION/END is refused; the actor carries on."""
    async with running(store, FakeBroker(1_000.0), ids["manual"]) as actor:
        with pytest.raises(Refusal, match="MIDDAY"):
            await actor.ref.ask(Reconcile("run-1", "MIDDAY"))
        assert (await actor.reconcile()).passed
        assert actor.restarts == 0


async def test_adopt_takes_the_broker_state_and_next_reconcile_passes(
    store: Store, ids: dict[str, int]
) -> None:
    """Adoption is logged with its reason, rewrites positions and cash, and the gate passes."""
    await hold(store, ids["momentum"], "AAPL", 30)
    await hold(store, ids["rsi"], "AAPL", 10)
    await hold(store, ids["rsi"], "KO", 8)
    broker = FakeBroker(50_000.0, {"AAPL": (10, 100.0), "KO": (8, 60.0)})
    async with running(store, broker, ids["manual"]) as actor:
        broker.held["AAPL"] = (25, 101.0)  # 15 sold behind our back
        broker.held["NVDA"] = (4, 120.5)  # bought by hand at the broker
        broker.cash = 48_000.0
        before = await actor.reconcile()
        with capture_logs() as logs:
            adopted = await actor.ref.ask(AdoptBrokerState("manual trades on 2026-11-20"))
        after = await actor.reconcile()
        status = await actor.ref.ask(GetStatus())
    assert not before.passed
    assert {d.symbol for d in before.discrepancies} == {"AAPL", "NVDA", None}
    assert adopted.passed
    assert after.passed
    assert status["passed"] is True
    assert status["discrepancies"] == []
    [event] = [e for e in logs if e["event"] == "broker_state_adopted"]
    assert event["reason"] == "manual trades on 2026-11-20"
    assert event["log_level"] == "warning"
    states = BrokerStateStore(store)
    assert await states.local_positions() == {"AAPL": 25, "KO": 8, "NVDA": 4}
    assert await states.local_cash() == 48_000.0
    rows = await store.fetchall(
        "SELECT strategy_id, symbol, shares, avg_price, entry_date, stop_price FROM positions"
        " ORDER BY symbol, strategy_id"
    )
    by_key = {(r["strategy_id"], r["symbol"]): r for r in rows}
    assert by_key[(ids["momentum"], "AAPL")]["shares"] == 15  # the larger holder was cut
    assert by_key[(ids["rsi"], "AAPL")]["shares"] == 10
    nvda = by_key[(ids["manual"], "NVDA")]
    assert (nvda["shares"], nvda["avg_price"], nvda["entry_date"], nvda["stop_price"]) == (
        4,
        120.5,
        "2026-11-23",
        None,
    )
    latest = await states.latest("RECONCILIATION")
    assert latest is not None
    assert latest.passed


async def test_adopt_refused_while_the_broker_is_down(store: Store, ids: dict[str, int]) -> None:
    """Adoption needs the broker's state: unreadable, it is refused and nothing changes."""
    await hold(store, ids["momentum"], "AAPL", 10)
    broker = FakeBroker(50_000.0)
    async with running(store, broker, ids["manual"]) as actor:
        broker.down = True
        with pytest.raises(BrokerUnreadable, match="HTTP 503"):
            await actor.ref.ask(AdoptBrokerState("try"))
        assert actor.restarts == 0
    assert await BrokerStateStore(store).local_positions() == {"AAPL": 10}


async def test_first_start_initialises_the_baseline_from_the_broker(
    store: Store, ids: dict[str, int]
) -> None:
    """On first start the baseline is broker cash minus the cash effect of recorded trades."""
    await buy(store, ids["momentum"], 1_000.0, 1.0)
    await hold(store, ids["momentum"], "AAPL", 10)
    broker = FakeBroker(9_000.0, {"AAPL": (10, 100.0)})
    states = BrokerStateStore(store)
    with capture_logs() as logs:
        async with running(store, broker, ids["manual"]) as actor:
            report = await actor.reconcile()
    assert await states.cash_baseline() == 10_001.0
    assert report.passed
    assert report.local_cash == 9_000.0
    assert [e["baseline"] for e in logs if e["event"] == "cash_baseline_initialised"] == [10_001.0]


async def test_existing_baseline_is_kept_on_restart(store: Store, ids: dict[str, int]) -> None:
    """A later start never re-derives the baseline, so cash that moved still shows."""
    await BrokerStateStore(store).set_cash_baseline(20_000.0, T0)
    async with running(store, FakeBroker(15_000.0), ids["manual"]) as actor:
        report = await actor.reconcile()
    assert await BrokerStateStore(store).cash_baseline() == 20_000.0
    assert report.discrepancies == (Discrepancy("cash", None, 20_000.0, 15_000.0),)


async def test_broker_down_at_start_sets_baseline_on_first_reconcile_it_can(
    store: Store, ids: dict[str, int]
) -> None:
    """A broker down at first start: no baseline, reconciliations fail until it answers."""
    broker = FakeBroker(30_000.0)
    broker.down = True
    async with running(store, broker, ids["manual"]) as actor:
        assert await BrokerStateStore(store).cash_baseline() is None
        while_down = await actor.reconcile()
        broker.down = False
        report = await actor.reconcile()
    assert not while_down.passed
    assert while_down.error is not None
    assert report.passed
    assert await BrokerStateStore(store).cash_baseline() == 30_000.0


async def test_status_before_any_reconciliation(store: Store, ids: dict[str, int]) -> None:
    """GetStatus before the first report says nothing is known yet."""
    async with running(store, FakeBroker(1.0), ids["manual"]) as actor:
        status = await actor.ref.ask(GetStatus())
    assert status["passed"] is None
    assert status["at"] is None


async def test_status_reports_the_last_reconciliation(store: Store, ids: dict[str, int]) -> None:
    """GetStatus gives the last report as plain JSON values."""
    broker = FakeBroker(10_000.0, {"KO": (1, 60.0)})
    async with running(store, broker, ids["manual"]) as actor:
        await actor.reconcile()
        status = await actor.ref.ask(GetStatus())
    assert status == {
        "passed": False,
        "at": T0.isoformat(),
        "discrepancies": [
            {"kind": "position", "symbol": "KO", "local": 0.0, "broker": 1.0, "diff": 1.0}
        ],
        "local_cash": 10_000.0,
        "broker_cash": 10_000.0,
        "broker_equity": 10_060.0,
        "error": None,
    }


class BookBroker(FakeBroker):
    """A FakeBroker that also reads its book in one step (``ReadsBook``), and counts how."""

    def __init__(self, cash: float, positions: dict[str, tuple[int, float]] | None = None) -> None:
        super().__init__(cash, positions)
        self.reads: list[str] = []

    async def account(self) -> BrokerAccount:
        self.reads.append("account")
        return await super().account()

    async def positions(self) -> list[BrokerPosition]:
        self.reads.append("positions")
        return await super().positions()

    async def book(self) -> tuple[BrokerAccount, list[BrokerPosition]]:
        self.reads.append("book")
        return await super().account(), await super().positions()


async def test_a_broker_that_reads_its_book_at_once_is_read_once(
    store: Store, ids: dict[str, int]
) -> None:
    """With ``ReadsBook`` a reconciliation reads account and positions in one call."""
    await hold(store, ids["momentum"], "AAPL", 10)
    broker = BookBroker(50_000.0, {"AAPL": (10, 100.0)})
    async with running(store, broker, ids["manual"]) as actor:
        broker.reads.clear()  # the baseline's account() at start
        report = await actor.reconcile()
    assert broker.reads == ["book"]
    assert report.passed
    assert (report.broker_cash, report.broker_equity) == (50_000.0, 51_000.0)


async def test_a_start_snapshot_before_the_settle_is_not_a_failure_in_the_log(
    store: Store, ids: dict[str, int]
) -> None:
    """A fill not booked yet shows at START: info lines, no "reconciliation_failed"."""
    await hold(store, ids["momentum"], "AAPL", 10)
    broker = FakeBroker(50_000.0, {"AAPL": (5, 100.0)})
    async with running(store, broker, ids["manual"]) as actor:
        with capture_logs() as logs:
            report = await actor.reconcile("START")
    assert not report.passed
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("reconciliation_start_difference", "info"),
        ("reconciliation_start_unsettled", "info"),
    ]
    assert logs[0]["symbol"] == "AAPL"
