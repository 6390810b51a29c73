"""One daily cycle through every gate, in the reference system's order.

1. kill switches (entries halted by any active switch; exits still run)
2. market data (stale or bad data: ``bad_data`` switch, halt; no trading on bad data)
3. settle yesterday's orders (fills booked before anything is compared)
4. reconciliation gate (fail closed: ``reconciliation_failed`` switch, no entries)
5. stop-loss exits (3 x ATR below entry; submitted first)
6. daily-loss breaker (-2% from the persisted start-of-day value: no entries
   today) and the 5% drawdown kill switch
7. regime (VIX, or the documented realised-volatility proxy)
8. every enabled strategy, concurrently; pending signals re-evaluated
9. per strategy: regime -> correlation -> size, heat, cash (``pipeline.decide``)
10. order intents (exits, then entries) -> results -> signal terminal states
11. funnel, rejections, automatic kill switches, journal

Stop-loss exits come *after* the reconciliation gate, not before it as in the
reference: a sell sized from a local position the broker does not have would
open a short at Alpaca. Exits for symbols the reconciliation disagrees on are
skipped and reported.

A cycle is resumed after a crash by running the day again: every step before
the intents is a re-computation, and intents are keyed by (date, strategy,
symbol, side), so intents written before the crash are found, not resubmitted.

``plan=True`` runs steps 1-9 and returns the intents it would place: nothing
is written, nothing is submitted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from actors.messages import (
    CycleStatus,
    DataUnavailable,
    FetchSnapshot,
    GenerateSignals,
    GetKillSwitches,
    HeldPosition,
    IntentKind,
    IntentStatus,
    MarketSnapshot,
    OrderIntentSpec,
    OrderResult,
    OrderResults,
    PlaceOrders,
    Reconcile,
    ReconciliationReport,
    SettleOrders,
    Signal,
    SignalAction,
    Signals,
    StartCycle,
    TripKillSwitch,
)
from actors.risk import auto_switches, pipeline
from actors.risk.cash import CashLedger
from actors.risk.daily_loss import daily_loss_breached, daily_pnl
from actors.risk.kill_switch import disabled_strategies
from actors.risk.params import RiskParams
from actors.risk.pending import expiry_asof
from actors.risk.regime import RegimeDecision, detect_regime, volatility_proxy
from actors.risk.stops import check_stops
from actors.risk.switches import SwitchView, entries_blocked
from actors.strategies.params import StrategiesParams
from daemon.actor import ActorRef
from daemon.calendar import ExchangeCalendar
from daemon.clock import Clock
from daemon.errors import ActorStopped, AskTimeout
from daemon.logging import EventLog, EventType
from daemon.metrics import Metrics
from daemon.store import CycleJournal, CycleStep, SystemState
from daemon.store.pending import PendingStore
from daemon.store.signals import SignalStore

log = structlog.get_logger()

#: Kill switch tripped when the broker says the account may not trade.
BROKER_BLOCKED = "broker_trading_blocked"
#: What blocks entries in a forced re-run of a trading date whose cycle completed.
DAY_ALREADY_TRADED = "day_already_traded"


@dataclass(frozen=True, slots=True)
class CycleDeps:
    """What a cycle needs: actor refs, stores, parameters."""

    clock: Clock
    calendar: ExchangeCalendar
    journal: CycleJournal
    signals: SignalStore
    pending: PendingStore
    state: SystemState
    data_feed: ActorRef
    kill_switches: ActorRef
    order_manager: ActorRef
    reconciler: ActorRef
    strategies: Mapping[str, ActorRef]
    strategy_ids: Mapping[str, int]
    events: EventLog | None = None
    metrics: Metrics | None = None
    data_timeout_s: float = 300.0
    strategy_timeout_s: float = 300.0
    order_timeout_s: float = 600.0


@dataclass(slots=True)
class Outcome:
    status: CycleStatus
    reason: str
    raw: dict[str, int] = field(default_factory=dict)
    intents: list[OrderIntentSpec] = field(default_factory=list)
    results: list[OrderResult] = field(default_factory=list)
    funnel: dict[str, dict[str, int]] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    regime: str | None = None
    notes: list[str] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Cycle:
    """Runs one ``StartCycle``; ``plan=True`` writes and submits nothing."""

    def __init__(
        self,
        deps: CycleDeps,
        strategies: StrategiesParams,
        risk: RiskParams,
        msg: StartCycle,
        *,
        plan: bool = False,
        entries_blocked: str | None = None,
    ) -> None:
        self.d = deps
        self.params = strategies
        self.risk = risk
        self.msg = msg
        self.plan = plan
        # Set for a forced re-run of a completed trading date: exits and stops only.
        self.entries_blocked = entries_blocked
        self.started = time.perf_counter()

    # ------------------------------------------------------------ entry point

    async def run(self) -> Outcome:
        msg, d = self.msg, self.d
        if not self.plan:
            await d.journal.begin(msg.run_id, msg.asof, str(msg.trigger), d.clock.now())
            await self._event(EventType.CYCLE_STARTED, asof=str(msg.asof), trigger=str(msg.trigger))
        log.info("cycle_started", run_id=msg.run_id, asof=str(msg.asof), plan=self.plan)

        # 1. kill switches
        switches: list[SwitchView] = await d.kill_switches.ask(GetKillSwitches())
        blocking = entries_blocked(switches)
        if self.entries_blocked is not None:
            blocking = [*blocking, SwitchView(DAY_ALREADY_TRADED, self.entries_blocked, "cycle")]

        # 2. market data
        answer = await d.data_feed.ask(
            FetchSnapshot(msg.run_id, msg.asof), timeout=d.data_timeout_s
        )
        if answer.rejected and not self.plan:
            await d.signals.log_rejections(
                msg.run_id,
                pipeline.Stage.DATA,
                [(r.symbol, r.reason_code, {"details": r.details}) for r in answer.rejected],
            )
        if isinstance(answer, DataUnavailable):
            await self._trip(auto_switches.BAD_DATA, answer.reason)
            return Outcome(CycleStatus.HALTED, f"no trading on bad data: {answer.reason}")
        snap: MarketSnapshot = answer
        if not self.plan:
            await d.journal.step(msg.run_id, CycleStep.DATA, d.clock.now())

        # 3. settle earlier orders (after a START snapshot of the broker as we found it),
        # 4. reconciliation gate
        if not self.plan:
            await d.reconciler.ask(Reconcile(msg.run_id, "START"), timeout=d.order_timeout_s)
            await d.order_manager.ask(SettleOrders(), timeout=d.order_timeout_s)
        report: ReconciliationReport = await d.reconciler.ask(
            Reconcile(msg.run_id, "RECONCILIATION"), timeout=d.order_timeout_s
        )
        if not self.plan:
            await self._event(
                EventType.RECONCILIATION_CHECK,
                passed=report.passed,
                discrepancies=[_disc(x) for x in report.discrepancies],
                error=report.error,
            )
        disputed = {x.symbol for x in report.discrepancies if x.symbol}
        notes: list[str] = []
        if not report.passed:
            why = report.error or "; ".join(
                f"{x.kind} {x.symbol or ''} local {x.local:g} broker {x.broker:g}"
                for x in report.discrepancies
            )
            await self._trip(auto_switches.RECONCILIATION_FAILED, why)
            blocking = [*blocking, SwitchView(auto_switches.RECONCILIATION_FAILED, why, "risk")]
            notes.append(f"reconciliation failed: {why}")

        if report.error is None and not report.can_trade:
            why = "the broker account does not allow trading (trading_blocked or suspended)"
            await self._trip(BROKER_BLOCKED, why)
            blocking = [*blocking, SwitchView(BROKER_BLOCKED, why, "risk")]
            notes.append(why)

        # 5. stop-loss exits
        last = _last_prices(snap)
        stop_intents = await self._stop_exits(last, disputed, notes)

        # 6. daily loss and drawdown
        start_value = await self._start_of_day_value(report)
        pnl = daily_pnl(start_value, report.broker_equity) if start_value else 0.0
        if start_value and daily_loss_breached(
            start_value, report.broker_equity, self.risk.loss.daily_loss_limit
        ):
            reason = f"daily P&L {pnl:+.2%} beyond -{self.risk.loss.daily_loss_limit:.0%}"
            blocking = [*blocking, SwitchView("daily_loss_limit", reason, "risk")]
            notes.append(reason)
            await self._event(EventType.RISK_LIMIT_HIT, limit="daily_loss", pnl=pnl)

        # 7. regime
        regime = detect_regime(
            snap.volatility_index, volatility_proxy(snap.panel.close), self.risk.regime
        )
        if self.d.metrics is not None:
            self.d.metrics.daily_pnl_ratio.set(pnl)

        # 8. strategies (+ pending signals)
        disabled = disabled_strategies(switches)
        enabled = [
            n
            for n, p in self.params.items()
            if p.enabled and n not in disabled and n in d.strategies
        ]
        positions = {n: await d.signals.held_positions(d.strategy_ids[n]) for n in d.strategies}
        answers = await asyncio.gather(*(self._ask(n, snap, positions[n]) for n in enabled))
        pending = await d.pending.live(msg.asof)

        # 9. filters per strategy
        exposure = sum(
            abs(p.shares) * last.get(p.symbol, p.entry_price)
            for ps in positions.values()
            for p in ps
        )
        held_cost = {n: sum(p.shares * p.entry_price for p in ps) for n, ps in positions.items()}
        book = pipeline.Book(
            portfolio_value=report.broker_equity,
            exposure=exposure,
            cash=CashLedger(
                {n: p.capital for n, p in self.params.items()},
                report.broker_cash,
                committed=held_cost,
            ),
            held_symbols={p.symbol for ps in positions.values() for p in ps},
        )
        outcome = Outcome(CycleStatus.COMPLETED, "", regime=str(regime.regime), notes=notes)
        outcome.intents.extend(stop_intents)
        failures: list[str] = []
        decided: dict[str, list[pipeline.Decision]] = {}
        for ans in answers:
            sigs = list(ans.signals)
            if ans.error is not None:
                failures.append(f"{ans.strategy}: {ans.error}")
            stopped = {i.symbol for i in stop_intents if i.strategy == ans.strategy}
            sigs = [s for s in sigs if not (s.action is SignalAction.SELL and s.symbol in stopped)]
            sigs += [
                p.signal
                for p in pending
                if p.strategy == ans.strategy
                and p.symbol in snap.panel.symbols
                and p.symbol not in {s.symbol for s in sigs}
            ]
            decisions, funnel = pipeline.decide(
                ans.strategy,
                sigs,
                breakout=getattr(self.params, ans.strategy).breakout,
                blocking=blocking,
                regime=regime,
                close=snap.panel.close,
                symbols=snap.panel.symbols,
                book=book,
                correlation=self.risk.correlation,
            )
            decided[ans.strategy] = decisions
            outcome.raw[ans.strategy] = len(ans.signals)
            outcome.signals.extend(dec.signal for dec in decisions)  # what is persisted
            outcome.funnel[ans.strategy] = funnel.as_counts()
            for dec in decisions:
                if dec.accepted and not (
                    dec.signal.action is SignalAction.SELL and dec.signal.symbol in disputed
                ):
                    outcome.intents.append(_intent(dec, snap))
                elif dec.rejection is not None:
                    outcome.rejections.append(
                        {
                            "strategy": ans.strategy,
                            "symbol": dec.signal.symbol,
                            "stage": str(dec.rejection.stage),
                            "reason": dec.rejection.reason_code,
                            "details": dec.rejection.details,
                        }
                    )
        log.info(
            "signals_generated",
            run_id=msg.run_id,
            asof=str(msg.asof),
            raw_signals=outcome.raw,
            regime=str(regime.regime),
        )
        if self.plan:
            outcome.reason = f"plan: {len(outcome.intents)} orders would be placed"
            return outcome

        # 10. persist, place, settle
        ids = await self._persist(decided, answers)
        await d.journal.step(msg.run_id, CycleStep.SIGNALS, d.clock.now())
        await d.pending.expire(msg.asof)
        await self._park(decided, pending)
        await d.journal.step(msg.run_id, CycleStep.INTENTS, d.clock.now())
        results = await self._place(outcome.intents, ids)
        outcome.results = results
        await d.journal.step(msg.run_id, CycleStep.SUBMITTED, d.clock.now())
        await self._terminal_states(decided, ids, results, pending)
        for name, decisions in decided.items():
            accepted = {(dec.signal.symbol, _side(dec.signal)) for dec in decisions if dec.accepted}
            executed = sum(
                1
                for r in results
                if r.strategy == name and (r.symbol, r.side) in accepted and _went_through(r)
            )
            outcome.funnel[name]["executed"] = executed
            await d.signals.save_funnel(
                msg.run_id, msg.asof, d.strategy_ids[name], name, outcome.funnel[name]
            )
            for stage, count in outcome.funnel[name].items():
                if d.metrics is not None:
                    d.metrics.signals.labels(strategy=name, stage=stage).set(count)
        for rej in outcome.rejections:
            await d.signals.log_rejection(
                msg.run_id,
                d.strategy_ids[str(rej["strategy"])],
                str(rej["symbol"]),
                stage=str(rej["stage"]),
                reason_code=str(rej["reason"]),
                details=dict(rej["details"]),
            )
        await d.journal.step(msg.run_id, CycleStep.SETTLED, d.clock.now())
        await d.reconciler.ask(Reconcile(msg.run_id, "END"), timeout=d.order_timeout_s)

        await self._observe(report, regime, book)
        outcome.details = {
            "regime": str(regime.regime),
            "regime_source": regime.source,
            "volatility_level": regime.level if math.isfinite(regime.level) else None,
            "heat": book.exposure / book.portfolio_value if book.portfolio_value > 0 else None,
            "heat_limit": regime.heat_limit,
            "portfolio_value": report.broker_equity,
            "cash": report.broker_cash,
            "daily_pnl": pnl,
            "reconciliation_passed": report.passed,
        }

        # 11. automatic kill switches
        rejected = sum(1 for r in results if r.status is IntentStatus.REJECTED and not r.existing)
        order_errors = [r for r in results if r.status is IntentStatus.NEW and r.error]
        failed_cycle = bool(failures) and len(failures) == len(enabled) and bool(enabled)
        streak = await self._failure_streak(bool(failures) or bool(order_errors))
        ctx = auto_switches.RiskContext(
            reconciliation_passed=report.passed,
            daily_drawdown=max(0.0, -pnl),
            consecutive_failures=streak,
            rejected_orders=rejected,
            total_orders=len([r for r in results if not r.existing]),
            stale_data=False,
            bad_data_reason=None,
        )
        for switch, reason in auto_switches.evaluate(ctx, self.risk.kill_switches):
            if switch != auto_switches.RECONCILIATION_FAILED:
                await self._trip(switch, reason)
        if failed_cycle:
            outcome.status = CycleStatus.FAILED
            outcome.reason = "every strategy failed: " + "; ".join(failures)
        else:
            placed = sum(1 for r in results if not r.existing)
            outcome.reason = f"{placed} orders placed, {len(outcome.rejections)} signals rejected"
            if failures:
                outcome.reason += "; strategies failed: " + "; ".join(failures)
            if notes:
                outcome.reason += "; " + "; ".join(notes)
        return outcome

    # ------------------------------------------------------------ steps

    async def _ask(self, name: str, snap: MarketSnapshot, held: list[HeldPosition]) -> Signals:
        try:
            result: Signals = await self.d.strategies[name].ask(
                GenerateSignals(
                    snap, positions=tuple(held), capital=getattr(self.params, name).capital
                ),
                timeout=self.d.strategy_timeout_s,
            )
        except (AskTimeout, ActorStopped) as exc:
            return Signals(snap.run_id, snap.asof, name, (), error=str(exc))
        except Exception as exc:  # the strategy actor crashed on it (and restarts)
            return Signals(snap.run_id, snap.asof, name, (), error=f"{type(exc).__name__}: {exc}")
        return result

    async def _stop_exits(
        self, last: dict[str, float], disputed: set[str], notes: list[str]
    ) -> list[OrderIntentSpec]:
        rows = await self.d.signals.stops()
        checks = check_stops([(r["strategy"], r["symbol"], r["stop_price"]) for r in rows], last)
        intents = []
        by_key = {(r["strategy"], r["symbol"]): r for r in rows}
        for chk in checks:
            if not chk.triggered:
                continue
            row = by_key[(chk.strategy, chk.symbol)]
            if chk.symbol in disputed:
                notes.append(f"stop for {chk.symbol} not sent: reconciliation disagrees on it")
                continue
            intents.append(
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
            await self._event(
                EventType.RISK_LIMIT_HIT,
                limit="stop_loss",
                symbol=chk.symbol,
                strategy=chk.strategy,
                stop=chk.stop,
                price=chk.price,
            )
        return intents

    async def _start_of_day_value(self, report: ReconciliationReport) -> float | None:
        """The persisted start-of-day value: the first equity seen for this session."""
        if report.error is not None or report.broker_equity <= 0:
            return None
        key = f"start_of_day_equity:{self.msg.asof.isoformat()}"
        value = await self.d.state.get(key)
        if value is None:
            value = report.broker_equity
            if not self.plan:
                await self.d.state.set(key, value, self.d.clock.now(), durable=True)
        return float(value)

    async def _persist(
        self, decided: Mapping[str, list[pipeline.Decision]], answers: list[Signals]
    ) -> dict[tuple[str, str, str], int]:
        ids: dict[tuple[str, str, str], int] = {}
        for name, decisions in decided.items():
            sigs = [dec.signal for dec in decisions]
            new_ids = await self.d.signals.record_signals(
                self.msg.run_id, self.msg.asof, self.d.strategy_ids[name], sigs
            )
            for sig, sid in zip(sigs, new_ids, strict=True):
                ids[(name, sig.symbol, str(sig.action))] = sid
                await self._event(
                    EventType.SIGNAL_GENERATED,
                    strategy=name,
                    symbol=sig.symbol,
                    action=str(sig.action),
                    confidence=round(sig.confidence, 4),
                    shares=sig.shares,
                    reasoning=sig.reasoning,
                )
        for dec_list in decided.values():
            for dec in dec_list:
                if dec.rejection is not None:
                    await self._event(
                        EventType.SIGNAL_REJECTED,
                        strategy=dec.signal.strategy,
                        symbol=dec.signal.symbol,
                        stage=str(dec.rejection.stage),
                        reason=dec.rejection.reason_code,
                        details=dec.rejection.details,
                    )
        return ids

    async def _park(
        self, decided: Mapping[str, list[pipeline.Decision]], pending: list[Any]
    ) -> None:
        now = self.d.clock.now()
        sessions = self.d.calendar.sessions_between(
            self.msg.asof, self.msg.asof + dt.timedelta(days=14)
        )
        until = expiry_asof(self.msg.asof, sessions, self.risk.pending.decay_sessions)
        for name, decisions in decided.items():
            for dec in decisions:
                if dec.park and dec.rejection is not None:
                    await self.d.pending.park(
                        self.d.strategy_ids[name],
                        dec.signal,
                        dec.rejection.reason_code,
                        asof=self.msg.asof,
                        expires_asof=until,
                        at=now,
                    )

    async def _place(
        self, intents: list[OrderIntentSpec], ids: Mapping[tuple[str, str, str], int]
    ) -> list[OrderResult]:
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
            )
            for i in sorted(intents, key=lambda i: i.side != "sell")
        )
        answer: OrderResults = await self.d.order_manager.ask(
            PlaceOrders(self.msg.run_id, self.msg.asof, specs), timeout=self.d.order_timeout_s
        )
        for r in answer.results:
            event = {
                IntentStatus.REJECTED: EventType.ORDER_REJECTED,
                IntentStatus.FILLED: EventType.ORDER_FILLED,
            }.get(r.status, EventType.ORDER_SUBMITTED)
            await self._event(
                EventType.ORDER_INTENT_CREATED,
                intent_id=r.intent_id,
                strategy=r.strategy,
                symbol=r.symbol,
                side=r.side,
                qty=r.qty,
                existing=r.existing,
            )
            await self._event(
                event,
                intent_id=r.intent_id,
                status=str(r.status),
                filled_qty=r.filled_qty,
                avg_price=r.avg_price,
                error=r.error,
            )
        return list(answer.results)

    async def _terminal_states(
        self,
        decided: Mapping[str, list[pipeline.Decision]],
        ids: Mapping[tuple[str, str, str], int],
        results: list[OrderResult],
        pending: list[Any],
    ) -> None:
        by_key = {(r.strategy, r.symbol, r.side): r for r in results}
        rows: list[tuple[int, str, str]] = []
        for name, decisions in decided.items():
            for dec in decisions:
                sid = ids.get((name, dec.signal.symbol, str(dec.signal.action)))
                if sid is None:
                    continue
                if dec.rejection is not None:
                    state = "PENDING" if dec.park else "REJECTED"
                    rows.append((sid, state, f"{dec.rejection.stage}:{dec.rejection.reason_code}"))
                    continue
                side = "buy" if dec.signal.action is SignalAction.BUY else "sell"
                res = by_key.get((name, dec.signal.symbol, side))
                if res is None:
                    rows.append(
                        (
                            sid,
                            "NOT_EXECUTED",
                            "no order: reconciliation disputes the symbol",
                        )
                    )
                elif res.status is IntentStatus.REJECTED or (
                    res.status is IntentStatus.NEW and res.error
                ):
                    rows.append((sid, "REJECTED", f"EXECUTION:{res.error or res.status}"))
                else:
                    rows.append((sid, "EXECUTED", f"intent {res.intent_id} {res.status}"))
        await self.d.signals.set_terminal(rows, self.d.clock.now())
        done = {
            (r.strategy, r.symbol)
            for r in results
            if r.status is not IntentStatus.REJECTED and r.side == "buy"
        }
        for p in pending:
            if (p.strategy, p.symbol) in done:
                await self.d.pending.resolve(p.id, "EXECUTED", self.d.clock.now())

    async def _observe(
        self, report: ReconciliationReport, regime: RegimeDecision, book: pipeline.Book
    ) -> None:
        m = self.d.metrics
        if m is None:
            return
        m.portfolio_value.set(report.broker_equity)
        m.heat_ratio.set(book.exposure / book.portfolio_value if book.portfolio_value > 0 else 0.0)
        m.heat_limit_ratio.set(regime.heat_limit)
        for r in ("low_volatility", "normal", "high_volatility", "crisis"):
            m.regime.labels(regime=r).set(1.0 if str(regime.regime) == r else 0.0)
        m.positions_count.set(await self.d.signals.open_positions())
        m.reconciliation_passed.set(1.0 if report.passed else 0.0)
        m.reconciliation_discrepancies.set(len(report.discrepancies))
        if report.passed:
            m.last_reconciliation_success.set(report.at.timestamp())

    async def _failure_streak(self, failed: bool) -> int:
        streak = int(await self.d.state.get("consecutive_failures", 0))
        streak = streak + 1 if failed else 0
        await self.d.state.set("consecutive_failures", streak, self.d.clock.now())
        return streak

    async def _trip(self, switch: str, reason: str) -> None:
        if self.plan:
            return
        tripped = await self.d.kill_switches.ask(TripKillSwitch(switch, reason, "risk"))
        if tripped:
            await self._event(EventType.KILL_SWITCH_TRIGGERED, switch=switch, reason=reason)

    async def _event(self, event: EventType, **fields: Any) -> None:
        if self.d.events is not None and not self.plan:
            await self.d.events.write(self.msg.run_id, event, self.d.clock.now(), **fields)


def _side(signal: Signal) -> str:
    return "buy" if signal.action is SignalAction.BUY else "sell"


def _went_through(result: OrderResult) -> bool:
    """An intent that reached the broker and was not refused (filled, accepted, pending)."""
    if result.status is IntentStatus.REJECTED:
        return False
    return not (result.status is IntentStatus.NEW and result.error)


def _last_prices(snap: MarketSnapshot) -> dict[str, float]:
    """Each symbol's last finite close (vectorised: one pass over the panel)."""
    close = snap.panel.close
    if close.shape[0] == 0:
        return {}
    finite = np.isfinite(close)
    has = [bool(x) for x in np.any(finite, axis=0).reshape(-1)]
    last_row = close.shape[0] - 1 - np.argmax(finite[::-1], axis=0)
    values = close[last_row, np.arange(close.shape[1])]
    return {s: float(v) for s, v, ok in zip(snap.panel.symbols, values, has, strict=True) if ok}


def _intent(dec: pipeline.Decision, snap: MarketSnapshot) -> OrderIntentSpec:
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
    )


def _disc(x: Any) -> dict[str, Any]:
    return {"kind": x.kind, "symbol": x.symbol, "local": x.local, "broker": x.broker}


__all__ = ["Cycle", "CycleDeps", "Outcome", "RegimeDecision"]
