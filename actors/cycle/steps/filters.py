"""Step 8, filters: per strategy regime -> correlation -> size, heat, cash -> limits.

``pipeline.decide`` makes the decisions; this step feeds it each strategy's
signals (less the exits its stops already send, plus its re-priced pending
signals) and the portfolio as it stands; then every accepted buy meets the hard
pre-trade limits (``[limits]``, ``actors.orders.limits``: a refusal is a rejection at
stage LIMITS, in the funnel, ``plan`` and ``why-no-trade``). A trading date that
already has entries from another run gets no second round of entries. A plan ends here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from actors.cycle.context import CycleContext, Outcome, last_prices
from actors.messages import (
    IntentKind,
    MarketSnapshot,
    OrderIntentSpec,
    ReconciliationReport,
    Signal,
    SignalAction,
    Signals,
)
from actors.orders.limits import OrderCheck, breach
from actors.risk import pipeline
from actors.risk.cash import CashLedger
from actors.risk.pending import reprice
from actors.store.pending import PendingRow

log = structlog.get_logger()

#: The reason code of entries refused because the date already has another run's entries.
ENTRIES_ALREADY_PLACED = "entries_already_placed"


async def filters(cx: CycleContext) -> Outcome | None:
    """Decide every strategy's signals; the accepted ones become the cycle's intents."""
    st = cx.state
    snap, report = st.market, st.recon
    st.book = _book(cx, report, await cx.deps.orders.cash_flows_by_strategy())
    out = st.outcome
    out.regime = str(st.market_regime.regime)
    out.notes = st.notes
    out.intents.extend(st.stop_intents)
    earlier = await _earlier_entries(cx)
    tally = await _tally(cx)
    split = [_second_round(_signals_for(cx, ans), earlier, ans.strategy) for ans in st.answers]
    correlations = pipeline.session_correlations(
        (sig for sigs, _ in split for sig in sigs),
        close=snap.panel.close,
        symbols=snap.panel.symbols,
        book=st.book,
        params=cx.risk.correlation,
    )
    for ans, (sigs, refused) in zip(st.answers, split, strict=True):
        if ans.error is not None:
            st.failures.append(f"{ans.strategy}: {ans.error}")
        decisions, funnel = pipeline.decide(
            ans.strategy,
            sigs,
            breakout=getattr(cx.params, ans.strategy).breakout,
            blocking=st.blocking,
            regime=st.market_regime,
            book=st.book,
            correlations=correlations,
        )
        decisions = _within_limits(cx, decisions, tally)
        funnel.raw += len(refused)
        decisions = refused + decisions
        st.decided[ans.strategy] = decisions
        out.raw[ans.strategy] = len(ans.signals)
        out.signals.extend(dec.signal for dec in decisions)
        out.funnel[ans.strategy] = funnel.as_counts()
        _collect(cx, ans.strategy, decisions)
    log.info(
        "signals_generated",
        run_id=cx.msg.run_id,
        asof=str(cx.msg.asof),
        raw_signals=out.raw,
        regime=out.regime,
    )
    if cx.plan:
        out.reason = f"plan: {len(out.intents)} orders would be placed"
        return out
    return None


@dataclass(slots=True)
class _Tally:
    """What the cycle's orders so far add up to, for the limits."""

    orders: int  # this cycle's orders so far (the stop-loss sells first)
    today: int  # other runs' orders for this trading date
    notional: dict[str, float] = field(default_factory=dict)  # symbol -> held + bought, USD


async def _tally(cx: CycleContext) -> _Tally:
    st = cx.state
    last = {s: lp.price for s, lp in st.market.last_prices.items()} or last_prices(st.market)
    notional: dict[str, float] = {}
    for ps in st.positions.values():
        for p in ps:
            price = last.get(p.symbol, p.entry_price)
            notional[p.symbol] = notional.get(p.symbol, 0.0) + abs(p.shares) * price
    rows = await cx.deps.orders.intents_for(asof=cx.msg.asof)
    today = sum(1 for r in rows if not r.resting and r.run_id != cx.msg.run_id)
    return _Tally(orders=len(st.stop_intents), today=today, notional=notional)


def _within_limits(
    cx: CycleContext, decisions: list[pipeline.Decision], tally: _Tally
) -> list[pipeline.Decision]:
    """Each accepted buy against the hard pre-trade limits (``actors.orders.limits``): one
    that breaks one is refused at stage LIMITS; sells are never refused, and count."""
    limits = cx.risk.limits
    closes = {s: lp.price for s, lp in cx.state.market.last_prices.items()}
    out: list[pipeline.Decision] = []
    for dec in decisions:
        sig = dec.signal
        if not dec.accepted:
            out.append(dec)
            continue
        if sig.action is SignalAction.BUY:
            check = OrderCheck(
                symbol=sig.symbol,
                qty=dec.shares,
                price=sig.price,
                last_close=closes.get(sig.symbol),
                held_notional=tally.notional.get(sig.symbol, 0.0),
                orders_this_cycle=tally.orders,
                orders_today=tally.today,
            )
            hit = breach(check, limits)
            if hit is not None:
                rejection = pipeline.Rejection(pipeline.Stage.LIMITS, hit.code, dict(hit.details))
                out.append(dataclasses.replace(dec, shares=0, rejection=rejection))
                continue
            tally.notional[sig.symbol] = (
                tally.notional.get(sig.symbol, 0.0) + dec.shares * sig.price
            )
        tally.orders += 1
        out.append(dec)
    return out


def _book(
    cx: CycleContext, report: ReconciliationReport, flows: Mapping[str, float]
) -> pipeline.Book:
    """The portfolio as the filters see it; each strategy's realised P&L from its trades."""
    st = cx.state
    last = {s: lp.price for s, lp in st.market.last_prices.items()} or last_prices(st.market)
    exposure = sum(
        abs(p.shares) * last.get(p.symbol, p.entry_price)
        for ps in st.positions.values()
        for p in ps
    )
    committed = {n: sum(p.shares * p.entry_price for p in ps) for n, ps in st.positions.items()}
    return pipeline.Book(
        portfolio_value=report.broker_equity,
        exposure=exposure,
        cash=CashLedger(
            {n: p.capital for n, p in cx.params.items()},
            report.broker_cash,
            committed=committed,
            # cash flows = realised P&L - cost of what is still held
            realized={n: flows.get(n, 0.0) + committed.get(n, 0.0) for n in committed},
        ),
        held_symbols={p.symbol for ps in st.positions.values() for p in ps},
    )


def _signals_for(cx: CycleContext, ans: Signals) -> list[Signal]:
    """The strategy's signals, less exits its stops already send, plus its pending ones.

    A symbol held for a corporate action (split in the book, not yet in the history)
    gets no signal at all today: its prices are in the old scale.
    """
    st = cx.state
    stopped = {i.symbol for i in st.stop_intents if i.strategy == ans.strategy}
    sigs = [
        s
        for s in ans.signals
        if not (s.action is SignalAction.SELL and s.symbol in stopped)
        and s.symbol not in st.held_for_actions
    ]
    own = {s.symbol for s in sigs}
    for p in st.pending:
        if p.strategy != ans.strategy or p.symbol in own or p.symbol in st.held_for_actions:
            continue
        fresh = _reprice(cx, p)
        if fresh is not None:
            sigs.append(fresh)
    return sigs


def _reprice(cx: CycleContext, p: PendingRow) -> Signal | None:
    """A pending signal priced and sized on today's data (None: not tradable today)."""
    snap = cx.state.market
    if p.symbol not in snap.panel.symbols:
        return None
    col = snap.panel.symbols.index(p.symbol)
    price = float(snap.panel.close[-1, col]) if len(snap.panel.dates) else math.nan
    atr_rows = snap.indicators.get("atr14")
    atr = float(atr_rows[-1, col]) if atr_rows is not None and len(atr_rows) else math.nan
    params = getattr(cx.params, p.strategy)
    return reprice(
        p.signal,
        price=price,
        atr=atr,
        capital=float(params.capital),
        risk_capital=cx.risk_capital(p.strategy),
        risk_per_trade=float(params.risk_per_trade),
        stop_atr_multiple=cx.stop_multiple(p.strategy),
        since=p.created_asof,
    )


def _collect(cx: CycleContext, name: str, decisions: list[pipeline.Decision]) -> None:
    """Accepted decisions become intents (no sell of a disputed symbol); refusals are listed."""
    st = cx.state
    snap = st.market
    for dec in decisions:
        if dec.accepted and not (
            dec.signal.action is SignalAction.SELL and dec.signal.symbol in st.disputed
        ):
            st.outcome.intents.append(_intent(dec, snap, cx.stop_multiple(name)))
        elif dec.rejection is not None:
            st.outcome.rejections.append(
                {
                    "strategy": name,
                    "symbol": dec.signal.symbol,
                    "stage": str(dec.rejection.stage),
                    "reason": dec.rejection.reason_code,
                    "details": dec.rejection.details,
                }
            )


async def _earlier_entries(cx: CycleContext) -> dict[tuple[str, str], str]:
    """(strategy, symbol) -> run id of entry intents other runs wrote for this date."""
    rows = await cx.deps.orders.intents_for(asof=cx.msg.asof)
    return {
        (r.strategy, r.symbol): r.run_id
        for r in rows
        if r.kind is IntentKind.ENTRY and r.run_id != cx.msg.run_id
    }


def _second_round(
    signals: list[Signal], earlier: Mapping[tuple[str, str], str], strategy: str
) -> tuple[list[Signal], list[pipeline.Decision]]:
    """Split off new entries on a date that already has another run's entries.

    An entry whose (strategy, symbol) already has an intent for the date is the
    same order (its intent id is the same) and is resolved, not resubmitted; any
    *other* entry would be a second round (the positions the first round bought
    change what the strategies see), so it is refused, naming the earlier run.
    Returns the signals to decide on and the refusals.
    """
    if not earlier:
        return signals, []
    runs = sorted(set(earlier.values()))
    keep: list[Signal] = []
    refused: list[pipeline.Decision] = []
    for sig in signals:
        if sig.action is SignalAction.BUY and (strategy, sig.symbol) not in earlier:
            why = {"runs": runs, "why": "this trading date already has entries: no second round"}
            refused.append(
                pipeline.Decision(
                    sig,
                    0,
                    pipeline.Rejection(pipeline.Stage.KILL_SWITCH, ENTRIES_ALREADY_PLACED, why),
                )
            )
        else:
            keep.append(sig)
    return keep, refused


def _intent(dec: pipeline.Decision, snap: MarketSnapshot, stop_multiple: float) -> OrderIntentSpec:
    """The order intent of an accepted decision (an entry carries its stop multiple)."""
    sig: Signal = dec.signal
    side = "buy" if sig.action is SignalAction.BUY else "sell"
    return OrderIntentSpec(
        strategy=sig.strategy,
        symbol=sig.symbol,
        side=side,
        qty=dec.shares,
        kind=IntentKind.ENTRY if side == "buy" else IntentKind.EXIT,
        reference_price=sig.price,
        atr=sig.atr if math.isfinite(sig.atr) else 0.0,
        reason=sig.reasoning,
        stop_atr_multiple=stop_multiple if side == "buy" else None,
    )
