"""SimBrokerStore: the simulated broker's book; reads kept from one write to the next,
and its corporate-action reads find the rows still to matter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from actors.store.sim_broker import (
    SimActionRow,
    SimBrokerStore,
    SimBrokerWriter,
    SimOrderRow,
    SimPositionRow,
    forget_cached_book,
)
from daemon.store import Store

AT = dt.datetime(2024, 1, 8, 15, tzinfo=dt.UTC)


def _order(coid: str, status: str = "accepted") -> SimOrderRow:
    return SimOrderRow(coid, f"sim-{coid}", "AAA", "buy", 1, 0, None, status, AT.date(), AT)


async def test_reads_see_each_write_through_any_book_of_the_store(store: Store) -> None:
    """A book's cached reads do not outlive a write through another book on the store."""
    first, second = SimBrokerStore(store), SimBrokerStore(store)
    async with first.write(AT) as w:
        await w.create_account(100.0)
    assert await first.positions() == []
    assert await first.orders(status="accepted") == []
    assert await first.order("b1") is None
    async with second.write(AT) as w:
        await w.upsert_position(SimPositionRow("AAA", 5, 10.0))
        await w.insert_order(_order("b1"))
        await w.add_cash(-50.0)
    assert await first.positions() == [SimPositionRow("AAA", 5, 10.0)]
    assert await first.position("AAA") == SimPositionRow("AAA", 5, 10.0)
    assert [o.client_order_id for o in await first.orders(status="accepted")] == ["b1"]
    assert await first.order("b1") == _order("b1")
    account = await first.account()
    assert account is not None
    assert account.cash == 50.0


async def test_a_rolled_back_write_leaves_the_reads_as_the_tables_are(store: Store) -> None:
    """A write that fails part way commits nothing, and nothing it wrote is read back."""
    book = SimBrokerStore(store)
    async with book.write(AT) as w:
        await w.upsert_position(SimPositionRow("AAA", 5, 10.0))
    held = await book.positions()

    class Boom(Exception):
        pass

    async def failing() -> None:
        async with book.write(AT) as w:
            await w.delete_position("AAA")
            await w.insert_order(_order("b1"))
            raise Boom

    with pytest.raises(Boom):
        await failing()
    assert await book.positions() == held
    assert await book.order("b1") is None
    assert await book.orders(status="accepted") == []


async def test_forget_cached_book_drops_reads_after_a_write_around_the_book(store: Store) -> None:
    """A write to the ``sim_*`` tables not through the book is read once it is forgotten."""
    book = SimBrokerStore(store)
    assert await book.positions() == []
    await store.execute(
        "INSERT INTO sim_positions (symbol, qty, avg_entry_price) VALUES ('AAA', 3, 1.0)"
    )
    forget_cached_book(store)
    assert await book.positions() == [SimPositionRow("AAA", 3, 1.0)]


async def _reads(book: SimBrokerStore) -> tuple[object, ...]:
    return (
        await book.account(),
        await book.last_equity_session(),
        await book.orders(status="accepted"),
        await book.order("b1"),
        await book.order("s1"),
        await book.positions(),
        await book.position("AAA"),
        await book.actions(),
    )


ACTION = SimActionRow(
    "split", "forward_split", "AAA", None, AT.date(), 2.0, 5, 10, 0.0, None, credited=False
)


async def _several_orders(w: SimBrokerWriter) -> None:
    """New orders, a fill and a moved stop in one transaction (the cache is patched)."""
    await w.insert_order(_order("n1"))
    await w.update_order("b1", status="filled", filled_qty=1, filled_avg_price=10.0)
    await w.insert_order(_order("n2"))
    await w.move_stop_check("stop", dt.date(2024, 1, 9))
    await w.update_order("n1", status="canceled")


WRITES: list[tuple[str, Callable[[SimBrokerWriter], Awaitable[None]]]] = [
    ("several_orders", _several_orders),
    ("add_cash", lambda w: w.add_cash(-5.0)),
    ("set_trading_blocked", lambda w: w.set_trading_blocked(True)),
    ("set_last_equity", lambda w: w.set_last_equity(99.0, AT.date())),
    ("insert_order", lambda w: w.insert_order(_order("s1"))),
    ("update_order", lambda w: w.update_order("b1", status="canceled")),
    ("adjust_resting_stops", lambda w: w.adjust_resting_stops("AAA", 2.0)),
    ("cancel_resting_stops", lambda w: w.cancel_resting_stops("AAA")),
    ("move_stop_check", lambda w: w.move_stop_check("stop", dt.date(2024, 1, 9))),
    ("upsert_position", lambda w: w.upsert_position(SimPositionRow("AAA", 7, 3.0))),
    ("delete_position", lambda w: w.delete_position("AAA")),
    ("record_action", lambda w: w.record_action(ACTION)),
    ("credit_action", lambda w: w.credit_action("split")),
    ("reset", lambda w: w.reset(10.0)),
]


@pytest.mark.parametrize(("name", "write"), WRITES, ids=[name for name, _ in WRITES])
async def test_after_every_kind_of_write_the_reads_are_the_tables(
    store: Store, name: str, write: Callable[[SimBrokerWriter], Awaitable[None]]
) -> None:
    """Whatever a write changes, the next reads (cached or not) show the tables as they are."""
    book = SimBrokerStore(store)
    async with book.write(AT) as w:
        await w.create_account(100.0)
        await w.upsert_position(SimPositionRow("AAA", 5, 10.0))
        await w.insert_order(_order("b1"))
        await w.insert_order(replace(_order("stop"), side="sell", stop_price=9.0))
    if name == "credit_action":
        async with book.write(AT) as w:
            await w.record_action(ACTION)
    await _reads(book)
    async with book.write(AT) as w:
        await write(w)
    cached = await _reads(book)
    forget_cached_book(store)
    assert cached == await _reads(book)


AT_ACTIONS = dt.datetime(2026, 6, 15, 14, tzinfo=dt.UTC)
D = dt.date


def _row(action_id: str, kind: str, ex: dt.date, pay: dt.date | None = None) -> SimActionRow:
    dividend = kind == "cash_dividend"
    return SimActionRow(
        action_id=action_id,
        kind=kind,
        symbol="AAA",
        new_symbol=None,
        ex_date=ex,
        ratio=1.0 if dividend else 2.0,
        shares_before=10,
        shares_after=10 if dividend else 20,
        cash=5.0 if dividend else 0.0,
        pay_date=pay,
        credited=not dividend,
    )


async def _book(store: Store) -> SimBrokerStore:
    book = SimBrokerStore(store)
    async with book.write(AT_ACTIONS) as w:
        await w.create_account(1000.0)
        await w.record_action(_row("b-split", "forward_split", D(2026, 6, 10)))
        await w.record_action(_row("a-split", "forward_split", D(2026, 6, 10)))
        await w.record_action(_row("old-div", "cash_dividend", D(2026, 5, 1), D(2026, 5, 20)))
        await w.record_action(_row("div", "cash_dividend", D(2026, 6, 1), D(2026, 6, 12)))
        await w.record_action(_row("new", "forward_split", D(2026, 6, 12)))
        await w.credit_action("old-div")
    return book


async def test_the_actions_after_a_session_are_those_ex_or_paid_after_it(store: Store) -> None:
    """Ex date or pay date after the session, by ex date then action id; all without it."""
    book = await _book(store)

    assert [a.action_id for a in await book.actions(after=D(2026, 6, 9))] == [
        "div",
        "a-split",
        "b-split",
        "new",
    ]
    assert [a.action_id for a in await book.actions(after=D(2026, 6, 10))] == ["div", "new"]
    assert await book.actions(after=D(2026, 6, 12)) == []
    everything = [a.action_id for a in await book.actions()]
    assert everything == ["old-div", "div", "a-split", "b-split", "new"]


async def test_the_dividends_owed_are_those_not_credited_and_paid_by_then(store: Store) -> None:
    """A credited dividend and one paid later are not owed; splits never are."""
    book = await _book(store)

    assert await book.owed(D(2026, 6, 11)) == []
    (owed,) = await book.owed(D(2026, 6, 12))
    assert (owed.action_id, owed.cash, owed.credited) == ("div", 5.0, False)
    async with book.write(AT_ACTIONS) as w:
        await w.credit_action("div")
    assert await book.owed(D(2026, 12, 31)) == []


async def test_an_order_accepted_again_is_read_in_its_place(store: Store) -> None:
    """An order that was not accepted and is again (no broker does it, the book allows
    it): its place among the accepted ones is its submission, so they are read again."""
    book = SimBrokerStore(store)
    async with book.write(AT) as w:
        await w.create_account(100.0)
        for coid in ("o1", "o2", "o3"):
            await w.insert_order(_order(coid))
        await w.update_order("o1", status="canceled")
    assert [o.client_order_id for o in await book.orders(status="accepted")] == ["o2", "o3"]
    async with book.write(AT) as w:
        await w.update_order("o1", status="accepted")
    assert [o.client_order_id for o in await book.orders(status="accepted")] == ["o1", "o2", "o3"]
