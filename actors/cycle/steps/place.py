"""Step 9, place: signals and order intents written, orders placed, the END snapshot.

In order: the decided signals recorded (with their events), expired pending
signals dropped and newly parked ones stored, the intents submitted (sells
first), each signal's terminal state, the funnel and the rejections, and the
END reconciliation. Each stage is journaled before the next one starts, so a
cycle resumed after a crash finds what it already wrote.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from actors.cycle.context import CycleContext, Outcome, went_through
from actors.events import EventType
from actors.messages import (
    IntentStatus,
    OrderIntentSpec,
    OrderResult,
    OrderResults,
    PlaceOrders,
    Reconcile,
    Signal,
    SignalAction,
)
from actors.risk import pipeline
from actors.risk.pending import expiry_asof
from actors.store.cycles import CycleStep
from actors.store.pending import Parked
from actors.store.signals import StrategyRejection

Decided = Mapping[str, list[pipeline.Decision]]
SignalIds = Mapping[tuple[str, str, str], int]


async def place(cx: CycleContext) -> Outcome | None:
    """Write the signals and intents, place the orders, record what became of each."""
    msg, d, st = cx.msg, cx.deps, cx.state
    out = st.outcome
    st.ids = await _persist(cx, st.decided)
    await d.journal.step(msg.run_id, CycleStep.SIGNALS, d.clock.now())
    await d.pending.expire(msg.asof)
    await _park(cx, st.decided)
    await d.journal.step(msg.run_id, CycleStep.INTENTS, d.clock.now())
    st.results = await _submit(cx, out.intents, st.ids)
    out.results = st.results
    await d.journal.step(msg.run_id, CycleStep.SUBMITTED, d.clock.now())
    await _terminal_states(cx, st.ids, st.results)
    await _save_funnel(cx)
    await d.signals.log_strategy_rejections(
        msg.run_id,
        [
            StrategyRejection(
                d.strategy_ids[str(rej["strategy"])],
                str(rej["symbol"]),
                stage=str(rej["stage"]),
                reason_code=str(rej["reason"]),
                details=dict(rej["details"]),
            )
            for rej in out.rejections
        ],
    )
    await d.journal.step(msg.run_id, CycleStep.SETTLED, d.clock.now())
    await d.reconciler.ask(Reconcile(msg.run_id, "END"), timeout=d.order_timeout_s)
    await _observe(cx)
    out.details = _details(cx)
    return None


async def _persist(cx: CycleContext, decided: Decided) -> dict[tuple[str, str, str], int]:
    """Record every decided signal; (strategy, symbol, action) -> its signal id."""
    named = [(name, dec.signal) for name, decisions in decided.items() for dec in decisions]
    new_ids = await cx.deps.signals.record_signals(
        cx.msg.run_id, cx.msg.asof, [(cx.deps.strategy_ids[name], sig) for name, sig in named]
    )
    ids: dict[tuple[str, str, str], int] = {}
    events: list[tuple[EventType, Mapping[str, Any]]] = []
    for (name, sig), sid in zip(named, new_ids, strict=True):
        ids[(name, sig.symbol, str(sig.action))] = sid
        generated = {
            "strategy": name,
            "symbol": sig.symbol,
            "action": str(sig.action),
            "confidence": round(sig.confidence, 4),
            "shares": sig.shares,
            "reasoning": sig.reasoning,
        }
        events.append((EventType.SIGNAL_GENERATED, generated))
    for dec_list in decided.values():
        for dec in dec_list:
            if dec.rejection is not None:
                rejected = {
                    "strategy": dec.signal.strategy,
                    "symbol": dec.signal.symbol,
                    "stage": str(dec.rejection.stage),
                    "reason": dec.rejection.reason_code,
                    "details": dec.rejection.details,
                }
                events.append((EventType.SIGNAL_REJECTED, rejected))
    await cx.events(events)
    return ids


async def _park(cx: CycleContext, decided: Decided) -> None:
    """Keep the refusals that may pass on a later day (heat, cash) as pending signals."""
    d, asof = cx.deps, cx.msg.asof
    sessions = d.calendar.sessions_between(asof, asof + dt.timedelta(days=14))
    until = expiry_asof(asof, sessions, cx.risk.pending.decay_sessions)
    await d.pending.park_many(
        [
            Parked(d.strategy_ids[name], dec.signal, dec.rejection.reason_code)
            for name, decisions in decided.items()
            for dec in decisions
            if dec.park and dec.rejection is not None
        ],
        asof=asof,
        expires_asof=until,
        at=d.clock.now(),
    )


async def _submit(
    cx: CycleContext, intents: list[OrderIntentSpec], ids: SignalIds
) -> list[OrderResult]:
    """Send the intents (sells first, each with its signal id) to the order manager."""
    if not intents:
        return []
    specs = tuple(
        OrderIntentSpec(
            strategy=i.strategy,
            symbol=i.symbol,
            side=i.side,
            qty=i.qty,
            kind=i.kind,
            reference_price=i.reference_price,
            atr=i.atr,
            signal_id=ids.get((i.strategy, i.symbol, "BUY" if i.side == "buy" else "SELL")),
            reason=i.reason,
            stop_atr_multiple=i.stop_atr_multiple,
        )
        for i in sorted(intents, key=lambda i: i.side != "sell")
    )
    answer: OrderResults = await cx.deps.order_manager.ask(
        PlaceOrders(cx.msg.run_id, cx.msg.asof, specs), timeout=cx.deps.order_timeout_s
    )
    await cx.events([e for r in answer.results for e in _order_events(r)])
    return list(answer.results)


def _order_events(r: OrderResult) -> list[tuple[EventType, Mapping[str, Any]]]:
    """The intent's creation and its order's fate, for the run's event file."""
    event = {
        IntentStatus.REJECTED: EventType.ORDER_REJECTED,
        IntentStatus.FILLED: EventType.ORDER_FILLED,
    }.get(r.status, EventType.ORDER_SUBMITTED)
    created = {
        "intent_id": r.intent_id,
        "strategy": r.strategy,
        "symbol": r.symbol,
        "side": r.side,
        "qty": r.qty,
        "existing": r.existing,
    }
    fate = {
        "intent_id": r.intent_id,
        "status": str(r.status),
        "filled_qty": r.filled_qty,
        "avg_price": r.avg_price,
        "error": r.error,
    }
    return [(EventType.ORDER_INTENT_CREATED, created), (event, fate)]


async def _terminal_states(cx: CycleContext, ids: SignalIds, results: list[OrderResult]) -> None:
    """Each recorded signal's terminal state; pending signals that were bought resolved."""
    d, st = cx.deps, cx.state
    by_key = {(r.strategy, r.symbol, r.side): r for r in results}
    rows: list[tuple[int, str, str]] = []
    for name, decisions in st.decided.items():
        for dec in decisions:
            sid = ids.get((name, dec.signal.symbol, str(dec.signal.action)))
            if sid is not None:
                res = by_key.get((name, dec.signal.symbol, _side(dec.signal)))
                rows.append((sid, *_terminal(dec, res)))
    await d.signals.set_terminal(rows, d.clock.now())
    done = {
        (r.strategy, r.symbol)
        for r in results
        if r.status is not IntentStatus.REJECTED and r.side == "buy"
    }
    executed = [p.id for p in st.pending if (p.strategy, p.symbol) in done]
    await d.pending.resolve_many(executed, "EXECUTED", d.clock.now())


async def _save_funnel(cx: CycleContext) -> None:
    """Each strategy's funnel, with how many accepted signals went through, stored and set."""
    d, st = cx.deps, cx.state
    out = st.outcome
    for name, decisions in st.decided.items():
        accepted = {(dec.signal.symbol, _side(dec.signal)) for dec in decisions if dec.accepted}
        executed = sum(
            1
            for r in st.results
            if r.strategy == name and (r.symbol, r.side) in accepted and went_through(r)
        )
        out.funnel[name]["executed"] = executed
        if d.metrics is not None:
            for stage, count in out.funnel[name].items():
                d.metrics.signals.labels(strategy=name, stage=stage).set(count)
    await d.signals.save_funnels(
        cx.msg.run_id,
        cx.msg.asof,
        [(d.strategy_ids[name], name, out.funnel[name]) for name in st.decided],
    )


async def _observe(cx: CycleContext) -> None:
    """The portfolio, regime and reconciliation gauges after the orders."""
    m = cx.deps.metrics
    if m is None:
        return
    st = cx.state
    report, regime, book = st.recon, st.market_regime, st.book
    assert book is not None
    m.portfolio_value.set(report.broker_equity)
    m.heat_ratio.set(book.exposure / book.portfolio_value if book.portfolio_value > 0 else 0.0)
    m.heat_limit_ratio.set(regime.heat_limit)
    for r in ("low_volatility", "normal", "high_volatility", "crisis"):
        m.regime.labels(regime=r).set(1.0 if str(regime.regime) == r else 0.0)
    m.positions_count.set(await cx.deps.signals.open_positions())
    m.reconciliation_passed.set(1.0 if report.passed else 0.0)
    m.reconciliation_discrepancies.set(len(report.discrepancies))
    if report.passed:
        m.last_reconciliation_success.set(report.at.timestamp())


def _details(cx: CycleContext) -> dict[str, Any]:
    """The cycle's risk picture for the digest and ``cycle_details``."""
    st = cx.state
    report, regime, book = st.recon, st.market_regime, st.book
    assert book is not None
    day = st.day
    return {
        "regime": str(regime.regime),
        "regime_source": regime.source,
        "volatility_level": regime.level if math.isfinite(regime.level) else None,
        "heat": book.exposure / book.portfolio_value if book.portfolio_value > 0 else None,
        "heat_limit": regime.heat_limit,
        "portfolio_value": report.broker_equity,
        "cash": report.broker_cash,
        "daily_pnl": _finite(day.pnl) if day else None,
        "daily_loss_basis": day.describe() if day else None,
        "drawdown_from_peak": _finite(st.drawdown),
        "high_water_mark": _finite(st.high_water.equity) if st.high_water else None,
        "reconciliation_passed": report.passed,
        "marks": _marks(cx),
    }


def _marks(cx: CycleContext) -> dict[str, list[Any]]:
    """symbol -> [session, close] of the last good close the cycle saw, for every symbol
    held or ordered today (the digest marks its positions at them)."""
    st = cx.state
    wanted = {p.symbol for ps in st.positions.values() for p in ps}
    wanted |= {i.symbol for i in st.outcome.intents}
    return {
        s: [lp.session.isoformat(), lp.price]
        for s, lp in sorted(st.market.last_prices.items())
        if s in wanted and math.isfinite(lp.price)
    }


def _side(signal: Signal) -> str:
    return "buy" if signal.action is SignalAction.BUY else "sell"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _terminal(dec: pipeline.Decision, res: OrderResult | None) -> tuple[str, str]:
    """A signal's terminal state and reason, from its decision and its order's result."""
    if dec.rejection is not None:
        state = "PENDING" if dec.park else "REJECTED"
        return state, f"{dec.rejection.stage}:{dec.rejection.reason_code}"
    if res is None:
        return "NOT_EXECUTED", "no order: reconciliation disputes the symbol"
    if res.status is IntentStatus.REJECTED or (res.status is IntentStatus.NEW and res.error):
        return "REJECTED", f"EXECUTION:{res.error or res.status}"
    return "EXECUTED", f"intent {res.intent_id} {res.status}"
