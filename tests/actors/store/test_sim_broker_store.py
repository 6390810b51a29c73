"""The simulated broker's book: its corporate-action reads find the rows still to matter."""

from __future__ import annotations

import datetime as dt

from actors.store.sim_broker import SimActionRow, SimBrokerStore
from daemon.store import Store

AT = dt.datetime(2026, 6, 15, 14, tzinfo=dt.UTC)
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
    async with book.write(AT) as w:
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
    async with book.write(AT) as w:
        await w.credit_action("div")
    assert await book.owed(D(2026, 12, 31)) == []
