"""The daemon's book under corporate actions: recorded once, applied once, cash credited once."""

from __future__ import annotations

import datetime as dt

import pytest

from actors.market.corporate_actions import ActionKind, CorporateAction
from actors.messages import IntentKind, IntentStatus
from actors.risk.fill_terms import ReferenceFillTerms
from actors.store.broker_state import BrokerStateStore
from actors.store.corporate_actions import CorporateActionStore
from actors.store.orders import OrderStore
from daemon.store import Store

BOUGHT = dt.date(2026, 6, 1)
EX = dt.date(2026, 6, 15)
PAY = dt.date(2026, 6, 30)
AT = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)


async def _buy(store: Store, strategy: str, symbol: str, qty: int, price: float) -> None:
    orders = OrderStore(store, ReferenceFillTerms(stop_atr_multiple=2.0))
    sid = await orders.strategy_id(strategy)
    at = dt.datetime.combine(BOUGHT, dt.time(15), tzinfo=dt.UTC)
    iid = f"{strategy}-{symbol}-buy"
    await orders.create_intent(
        intent_id=iid,
        run_id="run",
        asof=BOUGHT,
        strategy_id=sid,
        strategy=strategy,
        symbol=symbol,
        side="buy",
        qty=qty,
        kind=IntentKind.ENTRY,
        reference_price=price,
        atr=5.0,
        at=at,
    )
    await orders.book_fill(iid, qty, price, status=IntentStatus.FILLED, at=at)


async def _rows(store: Store) -> dict[tuple[str, str], tuple[int, float, float, float]]:
    rows = await OrderStore(store).positions()
    return {
        (r["strategy"], r["symbol"]): (
            int(r["shares"]),
            float(r["avg_price"]),
            float(r["stop_price"]),
            float(r["atr_at_entry"]),
        )
        for r in rows
    }


async def test_a_split_rescales_every_holder_once(store: Store) -> None:
    """3:2 on two strategies' lots: shares x 1.5 (fraction in cash), prices / 1.5."""
    await _buy(store, "momentum", "AAPL", 101, 150.0)
    await _buy(store, "ma_crossover", "AAPL", 40, 150.0)
    await store.execute("INSERT INTO bars VALUES ('alpaca', 'AAPL', '2026-06-12', 1, 1, 1, 1, 1)")
    actions = CorporateActionStore(store)
    split = CorporateAction(ActionKind.FORWARD_SPLIT, "AAPL", EX, "test", ratio=1.5)
    cash_before = await BrokerStateStore(store).local_cash()

    assert await actions.record([split, split], AT) == [split.action_id]
    assert await actions.unapplied(EX - dt.timedelta(days=1)) == []
    assert await actions.unapplied(EX) == [split]
    effects = await actions.apply(split, AT, last_close=153.0)
    again = await actions.apply(split, AT)

    assert again == []
    assert await actions.unapplied(EX) == []
    assert {(e.strategy, e.shares_before, e.shares_after) for e in effects} == {
        ("momentum", 101, 151),
        ("ma_crossover", 40, 60),
    }
    rows = await _rows(store)
    assert list(rows[("momentum", "AAPL")]) == pytest.approx([151, 100.0, 140 / 1.5, 5 / 1.5])
    assert rows[("ma_crossover", "AAPL")][0] == 60
    # the cached history is forgotten once the ex-date bar is in the window, and only once
    assert await actions.refresh_bars(EX - dt.timedelta(days=1), AT) == []
    assert await store.fetchall("SELECT * FROM bars WHERE symbol = 'AAPL'") != []
    assert await actions.refresh_bars(EX, AT) == ["AAPL"]
    assert await store.fetchall("SELECT * FROM bars WHERE symbol = 'AAPL'") == []
    assert await actions.refresh_bars(EX, AT) == []
    # half a share of momentum's lot, paid at 153 / 1.5
    assert await BrokerStateStore(store).local_cash() == pytest.approx(cash_before + 51.0)
    flows = await OrderStore(store).cash_flows_by_strategy()
    assert flows["momentum"] == pytest.approx(-101 * 150.0 - 101 * 0.005 + 51.0)


async def test_a_reverse_split_can_leave_only_cash(store: Store) -> None:
    """1:10 on 5 shares: no whole share left, the row goes, half a share in cash."""
    await _buy(store, "momentum", "PENY", 5, 2.0)
    actions = CorporateActionStore(store)
    reverse = CorporateAction(ActionKind.REVERSE_SPLIT, "PENY", EX, "test", ratio=0.1)
    await actions.record([reverse], AT)
    (effect,) = await actions.apply(reverse, AT, last_close=2.0)
    assert (effect.shares_before, effect.shares_after, effect.cash) == (5, 0, 10.0)
    assert await _rows(store) == {}


async def test_a_dividend_is_owed_at_the_ex_date_and_paid_at_the_pay_date(store: Store) -> None:
    await _buy(store, "momentum", "MSFT", 100, 400.0)
    book = BrokerStateStore(store)
    before = await book.local_cash()
    actions = CorporateActionStore(store)
    div = CorporateAction(
        ActionKind.CASH_DIVIDEND, "MSFT", EX, "test", cash_per_share=5.0, pay_date=PAY
    )
    await actions.record([div], AT)
    (owed,) = await actions.apply(div, AT)
    assert (owed.cash, owed.credited) == (500.0, False)
    assert await book.local_cash() == before
    assert await actions.credit_due(PAY - dt.timedelta(days=1), AT) == []
    assert await actions.credit_due(PAY, AT) == [div]
    assert await actions.credit_due(PAY, AT) == []
    assert await book.local_cash() == pytest.approx(before + 500.0)
    rows = await _rows(store)
    assert list(rows) == [("momentum", "MSFT")]
    assert list(rows[("momentum", "MSFT")]) == pytest.approx([100, 400.0, 390.0, 5.0])


async def test_a_rename_carries_the_position_and_its_stop(store: Store) -> None:
    await _buy(store, "momentum", "FB", 10, 300.0)
    actions = CorporateActionStore(store)
    rename = CorporateAction(ActionKind.RENAME, "FB", EX, "test", new_symbol="META")
    await actions.record([rename], AT)
    await actions.apply(rename, AT)
    rows = await _rows(store)
    assert list(rows) == [("momentum", "META")]
    assert list(rows[("momentum", "META")]) == pytest.approx([10, 300.0, 290.0, 5.0])
    assert await BrokerStateStore(store).local_positions() == {"META": 10}


async def test_splits_applied_here_are_known_to_the_reconciliation(store: Store) -> None:
    await _buy(store, "momentum", "AAPL", 100, 150.0)
    actions = CorporateActionStore(store)
    split = CorporateAction(ActionKind.FORWARD_SPLIT, "AAPL", EX, "test", ratio=2.0)
    await actions.record([split], AT)
    await actions.apply(split, AT)
    assert await actions.pending_at_broker(EX) == {"AAPL": (100, 200)}
    assert await actions.pending_at_broker(EX + dt.timedelta(days=1)) == {}


async def test_a_re_read_records_only_the_actions_not_seen_before(store: Store) -> None:
    """Over a thousand known actions read again with one new one: only the new one is kept."""
    actions = CorporateActionStore(store)
    known = [
        CorporateAction(
            ActionKind.CASH_DIVIDEND, f"S{i:04d}", EX, "test", cash_per_share=1.0, pay_date=PAY
        )
        for i in range(1200)
    ]
    assert len(await actions.record(known, AT)) == 1200
    new = CorporateAction(ActionKind.FORWARD_SPLIT, "S0000", EX, "test", ratio=2.0)
    again = CorporateAction(ActionKind.FORWARD_SPLIT, "S0000", EX, "other", ratio=2.0)

    assert await actions.record([*known, new, again], AT) == [new.action_id]
    assert await actions.record(known, AT) == []
    assert [r.action.source for r in await actions.recorded(["S0000"])] == ["test", "test"]


async def test_only_the_dividends_due_and_not_credited_are_credited(store: Store) -> None:
    """Splits, unapplied, credited and later dividends are left alone, by ex date."""
    actions = CorporateActionStore(store)

    def dividend(symbol: str, ex: dt.date, pay: dt.date | None) -> CorporateAction:
        return CorporateAction(
            ActionKind.CASH_DIVIDEND, symbol, ex, "test", cash_per_share=1.0, pay_date=pay
        )

    paid = dividend("PAID", EX - dt.timedelta(days=20), EX - dt.timedelta(days=10))
    later = dividend("LATER", EX, PAY)
    due = [dividend("NOPAY", EX, None), dividend("EARLY", EX - dt.timedelta(days=5), EX)]
    unapplied = dividend("NEW", EX - dt.timedelta(days=1), EX)
    split = CorporateAction(ActionKind.FORWARD_SPLIT, "AAPL", EX, "test", ratio=2.0)
    await actions.record([paid, later, *due, unapplied, split], AT)
    for a in (paid, later, *due, split):
        await actions.apply(a, AT)
    assert await actions.credit_due(EX - dt.timedelta(days=10), AT) == [paid]

    assert await actions.credit_due(EX, AT) == [due[1], due[0]]
    assert await actions.credit_due(EX, AT) == []
    assert await actions.credit_due(PAY, AT) == [later]
