"""Corporate actions on the simulated account, applied as a broker applies them.

At the first call on or after an action's ex date (exchange time), for a symbol the
account holds then: a split or stock dividend makes the quantity ``floor(qty x
ratio)`` and the average price ``avg / ratio``, and pays the fraction in cash at the
close before the ex date divided by the ratio; a cash dividend entitles the shares
held to ``cash_per_share`` each, credited to cash on the pay date; a rename moves
the position to the new symbol. Resting stop sells are adjusted for a split as
FINRA Rule 5330 describes (``floor(qty x ratio)`` at ``stop / ratio``) and
cancelled at a rename; a cash dividend leaves them as they are. Each action is applied once
(``sim_corporate_actions``). The arithmetic is ``actors.market.corporate_actions``',
the same the daemon applies to its own book, so the two agree to the cent.

The actions come from the price source's provider when it reports them
(``ReportsCorporateActions``); a source without them changes nothing.

``back_out`` undoes the actions after a session for the valuation at that
session's close (the quantities and cash as they stood then).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from actors.data_feed.providers.base import provider_actions
from actors.market.corporate_actions import ActionKind, CorporateAction, dividend_cash, rescale
from actors.store.sim_broker import SimActionRow, SimBrokerStore, SimBrokerWriter, SimPositionRow

#: How far back the broker asks for actions it may have missed.
LOOKBACK_DAYS = 30

CloseBefore = Callable[[str, dt.date], Awaitable[float | None]]


async def apply_due(
    book: SimBrokerStore,
    source: object,
    today: dt.date,
    at: dt.datetime,
    close_before: CloseBefore,
) -> None:
    """Apply the actions due by ``today`` to held symbols, credit dividends due; once each."""
    if source is None:
        return
    positions = {p.symbol: p for p in await book.positions()}
    found = (
        await provider_actions(
            source, sorted(positions), today - dt.timedelta(LOOKBACK_DAYS), today
        )
        if positions
        else []
    )
    done = await _applied(book, found)
    todo = sorted(
        (a for a in found if a.action_id not in done and a.ex_date <= today),
        key=lambda a: (a.ex_date, a.action_id),
    )
    owed = await book.owed(today)
    if not todo and not owed:
        return
    # Prices are read before the write transaction (the source may read the store).
    lasts = {
        a.action_id: await close_before(a.symbol, a.ex_date)
        for a in todo
        if a.kind.rescales and a.symbol in positions
    }
    # Shares bought on or after an ex date are in the new terms already (the broker
    # first heard of the symbol later, e.g. bought it after the split): not rescaled.
    since = {
        a.action_id: await _net_fills_since(book, a.symbol, a.ex_date)
        for a in todo
        if a.symbol in positions
    }
    async with book.write(at) as w:
        for action in todo:
            held = positions.get(action.symbol)
            if held is None:
                continue
            later = since.get(action.action_id, 0)
            if later:
                held = _split_off(held, later)
            row, after = await _apply(w, action, held, lasts.get(action.action_id))
            if later:
                after = _join(after, positions[action.symbol], later)
                await _rewrite(w, action.symbol, after)
            positions.pop(action.symbol, None)
            if after is not None:
                positions[after.symbol] = after
            await w.record_action(row)
            if row.pay_date is not None and row.pay_date <= today:
                owed.append(row)
        for row in owed:
            await w.add_cash(row.cash)
            await w.credit_action(row.action_id)


async def _applied(book: SimBrokerStore, found: list[CorporateAction]) -> set[str]:
    """The ids of ``found`` the account has applied already (an id fixes the ex date, so
    only the rows from the earliest ex date of ``found`` are read)."""
    if not found:
        return set()
    since = min(a.ex_date for a in found) - dt.timedelta(days=1)
    return {a.action_id for a in await book.actions(after=since)}


async def _net_fills_since(book: SimBrokerStore, symbol: str, ex_date: dt.date) -> int:
    """Shares of ``symbol`` bought less sold in sessions on or after ``ex_date``."""
    net = 0
    for o in await book.filled_orders_traded_after(ex_date - dt.timedelta(days=1)):
        if o.symbol == symbol:
            net += o.filled_qty if o.side == "buy" else -o.filled_qty
    return net


def _split_off(held: SimPositionRow, later: int) -> SimPositionRow:
    """The part of ``held`` the account had at the ex date (``later``: shares traded since)."""
    qty = max(0, held.qty - later)
    return SimPositionRow(held.symbol, qty, held.avg_entry_price, held.last_price)


def _join(after: SimPositionRow | None, now: SimPositionRow, later: int) -> SimPositionRow | None:
    """The position after the action: its part at the ex date as the action left it, with
    the ``later`` shares traded since (bought: at the position's average price; sold: off)."""
    base = after.qty if after is not None else 0
    qty = base + later
    if qty <= 0:
        return None
    if after is None or later < 0:
        avg = after.avg_entry_price if after is not None else now.avg_entry_price
        return SimPositionRow(after.symbol if after else now.symbol, qty, avg, now.last_price)
    avg = (after.qty * after.avg_entry_price + later * now.avg_entry_price) / qty
    return SimPositionRow(after.symbol, qty, avg, now.last_price)


async def _rewrite(w: SimBrokerWriter, symbol: str, after: SimPositionRow | None) -> None:
    await w.delete_position(symbol)
    if after is not None:
        await w.upsert_position(after)


async def _apply(
    w: SimBrokerWriter, action: CorporateAction, held: SimPositionRow, last: float | None
) -> tuple[SimActionRow, SimPositionRow | None]:
    """One action on one position (``last``: the close before the ex date); the record
    and the position after it."""
    after: SimPositionRow | None = held
    cash, credited, pay = 0.0, True, None
    if action.kind.rescales:
        new = rescale(held.qty, held.avg_entry_price, None, None, action.ratio, last_close=last)
        price = held.last_price / action.ratio if held.last_price else None
        after = (
            SimPositionRow(held.symbol, new.shares, new.avg_price, price) if new.shares else None
        )
        cash = new.cash_in_lieu
        await w.add_cash(cash)
        if held.qty:
            await w.adjust_resting_stops(held.symbol, action.ratio)
    elif action.kind is ActionKind.CASH_DIVIDEND:
        cash, credited, pay = dividend_cash(held.qty, action), False, action.credited_on
    else:
        assert action.new_symbol is not None
        await w.cancel_resting_stops(held.symbol)
        after = SimPositionRow(action.new_symbol, held.qty, held.avg_entry_price, held.last_price)
    await w.delete_position(held.symbol)
    if after is not None:
        await w.upsert_position(after)
    row = SimActionRow(
        action_id=action.action_id,
        kind=str(action.kind),
        symbol=action.symbol,
        new_symbol=action.new_symbol,
        ex_date=action.ex_date,
        ratio=action.ratio,
        shares_before=held.qty,
        shares_after=after.qty if after is not None else 0,
        cash=cash,
        pay_date=pay,
        credited=credited,
    )
    return row, after


def scale_since(rows: list[SimActionRow], symbol: str, session: dt.date) -> float:
    """How many of today's shares one share of ``symbol`` at ``session``'s close became
    (the ratios of the splits applied since); a close then divided by it is in today's terms."""
    scale = 1.0
    for row in rows:
        if row.symbol == symbol and row.ex_date > session and row.kind in _RESCALING:
            scale *= row.ratio
    return scale


_RESCALING = frozenset(
    {ActionKind.FORWARD_SPLIT, ActionKind.REVERSE_SPLIT, ActionKind.STOCK_DIVIDEND}
)


def back_out(row: SimActionRow, qty: dict[str, int], cash: float, session: dt.date) -> float:
    """Undo ``row`` (whose ex date or pay date is after ``session``) on ``qty``; the cash then.

    Called newest first, interleaved with the fills after ``session``.
    """
    if row.kind == ActionKind.CASH_DIVIDEND:
        paid_after = row.credited and (row.pay_date or row.ex_date) > session
        return cash - row.cash if paid_after else cash
    if row.ex_date <= session:
        return cash
    if row.kind == ActionKind.RENAME and row.new_symbol:
        qty[row.new_symbol] = qty.get(row.new_symbol, 0) - row.shares_before
        qty[row.symbol] = qty.get(row.symbol, 0) + row.shares_before
    else:
        qty[row.symbol] = qty.get(row.symbol, 0) - row.shares_after + row.shares_before
    return cash - row.cash
