"""Step 4, stop losses: every open position against its 3 x ATR stop, on the last good close.

Not for a symbol the reconciliation disputes (a sell sized from a local position
the broker does not have would open a short), nor for a probable split on
unadjusted data, nor for a symbol held for a corporate action (its split is in
the book, not yet in the history). A held symbol whose data was rejected today
is still checked, on its last good close, and the operator is told which price
guarded it. A position without a stop (adopted from the broker) first gets one:
today's last close less ``risk.stop_atr_multiple`` x today's ATR.
"""

from __future__ import annotations

import math

from actors.cycle.context import CycleContext, Outcome, last_prices
from actors.data_feed.validator import PROBABLE_SPLIT
from actors.events import EventType
from actors.messages import Alert, IntentKind, LastPrice, MarketSnapshot, OrderIntentSpec, Severity
from actors.risk.stops import check_stops, stop_price


async def stop_losses(cx: CycleContext) -> Outcome | None:
    """Turn every triggered stop into a sell intent (kept in ``stop_intents``)."""
    st = cx.state
    snap = st.market
    await _protect_unprotected(cx, snap)
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
        if chk.symbol in st.held_for_actions:
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


async def _protect_unprotected(cx: CycleContext, snap: MarketSnapshot) -> None:
    """Give every position without a stop one, ``k`` x today's ATR below today's last close.

    From the last close, not the average price: an adopted position may have been
    bought long ago far above today's price, and a stop above the market would sell
    it at once. Not in a plan.
    """
    if cx.plan:
        return
    d, k = cx.deps, cx.risk.loss.stop_atr_multiple
    atr_rows = snap.indicators.get("atr14")
    closes = {s: lp.price for s, lp in snap.last_prices.items()} or last_prices(snap)
    for row in await d.orders.unprotected():
        symbol, owner = str(row["symbol"]), row["strategy"]
        col = snap.panel.symbols.index(symbol) if symbol in snap.panel.symbols else None
        atr = (
            float(atr_rows[-1, col])
            if atr_rows is not None and len(atr_rows) and col is not None
            else math.nan
        )
        close = closes.get(symbol, math.nan)
        if not (math.isfinite(atr) and atr > 0 and math.isfinite(close) and close > 0):
            cx.state.notes.append(f"{symbol} ({owner}) has no stop, and no ATR or close today")
            continue
        stop = stop_price(close, atr, k)
        if await d.orders.set_stop(int(row["strategy_id"]), symbol, stop, atr, d.clock.now()):
            cx.state.notes.append(
                f"{symbol} ({owner}) had no stop: {stop:.2f}"
                f" ({k:g} x ATR {atr:.2f} below the last close {close:.2f})"
            )


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
