"""Step 4, stop losses: every open position against its 3 x ATR stop, on the last good close.

Not for a symbol the reconciliation disputes (a sell sized from a local position
the broker does not have would open a short), nor for a probable split on
unadjusted data. A held symbol whose data was rejected today is still checked,
on its last good close, and the operator is told which price guarded it.
"""

from __future__ import annotations

from actors.cycle.context import CycleContext, Outcome, last_prices
from actors.data_feed.validator import PROBABLE_SPLIT
from actors.events import EventType
from actors.messages import Alert, IntentKind, LastPrice, MarketSnapshot, OrderIntentSpec, Severity
from actors.risk.stops import check_stops


async def stop_losses(cx: CycleContext) -> Outcome | None:
    """Turn every triggered stop into a sell intent (kept in ``stop_intents``)."""
    st = cx.state
    snap = st.market
    rows = await cx.deps.signals.stops()
    held_back = {r.symbol for r in snap.rejected if r.reason_code == PROBABLE_SPLIT}
    rejected = {r.symbol: r for r in snap.rejected}
    prices = {s: lp.price for s, lp in snap.last_prices.items()}
    if not snap.last_prices:  # a feed that gives no last prices: the valid panel's
        prices = last_prices(snap)
    checks = check_stops([(r["strategy"], r["symbol"], r["stop_price"]) for r in rows], prices)
    by_key = {(r["strategy"], r["symbol"]): r for r in rows}
    for chk in checks:
        why = rejected.get(chk.symbol)
        if chk.symbol in held_back:
            st.notes.append(
                f"stop for {chk.symbol} not checked: probable split on unadjusted data "
                f"({why.details if why else ''}); re-load split-adjusted bars"
            )
            continue
        if why is not None:
            await _bad_data_on_held(cx, chk.symbol, why.reason_code, why.details, snap)
        if not chk.triggered:
            continue
        if chk.symbol in st.disputed:
            st.notes.append(f"stop for {chk.symbol} not sent: reconciliation disagrees on it")
            continue
        row = by_key[(chk.strategy, chk.symbol)]
        st.stop_intents.append(
            OrderIntentSpec(
                strategy=chk.strategy,
                symbol=chk.symbol,
                side="sell",
                qty=int(row["shares"]),
                kind=IntentKind.STOP,
                reference_price=chk.price,
                reason=f"stop {chk.stop:.2f} hit: last close {chk.price:.2f}",
            )
        )
        await cx.event(
            EventType.RISK_LIMIT_HIT,
            limit="stop_loss",
            symbol=chk.symbol,
            strategy=chk.strategy,
            stop=chk.stop,
            price=chk.price,
        )
    return None


async def _bad_data_on_held(
    cx: CycleContext, symbol: str, code: str, details: str, snap: MarketSnapshot
) -> None:
    """A held symbol's data was rejected today: tell the operator which price guarded it."""
    last: LastPrice | None = snap.last_prices.get(symbol)
    guard = (
        f"stop checked at the last good close {last.price:.2f} of {last.session}"
        if last is not None
        else "no good close at all: its stop could not be checked"
    )
    text = f"held {symbol}: data rejected today ({code}: {details}); {guard}"
    d = cx.deps
    if cx.plan or d.alert is None:
        return
    await d.alert(
        Alert(
            key=f"held_bad_data:{symbol}",
            severity=Severity.WARNING if last is not None else Severity.CRITICAL,
            summary=text,
            details={"symbol": symbol, "reason": code, "asof": str(cx.msg.asof)},
            at=d.clock.now(),
        )
    )
