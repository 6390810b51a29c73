"""Step 2 (before the market data), corporate actions: the book follows splits, dividends
and renames before anything reads prices or compares with the broker.

Every cycle asks the data feed for the actions of the universe and the held symbols
(ex dates in the last ``LOOKBACK_DAYS``), records the new ones, applies each action
whose ex date has come (once: ``actors.store.corporate_actions``), and credits the
cash of dividends whose pay date has come. Once a split's ex-date bar is in the
window (the session before the trading date), the symbol's cached bars are forgotten
so the market data step fetches its history adjusted; on the ex date itself the
history is still in the old scale while the book is in the new one, so that day the
symbol is held: no signal, no order, no stop check of it (a reverse split's stop,
ten times higher, would otherwise sell on the old price), and the operator is told.
A symbol renamed away is held from the rename's ex date on: its ticker is gone.
Each application is an event in the run's file and an alert to the operator; the
cycle's notes say what changed.
A source that cannot be read costs nothing but a note: an unexplained difference at
the reconciliation still fails closed. A plan reads and writes nothing here.
"""

from __future__ import annotations

from actors.cycle.context import CycleContext, Outcome
from actors.events import EventType
from actors.market.corporate_actions import CorporateAction
from actors.messages import Alert, CorporateActionsReport, FetchCorporateActions, Severity
from actors.store.corporate_actions import Effect

#: How far back a cycle asks for actions (a daemon down for longer fails closed at the
#: reconciliation, which names the symbol).
LOOKBACK_DAYS = 30


async def corporate_actions(cx: CycleContext) -> Outcome | None:
    """Record, apply and credit the corporate actions due by the cycle's trading date."""
    d, st, asof = cx.deps, cx.state, cx.msg.asof
    book = d.corporate_actions
    if cx.plan or book is None:
        return None
    held = tuple(sorted({str(p["symbol"]) for p in await d.orders.positions()}))
    report: CorporateActionsReport = await d.data_feed.ask(
        FetchCorporateActions(asof, held, LOOKBACK_DAYS), timeout=d.data_timeout_s
    )
    if report.error:
        st.notes.append(f"corporate actions not read: {report.error}")
    now = d.clock.now()
    await book.record(report.actions, now)
    for action in await book.unapplied(asof):
        effects = await book.apply(
            action, now, last_close=report.closes_before.get(action.action_id)
        )
        await _announce(cx, action, effects)
    for action in await book.credit_due(asof, now):
        st.notes.append(f"{action.describe()}: cash credited")
    window_end = d.calendar.previous_session(asof)
    refreshed = await book.refresh_bars(window_end, now)
    if refreshed:
        st.notes.append(f"history fetched again, adjusted: {', '.join(refreshed)}")
    for symbol, action in sorted((await book.unadjusted(window_end)).items()):
        st.held_for_actions.add(symbol)
        st.notes.append(
            f"{symbol}: {action.describe()} ex {action.ex_date} is in the book, not yet in"
            " its history: no orders and no stop check of it today"
        )
    for symbol, (new, ex_date) in sorted((await book.renamed_away(asof)).items()):
        # A feed may go on serving the old ticker (the company's bars under either name):
        # an entry in it would be refused by the broker, or, at a simulated one, land on
        # the new symbol behind the book's back.
        st.held_for_actions.add(symbol)
        st.notes.append(
            f"{symbol}: renamed {new} on {ex_date}: no orders in the"
            f" old symbol (add {new} to the universe to trade it)"
        )
    return None


async def _announce(cx: CycleContext, action: CorporateAction, effects: list[Effect]) -> None:
    """The note, the event and the alert of one applied action."""
    d = cx.deps
    held = ", ".join(
        f"{e.strategy} {e.shares_before} -> {e.shares_after}"
        + (
            f" (+${e.cash:,.2f}{'' if e.credited else ' on ' + str(action.credited_on)})"
            if e.cash
            else ""
        )
        for e in effects
    )
    text = f"{action.describe()} (ex {action.ex_date}, {action.source}): " + (held or "not held")
    cx.state.notes.append(text)
    await cx.event(
        EventType.CORPORATE_ACTION_APPLIED,
        action_id=action.action_id,
        kind=str(action.kind),
        symbol=action.symbol,
        effects=[
            {
                "strategy": e.strategy,
                "before": e.shares_before,
                "after": e.shares_after,
                "cash": e.cash,
            }
            for e in effects
        ],
    )
    if effects and d.alert is not None:
        await d.alert(
            Alert(
                key=f"corporate_action:{action.action_id}",
                severity=Severity.INFO,
                summary=text,
                details={"symbol": action.symbol, "kind": str(action.kind)},
                at=d.clock.now(),
            )
        )
