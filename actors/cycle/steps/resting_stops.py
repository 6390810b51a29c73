"""Step 9b, resting stops: each lot's protective stop at the broker kept right.

After the orders are placed (an entry that filled gets its stop; an exit's lot
lost its stop before the exit was sent), the order manager's ``SyncRestingStops``
looks every resting stop up and puts each lot's right (``actors.orders.resting_stops``).
The cycle tells the operator what happened: every stop that sold at the broker
since the last report (a stop-loss exit, with its real fill price), every stop
placed, replaced or cancelled (the cycle's details and the log), and repairs,
held lots and failures (the summary, and alerts). The resting stops and their
fills go into the cycle's details, which the digest shows. Not in a plan;
nothing when ``orders.broker_stops`` is off.
"""

from __future__ import annotations

from typing import Any

from actors.cycle.context import CycleContext, Outcome
from actors.events import EventType
from actors.messages import (
    Alert,
    RestingStopChange,
    RestingStopsReport,
    Severity,
    StopAction,
    SyncRestingStops,
)

#: SystemState key: the last trade id of a resting stop fill the cycle reported.
REPORTED_KEY = "resting_stops.reported_trade"


async def resting_stops(cx: CycleContext) -> Outcome | None:
    """Sync the resting stops; report their fills and changes (see the module)."""
    if cx.plan:
        return None
    d, st = cx.deps, cx.state
    report: RestingStopsReport = await d.order_manager.ask(
        SyncRestingStops(cx.msg.run_id), timeout=d.order_timeout_s
    )
    if not report.enabled:
        return None
    fills = await _new_fills(cx)
    for f in fills:
        st.notes.append(
            f"resting stop filled at the broker: {f['strategy']} sold {f['shares']:g}"
            f" {f['symbol']} at {f['exec_price']:.2f} (stop {f['stop_price']:.2f})"
        )
        await cx.event(
            EventType.RISK_LIMIT_HIT,
            limit="resting_stop",
            symbol=f["symbol"],
            strategy=f["strategy"],
            stop=f["stop_price"],
            price=f["exec_price"],
        )
    for change in report.alerts:
        st.notes.append(f"resting stop {change.action}: {_line(change)}")
        await _alert(cx, change)
    out = st.outcome
    out.details = {
        **out.details,
        "resting_stops": await _resting(cx),
        "resting_stop_fills": fills,
        "resting_stop_changes": [
            {
                "strategy": c.strategy,
                "symbol": c.symbol,
                "action": str(c.action),
                "detail": c.detail,
            }
            for c in report.changes
        ],
    }
    return None


async def _new_fills(cx: CycleContext) -> list[dict[str, Any]]:
    """Resting stop fills booked since the last cycle reported them (then marked reported)."""
    d = cx.deps
    last = int(await d.state.get(REPORTED_KEY, 0))
    fills = await d.orders.resting_stop_fills(last)
    if fills:
        await d.state.set(REPORTED_KEY, int(fills[-1]["id"]), d.clock.now())
    return [
        {
            "strategy": f["strategy"],
            "symbol": f["symbol"],
            "shares": float(f["shares"]),
            "exec_price": float(f["exec_price"]),
            "stop_price": float(f["stop_price"]),
            "executed_at": f["executed_at"],
        }
        for f in fills
    ]


async def _resting(cx: CycleContext) -> list[dict[str, Any]]:
    return [
        {
            "strategy": r.strategy,
            "symbol": r.symbol,
            "qty": r.remaining_qty,
            "stop_price": r.stop_price,
            "status": str(r.status),
        }
        for r in await cx.deps.orders.resting_stops()
    ]


def _line(change: RestingStopChange) -> str:
    return f"{change.strategy} {change.symbol}: {change.detail}"


async def _alert(cx: CycleContext, change: RestingStopChange) -> None:
    d = cx.deps
    if d.alert is None:
        return
    severity = Severity.CRITICAL if change.action is StopAction.FAILED else Severity.WARNING
    await d.alert(
        Alert(
            key=f"resting_stop:{change.strategy}:{change.symbol}",
            severity=severity,
            summary=f"resting stop {change.action}: {_line(change)}",
            details={
                "strategy": change.strategy,
                "symbol": change.symbol,
                "action": str(change.action),
                "asof": str(cx.msg.asof),
            },
            at=d.clock.now(),
        )
    )
