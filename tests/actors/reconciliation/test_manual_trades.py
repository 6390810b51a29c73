"""A trade the account owner placed by hand at Alpaca: the gate stays closed, and the
operator is shown the trade and the exact ``tradectl adopt`` that takes it.

The real AlpacaBroker (alpaca-py) against the fake Alpaca server on 127.0.0.1, the
Reconciler under a Supervisor, a real SQLite store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import anyio
import pytest

from actors.brokers.alpaca import AlpacaBroker
from actors.brokers.base import OrderRequest, OrderSide
from actors.messages import AdoptBrokerState, Reconcile, ReconciliationReport
from actors.reconciliation.reconciler import Reconciler
from actors.store.signals import SignalStore
from daemon.clock import SimClock
from daemon.store import Store
from daemon.supervisor import OneForOne, Supervisor
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer

PRICES = {"AAPL": 190.0, "MSFT": 370.0}


@pytest.fixture
def server() -> Iterator[FakeAlpacaTradingServer]:
    with FakeAlpacaTradingServer(prices=PRICES, rate_limit=10_000) as fake:
        yield fake


async def _reconcile_twice(
    store: Store, server: FakeAlpacaTradingServer
) -> tuple[ReconciliationReport, ReconciliationReport, ReconciliationReport]:
    """Ours: 10 AAPL bought and booked; then 3 MSFT and 5 AAPL bought by hand."""
    signals = SignalStore(store)
    momentum = await signals.ensure_strategy("momentum", "momentum", 50_000.0)
    manual = await signals.ensure_strategy("manual", "manual", 0.0)
    # The fake stamps its fills in real time; the reconciler looks back from its clock.
    clock = SimClock(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    broker = AlpacaBroker(server.api_key, server.secret_key, base_url=server.url)
    sup = Supervisor(OneForOne(backoff_s=0.0, backoff_max_s=0.0), clock=clock)
    ref = sup.add(
        "reconciler",
        lambda: Reconciler(
            store=store, broker=broker, clock=clock, tolerance=0.01, manual_strategy_id=manual
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        try:
            order = await broker.submit(
                OrderRequest("20261124-mom-AAPL-buy", "AAPL", OrderSide.BUY, 10)
            )
            await _book_ours(store, momentum, order.broker_order_id, order.filled_avg_price)
            agreed = await ref.ask(Reconcile("run-1", "RECONCILIATION"))
            server.add_manual_fill("MSFT", "buy", 3, 365.5)
            server.add_manual_fill("AAPL", "buy", 5, 191.0)
            failed = await ref.ask(Reconcile("run-2", "RECONCILIATION"))
            adopted = await ref.ask(AdoptBrokerState("manual trade: MSFT and AAPL"))
        finally:
            await sup.stop()
            await broker.close()
    return agreed, failed, adopted


async def _book_ours(
    store: Store, strategy_id: int, broker_id: str | None, price: float | None
) -> None:
    """What the order manager books for our fill: the intent, its trade and the position."""
    assert broker_id is not None
    assert price is not None
    await store.execute(
        "INSERT INTO order_intents (intent_id, run_id, asof_date, strategy_id, symbol, side,"
        " target_qty, filled_qty, status, created_at, broker_order_id)"
        " VALUES ('20261124-mom-AAPL-buy', 'run-0', '2026-11-24', ?, 'AAPL', 'buy', 10, 10,"
        " 'FILLED', '2026-11-24T15:00:00+00:00', ?)",
        (strategy_id, broker_id),
    )
    await store.execute(
        "INSERT INTO trades (run_id, strategy_id, intent_id, symbol, action, shares, exec_price,"
        " notional, commission_cost) VALUES ('run-0', ?, '20261124-mom-AAPL-buy', 'AAPL', 'BUY',"
        " 10, ?, ?, 0)",
        (strategy_id, price, 10 * price),
    )
    await store.execute(
        "INSERT INTO positions (strategy_id, symbol, shares, avg_price, entry_date, stop_price)"
        " VALUES (?, 'AAPL', 10, ?, '2026-11-24', ?)",
        (strategy_id, price, price * 0.9),
    )


async def test_a_manual_trade_is_shown_with_the_command_that_adopts_it(
    store: Store, server: FakeAlpacaTradingServer
) -> None:
    agreed, failed, adopted = await _reconcile_twice(store, server)
    assert agreed.passed
    assert agreed.manual_trades == ()
    assert not failed.passed
    assert {d.symbol for d in failed.discrepancies if d.kind == "position"} == {"AAPL", "MSFT"}
    shown = failed.manual_trades
    assert len(shown) == 2  # the two trades by hand; our own AAPL fill is not one
    msft = next(t for t in shown if "MSFT" in t)
    assert msft.startswith("buy 3 MSFT at 365.50 on ")
    assert 'tradectl adopt "manual trade: buy 3 MSFT at 365.50 on ' in msft
    assert any(t.startswith("buy 5 AAPL at 191.00") for t in shown)
    assert adopted.passed
