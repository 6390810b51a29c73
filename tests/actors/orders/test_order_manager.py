"""OrderManager: write before submit, never twice, adopt what the broker has, book deltas."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry

from actors.brokers.base import (
    AccountBlocked,
    Broker,
    BrokerAccount,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerPosition,
    BrokerUnavailable,
    DuplicateClientOrderId,
    MarketClock,
    OrderRejected,
    OrderRequest,
    OrderSide,
    SubmissionOutcomeUnknown,
)
from actors.messages import (
    GetStatus,
    IntentKind,
    IntentStatus,
    OrderIntentSpec,
    OrderResult,
    OrderResults,
    PlaceOrders,
    SettleOrders,
)
from actors.metrics import Metrics
from actors.orders.intents import intent_id
from actors.orders.manager import OrderManager
from actors.risk.fill_terms import ReferenceFillTerms
from actors.store.orders import OrderStore
from daemon.actor import ActorRef
from daemon.clock import SimClock
from daemon.store import Store
from daemon.supervisor import OneForOne, Supervisor

ASOF = dt.date(2026, 11, 23)
NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)  # 10:00 in New York, session ASOF
S = IntentStatus


class ScriptedBroker:
    """A fake broker: orders by client id, scripted submit faults and fills over polls.

    ``faults`` is consumed one per submit: ``refuse``, ``unavailable``, ``blocked``,
    ``unknown_created`` (order made, answer lost), ``unknown_lost`` (nothing made),
    ``crash_before`` / ``crash_after`` (the process dies before / after the order
    is made). ``plans[symbol]`` gives (cumulative filled, price of that step) per
    poll; without a plan an order fills at ``price`` on submission.
    """

    name = "scripted"

    def __init__(self, price: float = 100.075) -> None:
        self.price = price
        self.orders: dict[str, BrokerOrder] = {}
        self.submits: list[OrderRequest] = []
        self.lookups: list[str] = []
        self.faults: deque[str] = deque()
        self.lookup_faults: deque[str] = deque()
        self.plans: dict[str, list[tuple[int, float]]] = {}
        self.cancel_after_plan: set[str] = set()
        self.on_submit: Callable[[OrderRequest], Awaitable[None]] | None = None
        self.blocked = False
        self.closes: dict[dt.date, float] = {}  # equity at the close of a session
        self._steps: dict[str, deque[tuple[int, float]]] = {}
        self._ids = itertools.count(1)

    def seed(self, request: OrderRequest) -> BrokerOrder:
        """An order that already exists at the broker (sent by an earlier process)."""
        return self._create(request)

    def _create(self, request: OrderRequest) -> BrokerOrder:
        plan = self.plans.get(request.symbol)
        if plan is None:
            order = BrokerOrder(
                request.client_order_id,
                f"b-{next(self._ids)}",
                request.symbol,
                request.side,
                request.qty,
                request.qty,
                self.price,
                BrokerOrderStatus.FILLED,
            )
        else:
            self._steps[request.client_order_id] = deque(plan)
            order = BrokerOrder(
                request.client_order_id,
                f"b-{next(self._ids)}",
                request.symbol,
                request.side,
                request.qty,
                0,
                None,
                BrokerOrderStatus.ACCEPTED,
            )
        self.orders[request.client_order_id] = order
        return order

    def _advance(self, cid: str) -> None:
        order = self.orders[cid]
        steps = self._steps.get(cid)
        if steps:
            cum, price = steps.popleft()
            new = cum - order.filled_qty
            avg = price
            if order.filled_qty and order.filled_avg_price is not None:
                avg = (order.filled_qty * order.filled_avg_price + new * price) / cum
            status = (
                BrokerOrderStatus.FILLED
                if cum >= order.qty
                else BrokerOrderStatus.PARTIALLY_FILLED
                if cum
                else BrokerOrderStatus.ACCEPTED
            )
            self.orders[cid] = _replace(order, filled_qty=cum, filled_avg_price=avg, status=status)
        elif (
            steps is not None
            and order.symbol in self.cancel_after_plan
            and not order.status.terminal
        ):
            self.orders[cid] = _replace(order, status=BrokerOrderStatus.CANCELED)

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        self.submits.append(request)
        if self.on_submit is not None:
            await self.on_submit(request)
        if request.client_order_id in self.orders:
            raise DuplicateClientOrderId("client_order_id must be unique")
        fault = self.faults.popleft() if self.faults else None
        if fault == "refuse":
            raise OrderRejected("insufficient buying power")
        if fault == "unavailable":
            raise BrokerUnavailable("HTTP 503")
        if fault == "blocked":
            raise AccountBlocked("trading_blocked")
        if fault == "unknown_created":
            self._create(request)
            raise SubmissionOutcomeUnknown("read timeout")
        if fault == "unknown_lost":
            raise SubmissionOutcomeUnknown("connection reset")
        if fault == "crash_before":
            raise RuntimeError("the process died before the request left")
        if fault == "crash_after":
            self._create(request)
            raise RuntimeError("the process died after the order was placed")
        return self._create(request)

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        self.lookups.append(client_order_id)
        if self.lookup_faults:
            self.lookup_faults.popleft()
            raise BrokerUnavailable("HTTP 504")
        if client_order_id not in self.orders:
            return None
        self._advance(client_order_id)
        return self.orders[client_order_id]

    async def account(self) -> BrokerAccount:
        return BrokerAccount(100_000.0, 100_000.0, 100_000.0, 100_000.0, self.blocked)

    async def positions(self) -> list[BrokerPosition]:
        held: dict[str, int] = {}
        for o in self.orders.values():
            sign = 1 if o.side is OrderSide.BUY else -1
            held[o.symbol] = held.get(o.symbol, 0) + sign * o.filled_qty
        return [BrokerPosition(s, q, self.price) for s, q in held.items() if q]

    async def cancel(self, client_order_id: str) -> None:
        order = self.orders[client_order_id]
        self.orders[client_order_id] = _replace(order, status=BrokerOrderStatus.CANCELED)

    async def clock(self) -> MarketClock:
        return MarketClock(NOW, True, NOW, NOW)

    async def closing_equity(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        return {s: self.closes[s] for s in sessions if s in self.closes}

    async def close(self) -> None:
        return None

    def submitted_ids(self) -> list[str]:
        return [r.client_order_id for r in self.submits]


def _replace(order: BrokerOrder, **changes: Any) -> BrokerOrder:
    return dataclasses.replace(order, **changes)


def spec(
    symbol: str = "AAPL",
    qty: int = 10,
    side: str = "buy",
    strategy: str = "momentum",
    atr: float = 2.0,
) -> OrderIntentSpec:
    kind = IntentKind.ENTRY if side == "buy" else IntentKind.EXIT
    return OrderIntentSpec(strategy, symbol, side, qty, kind, 100.0, atr=atr, reason="test")


def place(*specs: OrderIntentSpec, run_id: str = "run-1") -> PlaceOrders:
    return PlaceOrders(run_id, ASOF, tuple(specs))


def iid(symbol: str = "AAPL", side: str = "buy", strategy: str = "momentum") -> str:
    return intent_id(ASOF, strategy, symbol, side)


@pytest.fixture
def broker() -> ScriptedBroker:
    return ScriptedBroker()


@asynccontextmanager
async def running(store: Store, broker: Broker) -> AsyncIterator[tuple[ActorRef, Supervisor]]:
    """An OrderManager under a supervisor; yields once its on_start has run."""
    clock = SimClock(NOW)
    sup = Supervisor(OneForOne(backoff_s=0.0, backoff_max_s=0.0), clock=clock)
    ref = sup.add(
        "order_manager",
        lambda: OrderManager(store=store, broker=broker, clock=clock, terms=ReferenceFillTerms()),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        try:
            yield ref, sup
        finally:
            await sup.stop()


async def ask_place(ref: ActorRef, msg: PlaceOrders) -> list[OrderResult]:
    answer = await ref.ask(msg)
    assert isinstance(answer, OrderResults)
    return list(answer.results)


async def ask_settle(ref: ActorRef) -> list[OrderResult]:
    answer = await ref.ask(SettleOrders("settle-1"))
    assert isinstance(answer, OrderResults)
    return list(answer.results)


async def test_fake_is_a_broker(broker: ScriptedBroker) -> None:
    """The scripted fake satisfies the Broker protocol."""
    assert isinstance(broker, Broker)


async def test_intent_is_written_before_submission(store: Store, broker: ScriptedBroker) -> None:
    """When broker.submit runs, the intent row already exists, marked SUBMITTED."""
    seen: list[IntentStatus | None] = []

    async def check(request: OrderRequest) -> None:
        row = await OrderStore(store).get(request.client_order_id)
        seen.append(row.status if row is not None else None)

    broker.on_submit = check
    async with running(store, broker) as (ref, _):
        [result] = await ask_place(ref, place(spec()))
    assert seen == [S.SUBMITTED]
    assert result.status is S.FILLED
    assert broker.submits[0].client_order_id == "20261123-mom-AAPL-buy"


async def test_fill_is_booked_with_costs_and_position(store: Store, broker: ScriptedBroker) -> None:
    """10 shares at 100.075: commission 0.05, slippage 7.5 bps; stop = avg − 3 × ATR."""
    async with running(store, broker) as (ref, _):
        [result] = await ask_place(ref, place(spec(atr=2.0)))
    assert (result.status, result.filled_qty, result.avg_price) == (S.FILLED, 10, 100.075)
    orders = OrderStore(store)
    [trade] = await orders.trades_for("run-1")
    assert trade["commission_cost"] == pytest.approx(0.05)
    assert trade["slippage_cost"] == pytest.approx(1000.75 * 7.5 / 10_000)
    assert trade["requested_price"] == 100.0
    [pos] = await orders.positions()
    assert (pos["shares"], pos["avg_price"], pos["entry_date"]) == (10, 100.075, "2026-11-23")
    assert pos["atr_at_entry"] == 2.0
    assert pos["stop_price"] == pytest.approx(100.075 - 6.0)


async def test_rerun_of_the_day_does_not_submit_again(store: Store, broker: ScriptedBroker) -> None:
    """The same PlaceOrders again (a new run id) polls the intent and reports existing=True."""
    async with running(store, broker) as (ref, _):
        await ask_place(ref, place(spec(), run_id="run-1"))
        [again] = await ask_place(ref, place(spec(), run_id="run-2"))
    assert broker.submitted_ids() == [iid()]
    assert again.existing
    assert (again.status, again.filled_qty) == (S.FILLED, 10)
    assert len(await OrderStore(store).trades_for("run-1")) == 1


async def test_duplicate_client_id_is_adopted(store: Store, broker: ScriptedBroker) -> None:
    """An order the broker already has (state restored from an old backup) is adopted."""
    broker.seed(OrderRequest(iid(), "AAPL", OrderSide.BUY, 10))
    async with running(store, broker) as (ref, _):
        [result] = await ask_place(ref, place(spec()))
    assert len(broker.orders) == 1
    assert (result.status, result.filled_qty) == (S.FILLED, 10)
    assert len(await OrderStore(store).trades_for("run-1")) == 1


async def test_unknown_outcome_with_order_is_adopted_at_once(
    store: Store, broker: ScriptedBroker
) -> None:
    """A timed-out submission whose order exists is found by the immediate lookup."""
    broker.faults.append("unknown_created")
    async with running(store, broker) as (ref, _):
        [result] = await ask_place(ref, place(spec()))
    assert broker.lookups == [iid()]
    assert len(broker.submits) == 1
    assert (result.status, result.filled_qty) == (S.FILLED, 10)


async def test_unknown_outcome_without_order_is_resubmitted_once_by_settle(
    store: Store, broker: ScriptedBroker
) -> None:
    """A lost submission stays UNKNOWN; SettleOrders submits it exactly once more."""
    broker.faults.append("unknown_lost")
    async with running(store, broker) as (ref, _):
        [result] = await ask_place(ref, place(spec()))
        assert result.status is S.UNKNOWN
        assert broker.orders == {}
        [settled] = await ask_settle(ref)
        assert (settled.status, settled.filled_qty) == (S.FILLED, 10)
        assert await ask_settle(ref) == []
    assert broker.submitted_ids() == [iid(), iid()]
    assert len(broker.orders) == 1


async def test_unknown_outcome_lookup_failing_stays_unknown(
    store: Store, broker: ScriptedBroker
) -> None:
    """If the immediate lookup fails too, the intent stays UNKNOWN and is not resubmitted."""
    broker.faults.append("unknown_created")
    broker.lookup_faults.append("unavailable")
    async with running(store, broker) as (ref, _):
        [result] = await ask_place(ref, place(spec()))
        assert result.status is S.UNKNOWN
        [settled] = await ask_settle(ref)
    assert settled.status is S.FILLED
    assert len(broker.submits) == 1


async def test_partial_fills_book_exactly_the_deltas(store: Store, broker: ScriptedBroker) -> None:
    """Fills over successive polls are booked as deltas: trades sum to the filled quantity."""
    broker.plans["AAPL"] = [(4, 100.0), (4, 100.0), (7, 101.0), (10, 102.0)]
    async with running(store, broker) as (ref, _):
        [placed] = await ask_place(ref, place(spec(atr=1.0)))
        assert placed.status is S.ACCEPTED
        seen = []
        for _ in range(5):
            seen.append([(r.status, r.filled_qty) for r in await ask_settle(ref)])
    assert seen == [
        [(S.PARTIALLY_FILLED, 4)],
        [],
        [(S.PARTIALLY_FILLED, 7)],
        [(S.FILLED, 10)],
        [],
    ]
    orders = OrderStore(store)
    trades = await orders.trades_for("run-1")
    assert [t["shares"] for t in trades] == [4, 3, 3]
    assert [t["exec_price"] for t in trades] == pytest.approx([100.0, 101.0, 102.0])
    expected_avg = (4 * 100.0 + 3 * 101.0 + 3 * 102.0) / 10
    row = await orders.get(iid())
    assert row is not None
    assert row.avg_fill_price == pytest.approx(expected_avg)
    [pos] = await orders.positions()
    assert pos["shares"] == 10
    assert pos["avg_price"] == pytest.approx(expected_avg)


async def test_cancel_after_partial_fill_keeps_the_partial(
    store: Store, broker: ScriptedBroker
) -> None:
    """A partial fill then a broker cancel ends CANCELED with the partial shares booked."""
    broker.plans["AAPL"] = [(4, 100.0)]
    broker.cancel_after_plan.add("AAPL")
    async with running(store, broker) as (ref, _):
        await ask_place(ref, place(spec()))
        await ask_settle(ref)
        [last] = await ask_settle(ref)
    assert (last.status, last.filled_qty) == (S.CANCELED, 4)
    orders = OrderStore(store)
    assert await orders.held(await orders.strategy_id("momentum"), "AAPL") == 4


async def test_rejection_is_final(store: Store, broker: ScriptedBroker) -> None:
    """A refused order is REJECTED with the reason; nothing is booked or resubmitted."""
    broker.faults.append("refuse")
    async with running(store, broker) as (ref, _):
        [result] = await ask_place(ref, place(spec()))
        await ask_settle(ref)
        [again] = await ask_place(ref, place(spec(), run_id="run-2"))
    assert (result.status, result.error) == (S.REJECTED, "insufficient buying power")
    assert again.existing
    assert again.status is S.REJECTED
    assert len(broker.submits) == 1
    assert await OrderStore(store).positions() == []


async def test_unavailable_leaves_new_and_a_rerun_submits(
    store: Store, broker: ScriptedBroker
) -> None:
    """Broker unavailable: NEW with the error; a re-run submits it once, later runs not."""
    broker.faults.append("unavailable")
    async with running(store, broker) as (ref, _):
        [first] = await ask_place(ref, place(spec()))
        assert (first.status, first.error) == (S.NEW, "HTTP 503")
        assert broker.orders == {}
        [second] = await ask_place(ref, place(spec(), run_id="run-2"))
        [third] = await ask_place(ref, place(spec(), run_id="run-3"))
    assert (second.status, second.existing) == (S.FILLED, False)
    assert (third.status, third.existing) == (S.FILLED, True)
    assert broker.submitted_ids() == [iid(), iid()]
    assert len(broker.orders) == 1


async def test_account_blocked_stops_the_rest(store: Store, broker: ScriptedBroker) -> None:
    """AccountBlocked rejects that order and sends none of the rest (closed, never sent later)."""
    broker.faults.append("blocked")
    async with running(store, broker) as (ref, _):
        results = await ask_place(ref, place(spec("AAPL"), spec("MSFT"), spec("XOM")))
        await ask_settle(ref)
    assert [(r.symbol, r.status) for r in results] == [
        ("AAPL", S.REJECTED),
        ("MSFT", S.EXPIRED),
        ("XOM", S.EXPIRED),
    ]
    assert all(r.error and "account blocked" in r.error for r in results)
    assert broker.submitted_ids() == [iid("AAPL")]
    rows = await OrderStore(store).intents_for(asof=ASOF)
    assert [(r.symbol, r.status) for r in rows] == [
        ("AAPL", S.REJECTED),
        ("MSFT", S.EXPIRED),
        ("XOM", S.EXPIRED),
    ]


async def test_a_batch_is_written_before_its_first_order_is_sent(
    store: Store, broker: ScriptedBroker
) -> None:
    """Every intent of a batch is in the store before the broker hears of the first one."""
    seen: list[list[str]] = []
    original = broker.submit

    async def spy(request: OrderRequest) -> BrokerOrder:
        seen.append([r.symbol for r in await OrderStore(store).intents_for(asof=ASOF)])
        return await original(request)

    broker.submit = spy  # type: ignore[method-assign]
    async with running(store, broker) as (ref, _):
        await ask_place(ref, place(spec("AAPL"), spec("MSFT"), spec("XOM")))
    assert seen[0] == ["AAPL", "MSFT", "XOM"]


async def test_sells_are_clamped_to_held_shares(store: Store, broker: ScriptedBroker) -> None:
    """A sell is cut to what the strategy holds; nothing held means no order at all."""
    async with running(store, broker) as (ref, _):
        await ask_place(ref, place(spec("AAPL", 5)))
        results = await ask_place(
            ref,
            place(
                spec("AAPL", 10, "sell"),
                spec("AAPL", 10, "sell", strategy="ma_crossover"),
                spec("MSFT", 3, "sell"),
            ),
        )
    assert [(r.qty, r.status, r.error) for r in results] == [
        (5, S.FILLED, None),
        (0, S.REJECTED, "nothing held"),
        (0, S.REJECTED, "nothing held"),
    ]
    assert [(r.symbol, r.side, r.qty) for r in broker.submits] == [
        ("AAPL", OrderSide.BUY, 5),
        ("AAPL", OrderSide.SELL, 5),
    ]
    assert await OrderStore(store).positions() == []


async def test_restart_resolves_every_open_intent(store: Store, broker: ScriptedBroker) -> None:
    """A new manager on the same store resolves NEW/SUBMITTED/UNKNOWN/ACCEPTED intents.

    The broker ends with exactly one order per intent; a stale NEW expires unsent.
    """
    orders = OrderStore(store)
    sid = await orders.strategy_id("momentum")
    cases = {
        "A": (S.NEW, False),  # crashed after the write, before submitting
        "B": (S.SUBMITTED, True),  # crashed after the broker took it
        "C": (S.SUBMITTED, False),  # crashed before the request left
        "D": (S.UNKNOWN, True),
        "E": (S.UNKNOWN, False),
        "F": (S.ACCEPTED, True),
    }
    broker.plans["F"] = [(6, 99.0)]
    for symbol, (status, at_broker) in cases.items():
        await orders.create_intent(
            intent_id=iid(symbol),
            run_id="run-0",
            asof=ASOF,
            strategy_id=sid,
            strategy="momentum",
            symbol=symbol,
            side="buy",
            qty=10,
            kind=IntentKind.ENTRY,
            reference_price=100.0,
            at=NOW,
        )
        if status is not S.NEW:
            await orders.update_status(iid(symbol), status, at=NOW)
        if at_broker:
            broker.seed(OrderRequest(iid(symbol), symbol, OrderSide.BUY, 10))
    stale = intent_id(ASOF - dt.timedelta(days=3), "momentum", "OLD", "buy")
    await orders.create_intent(
        intent_id=stale,
        run_id="run-old",
        asof=ASOF - dt.timedelta(days=3),
        strategy_id=sid,
        strategy="momentum",
        symbol="OLD",
        side="buy",
        qty=10,
        kind=IntentKind.ENTRY,
        reference_price=100.0,
        at=NOW,
    )
    async with running(store, broker) as (ref, _):
        status = await ref.ask(GetStatus())
    got = {r.symbol: (r.status, r.filled_qty) for r in await orders.intents_for()}
    assert got == {
        "A": (S.FILLED, 10),
        "B": (S.FILLED, 10),
        "C": (S.FILLED, 10),
        "D": (S.FILLED, 10),
        "E": (S.FILLED, 10),
        "F": (S.PARTIALLY_FILLED, 6),
        "OLD": (S.EXPIRED, 0),
    }
    assert sorted(broker.submitted_ids()) == sorted(iid(s) for s in "ACE")
    assert sorted(broker.orders) == sorted(iid(s) for s in "ABCDEF")
    assert [o["symbol"] for o in status["open"]] == ["F"]


async def test_lookup_failure_on_start_leaves_intent_for_settle(
    store: Store, broker: ScriptedBroker
) -> None:
    """A broker that cannot answer at start leaves the intent as it was; settle resolves it."""
    broker.faults.append("unknown_created")
    broker.lookup_faults.append("unavailable")
    async with running(store, broker) as (ref, _):
        await ask_place(ref, place(spec()))
    broker.lookup_faults.append("unavailable")
    async with running(store, broker) as (ref, _):
        status = await ref.ask(GetStatus())
        assert [o["status"] for o in status["open"]] == ["UNKNOWN"]
        [settled] = await ask_settle(ref)
    assert settled.status is S.FILLED
    assert len(broker.submits) == 1


@pytest.mark.parametrize("fault", ["crash_before", "crash_after"])
async def test_crash_mid_submission_never_places_twice(
    store: Store, broker: ScriptedBroker, fault: str
) -> None:
    """A crash around submission, the restart and a re-run leave exactly one order."""
    broker.faults.append(fault)
    async with running(store, broker) as (ref, sup):
        with pytest.raises(RuntimeError, match="process died"):
            await ask_place(ref, place(spec()))
        await ref.ask(GetStatus())  # answered by the restarted instance, after its on_start
        assert sup.cell("order_manager").restarts == 1
        [again] = await ask_place(ref, place(spec(), run_id="run-2"))
    assert again.existing
    assert (again.status, again.filled_qty) == (S.FILLED, 10)
    assert list(broker.orders) == [iid()]
    assert len(await OrderStore(store).trades_for("run-1")) == 1


async def test_status_counts_and_open_intents(store: Store, broker: ScriptedBroker) -> None:
    """GetStatus reports counts by status and the open intents."""
    broker.plans["MSFT"] = [(0, 0.0)]
    async with running(store, broker) as (ref, _):
        await ask_place(ref, place(spec("AAPL"), spec("MSFT")))
        status = await ref.ask(GetStatus())
    assert status["counts"] == {"ACCEPTED": 1, "FILLED": 1}
    assert [o["intent_id"] for o in status["open"]] == [iid("MSFT")]


def _orders_total(metrics: Metrics) -> dict[str, float]:
    """``tradingd_orders_total`` by status, read from the real registry."""
    return {
        sample.labels["status"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "tradingd_orders"
        for sample in family.samples
        if sample.name == "tradingd_orders_total"
    }


async def test_placed_orders_are_counted_once_in_tradingd_orders_total(
    store: Store, broker: ScriptedBroker
) -> None:
    """Each placed intent once, by status; a re-run's existing intents and a settle: not."""
    metrics = Metrics(CollectorRegistry())
    broker.faults.extend(["", "refuse"])
    clock = SimClock(NOW)
    sup = Supervisor(OneForOne(backoff_s=0.0, backoff_max_s=0.0), clock=clock)
    ref = sup.add(
        "order_manager",
        lambda: OrderManager(
            store=store, broker=broker, clock=clock, terms=ReferenceFillTerms(), metrics=metrics
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await ask_place(ref, place(spec("AAPL"), spec("MSFT")))
        again = await ask_place(ref, place(spec("AAPL"), spec("MSFT")))
        await ref.ask(SettleOrders())
        await sup.stop()
    assert all(r.existing for r in again)
    assert _orders_total(metrics) == {"FILLED": 1.0, "REJECTED": 1.0}
