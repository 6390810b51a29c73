"""Step 3, reconciliation: settle earlier orders, then the gate (fail closed).

A failed reconciliation trips ``reconciliation_failed`` (no entries); an account
the broker blocks trips ``broker_blocked``. The symbols the reconciliation
disputes get no stop exit and no sell.
"""

from __future__ import annotations

from typing import Any

from actors.cycle import kill_switches
from actors.cycle.context import CycleContext, Outcome
from actors.events import EventType
from actors.messages import Reconcile, ReconciliationReport, SettleOrders


async def reconcile(cx: CycleContext) -> Outcome | None:
    """Reconcile with the broker and block entries when it fails or the account is blocked."""
    msg, d, st = cx.msg, cx.deps, cx.state
    if not cx.plan:
        await d.reconciler.ask(Reconcile(msg.run_id, "START"), timeout=d.order_timeout_s)
        await d.order_manager.ask(SettleOrders(), timeout=d.order_timeout_s)
    report: ReconciliationReport = await d.reconciler.ask(
        Reconcile(msg.run_id, "RECONCILIATION"), timeout=d.order_timeout_s
    )
    st.report = report
    st.equity = report.broker_equity if report.error is None else 0.0
    if not cx.plan:
        await cx.event(
            EventType.RECONCILIATION_CHECK,
            passed=report.passed,
            discrepancies=[_disc(x) for x in report.discrepancies],
            error=report.error,
        )
    st.disputed = {x.symbol for x in report.discrepancies if x.symbol} | st.held_for_actions
    # A split the broker has not applied yet: no sell of that symbol until it has (a
    # sell sized on the new quantity would be refused, or short the difference).
    st.disputed |= set(report.pending_corporate_actions)
    for symbol in report.pending_corporate_actions:
        st.notes.append(
            f"pending_corporate_action: {symbol} split applied here, not yet at the broker;"
            " no sells of it this cycle"
        )
    if not report.passed:
        why = report.error or "; ".join(
            f"{x.kind} {x.symbol or ''} local {x.local:g} broker {x.broker:g}"
            for x in report.discrepancies
        )
        await cx.block(kill_switches.RECONCILIATION_FAILED, why, trip=True)
        st.notes.append(f"reconciliation failed: {why}")
        st.notes.extend(f"manual trade at the broker: {t}" for t in report.manual_trades)
    if report.error is None and not report.can_trade:
        why = "the broker account does not allow trading (trading_blocked or suspended)"
        await cx.block(kill_switches.BROKER_BLOCKED, why, trip=True)
        st.notes.append(why)
    return None


def _disc(x: Any) -> dict[str, Any]:
    return {"kind": x.kind, "symbol": x.symbol, "local": x.local, "broker": x.broker}
