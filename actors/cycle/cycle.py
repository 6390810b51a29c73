"""One daily cycle through every gate, in the reference system's order, as a list of steps.

``Cycle.STEPS`` runs in order over one shared ``CycleState``; a step may end the
cycle early by returning its ``Outcome``:

1. ``kill_switches``: entries are halted by any active switch; exits still run.
2. ``market_data``: a market-wide data failure halts the cycle (``bad_data``, which
   clears itself on the next good data); a symbol with bad data is dropped from
   today's trading but its open position is still checked against its stop.
3. ``reconcile``: settle earlier orders, then the reconciliation gate (fail closed:
   ``reconciliation_failed``, no entries); an account the broker blocks trips
   ``broker_blocked``.
4. ``stop_losses``: every open position against its 3 x ATR stop, on the last good
   close (not for a symbol the reconciliation disputes, nor a probable split).
5. ``loss_limits``: the day's loss against the recorded closes (-2 % breaker: no
   entries today; 5 %: the ``daily_drawdown`` kill switch) and the drawdown from
   the high-water mark (``max_drawdown``); see ``actors.risk.drawdown``.
6. ``regime``: VIX when it is fresh, else the realised-volatility proxy.
7. ``strategies``: every enabled strategy, concurrently; pending signals re-priced.
8. ``filters``: per strategy regime -> correlation -> size, heat, cash
   (``pipeline.decide``); a date that already has entries from another run gets no
   second round of entries.
9. ``place``: signals and order intents written, orders placed, terminal states,
   funnel and rejections, the END snapshot.
10. ``automatic_switches``: the automatic kill switches, the cycle's summary.

Stop-loss exits come *after* the reconciliation gate, not before it as in the
reference: a sell sized from a local position the broker does not have would
open a short at Alpaca.

A cycle is resumed after a crash by running the day again: every step before
the intents is a re-computation, and intents are keyed by (date, strategy,
symbol, side), so intents written before the crash are found, not resubmitted.

``plan=True`` runs steps 1-8 and returns the intents it would place: nothing
is written, nothing is submitted, no switch is tripped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import structlog

from actors.cycle import kill_switches
from actors.cycle.kill_switch_board import disabled_strategies
from actors.cycle.kill_switches import SwitchView, entries_blocked
from actors.data_feed.validator import PROBABLE_SPLIT
from actors.events import EventType
from actors.market.calendar import ExchangeCalendar
from actors.messages import (
    Alert,
    ClearKillSwitch,
    CycleStatus,
    DataUnavailable,
    FetchSnapshot,
    GenerateSignals,
    GetClosingEquity,
    GetKillSwitches,
    HeldPosition,
    IntentKind,
    IntentStatus,
    LastPrice,
    MarketSnapshot,
    OrderIntentSpec,
    OrderResult,
    OrderResults,
    PlaceOrders,
    Reconcile,
    ReconciliationReport,
    SettleOrders,
    Severity,
    Signal,
    SignalAction,
    Signals,
    StartCycle,
    TripKillSwitch,
)
from actors.metrics import Metrics
from actors.risk import pipeline
from actors.risk.cash import CashLedger
from actors.risk.drawdown import (
    DayLoss,
    HighWater,
    drawdown_from_peak,
    measure_day_loss,
    update_high_water,
)
from actors.risk.params import RiskParams
from actors.risk.pending import expiry_asof, reprice
from actors.risk.regime import RegimeDecision, detect_regime, volatility_proxy
from actors.risk.stops import check_stops
from actors.store.cycles import CycleJournal, CycleStep
from actors.store.equity import EquityCloses
from actors.store.orders import OrderStore
from actors.store.pending import PendingRow, PendingStore
from actors.store.signals import SignalStore
from actors.store.state import KillSwitchStore, SystemState
from actors.strategies.params import StrategiesParams
from daemon.actor import ActorRef
from daemon.clock import Clock
from daemon.errors import ActorStopped, AskTimeout
from daemon.logging import EventLog

log = structlog.get_logger()

#: Kill switch tripped when the broker says the account may not trade.
BROKER_BLOCKED = kill_switches.BROKER_BLOCKED
#: What blocks entries in a forced re-run of a trading date whose cycle completed.
DAY_ALREADY_TRADED = "day_already_traded"
#: The reason code of entries refused because the date already has another run's entries.
ENTRIES_ALREADY_PLACED = "entries_already_placed"
#: Where the high-water mark of the equity is kept (``SystemState``).
HIGH_WATER_KEY = "equity_high_water"

Publish = Callable[[object], Awaitable[None]]


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
    orders: OrderStore
    equity: EquityCloses
    switch_records: KillSwitchStore
    events: EventLog | None = None
    metrics: Metrics | None = None
    alert: Publish | None = None
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


@dataclass(slots=True)
class CycleState:
    """What the steps of one cycle share; each step reads what earlier ones left."""

    switches: list[SwitchView] = field(default_factory=list)
    blocking: list[SwitchView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    snap: MarketSnapshot | None = None
    report: ReconciliationReport | None = None
    disputed: set[str] = field(default_factory=set)
    stop_intents: list[OrderIntentSpec] = field(default_factory=list)
    day: DayLoss | None = None
    high_water: HighWater | None = None
    drawdown: float = math.nan
    regime: RegimeDecision | None = None
    enabled: list[str] = field(default_factory=list)
    positions: dict[str, list[HeldPosition]] = field(default_factory=dict)
    answers: list[Signals] = field(default_factory=list)
    pending: list[PendingRow] = field(default_factory=list)
    book: pipeline.Book | None = None
    decided: dict[str, list[pipeline.Decision]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ids: dict[tuple[str, str, str], int] = field(default_factory=dict)
    results: list[OrderResult] = field(default_factory=list)
    outcome: Outcome = field(default_factory=lambda: Outcome(CycleStatus.COMPLETED, ""))

    @property
    def market(self) -> MarketSnapshot:
        assert self.snap is not None, "market_data has not run"
        return self.snap

    @property
    def recon(self) -> ReconciliationReport:
        assert self.report is not None, "reconcile has not run"
        return self.report


Step = Callable[["Cycle", CycleState], Awaitable[Outcome | None]]


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
        # Set for a forced re-run of a trading date whose cycle completed: exits and stops only.
        self.entries_blocked = entries_blocked
        self.started = time.perf_counter()
        self._equity = 0.0  # the broker's equity, once reconcile has read it

    # ------------------------------------------------------------ entry point

    async def run(self) -> Outcome:
        msg, d = self.msg, self.d
        if not self.plan:
            await d.journal.begin(msg.run_id, msg.asof, str(msg.trigger), d.clock.now())
            await self._event(EventType.CYCLE_STARTED, asof=str(msg.asof), trigger=str(msg.trigger))
        log.info("cycle_started", run_id=msg.run_id, asof=str(msg.asof), plan=self.plan)
        st = CycleState()
        for step in self.STEPS:
            ended = await step(self, st)
            if ended is not None:
                return ended
        return st.outcome

    # ------------------------------------------------------------ 1. kill switches

    async def kill_switches(self, st: CycleState) -> Outcome | None:
        st.switches = await self.d.kill_switches.ask(GetKillSwitches())
        st.blocking = entries_blocked(st.switches)
        if self.entries_blocked is not None:
            st.blocking.append(SwitchView(DAY_ALREADY_TRADED, self.entries_blocked, "cycle"))
        return None

    # ------------------------------------------------------------ 2. market data

    async def market_data(self, st: CycleState) -> Outcome | None:
        msg, d = self.msg, self.d
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
            await self._trip(kill_switches.BAD_DATA, answer.reason)
            return Outcome(CycleStatus.HALTED, f"no trading on bad data: {answer.reason}")
        st.snap = answer
        await self._clear_bad_data(st)
        st.notes.extend(answer.notes)
        if not self.plan:
            await d.journal.step(msg.run_id, CycleStep.DATA, d.clock.now())
        return None

    async def _clear_bad_data(self, st: CycleState) -> None:
        """Good data again: ``bad_data`` (a condition, not an operator latch) clears itself."""
        stale = [
            s for s in st.switches if s.name in kill_switches.SELF_CLEARING and s.source == "risk"
        ]
        if not stale:
            return
        st.blocking = [s for s in st.blocking if s not in stale]
        if self.plan:
            return
        for switch in stale:
            reason = f"market data good again for {self.msg.asof}"
            cleared = await self.d.kill_switches.ask(ClearKillSwitch(switch.name, reason, "risk"))
            if cleared:
                await self._event(EventType.KILL_SWITCH_CLEARED, switch=switch.name, reason=reason)

    # ------------------------------------------------------------ 3. reconciliation

    async def reconcile(self, st: CycleState) -> Outcome | None:
        msg, d = self.msg, self.d
        if not self.plan:
            await d.reconciler.ask(Reconcile(msg.run_id, "START"), timeout=d.order_timeout_s)
            await d.order_manager.ask(SettleOrders(), timeout=d.order_timeout_s)
        report: ReconciliationReport = await d.reconciler.ask(
            Reconcile(msg.run_id, "RECONCILIATION"), timeout=d.order_timeout_s
        )
        st.report = report
        self._equity = report.broker_equity if report.error is None else 0.0
        if not self.plan:
            await self._event(
                EventType.RECONCILIATION_CHECK,
                passed=report.passed,
                discrepancies=[_disc(x) for x in report.discrepancies],
                error=report.error,
            )
        st.disputed = {x.symbol for x in report.discrepancies if x.symbol}
        if not report.passed:
            why = report.error or "; ".join(
                f"{x.kind} {x.symbol or ''} local {x.local:g} broker {x.broker:g}"
                for x in report.discrepancies
            )
            await self._block(st, kill_switches.RECONCILIATION_FAILED, why, trip=True)
            st.notes.append(f"reconciliation failed: {why}")
        if report.error is None and not report.can_trade:
            why = "the broker account does not allow trading (trading_blocked or suspended)"
            await self._block(st, BROKER_BLOCKED, why, trip=True)
            st.notes.append(why)
        return None

    # ------------------------------------------------------------ 4. stop losses

    async def stop_losses(self, st: CycleState) -> Outcome | None:
        snap = st.market
        rows = await self.d.signals.stops()
        held_back = {r.symbol for r in snap.rejected if r.reason_code == PROBABLE_SPLIT}
        rejected = {r.symbol: r for r in snap.rejected}
        prices = {s: lp.price for s, lp in snap.last_prices.items()}
        if not snap.last_prices:  # a feed that gives no last prices: the valid panel's
            prices = _last_prices(snap)
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
                await self._bad_data_on_held(chk.symbol, why.reason_code, why.details, snap)
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
            await self._event(
                EventType.RISK_LIMIT_HIT,
                limit="stop_loss",
                symbol=chk.symbol,
                strategy=chk.strategy,
                stop=chk.stop,
                price=chk.price,
            )
        return None

    async def _bad_data_on_held(
        self, symbol: str, code: str, details: str, snap: MarketSnapshot
    ) -> None:
        """A held symbol's data was rejected today: tell the operator which price guarded it."""
        last: LastPrice | None = snap.last_prices.get(symbol)
        guard = (
            f"stop checked at the last good close {last.price:.2f} of {last.session}"
            if last is not None
            else "no good close at all: its stop could not be checked"
        )
        text = f"held {symbol}: data rejected today ({code}: {details}); {guard}"
        if self.plan or self.d.alert is None:
            return
        await self.d.alert(
            Alert(
                key=f"held_bad_data:{symbol}",
                severity=Severity.WARNING if last is not None else Severity.CRITICAL,
                summary=text,
                details={"symbol": symbol, "reason": code, "asof": str(self.msg.asof)},
                at=self.d.clock.now(),
            )
        )

    # ------------------------------------------------------------ 5. loss limits

    async def loss_limits(self, st: CycleState) -> Outcome | None:
        report = st.recon
        if report.error is not None or not report.broker_equity > 0:
            st.notes.append("daily loss and drawdown not measured: the broker was not read")
            return None
        st.day = await self._day_loss(report)
        limit = self.risk.loss.daily_loss_limit
        if st.day.breached(limit):
            reason = f"daily loss {st.day.loss:.2%} beyond -{limit:.0%} ({st.day.describe()})"
            st.blocking.append(SwitchView("daily_loss_limit", reason, "risk"))
            st.notes.append(reason)
            await self._event(EventType.RISK_LIMIT_HIT, limit="daily_loss", pnl=st.day.pnl)
        elif not st.day.known:
            st.notes.append(f"daily loss unknown: {st.day.describe()}")
        await self._high_water(st, report.broker_equity)
        if self.d.metrics is not None and math.isfinite(st.day.pnl):
            self.d.metrics.daily_pnl_ratio.set(st.day.pnl)
        return None

    async def _day_loss(self, report: ReconciliationReport) -> DayLoss:
        """Record what the broker says about closes, fill gaps from its history, measure."""
        d, now = self.d, self.d.clock.now()
        cal = d.calendar
        today = now.astimezone(cal.tz).date()
        in_session = cal.is_session(today) and cal.session_open(today) <= now < cal.session_close(
            today
        )
        latest = _last_closed_session(cal, now)
        previous = cal.previous_session(latest)
        if not self.plan:
            reference = cal.previous_session(today)  # the broker's "previous trading day"
            if report.broker_last_equity is not None:
                await d.equity.record(reference, report.broker_last_equity, "last_equity", now)
            if not in_session:
                await d.equity.record(latest, report.broker_equity, "after_close", now)
        closes = await d.equity.get_many((latest, previous))
        missing = [s for s in (latest, previous) if s not in closes]
        if missing:
            known = await self._broker_closes(missing)
            closes.update(known)
            for session, equity in known.items():
                if not self.plan:
                    await d.equity.record(session, equity, "broker_history", now)
        if not in_session and latest not in closes:
            closes[latest] = report.broker_equity
        return measure_day_loss(
            closes,
            session=latest,
            previous=previous,
            equity=report.broker_equity,
            in_session=in_session,
        )

    async def _broker_closes(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        try:
            answer: dict[dt.date, float] = await self.d.reconciler.ask(
                GetClosingEquity(tuple(sessions)), timeout=self.d.order_timeout_s
            )
        except (AskTimeout, ActorStopped) as exc:
            log.warning("closing_equity_unavailable", error=str(exc))
            return {}
        return answer

    async def _high_water(self, st: CycleState, equity: float) -> None:
        d = self.d
        cleared = await d.switch_records.last_cleared(kill_switches.MAX_DRAWDOWN)
        stored = HighWater.from_dict(await d.state.get(HIGH_WATER_KEY))
        if stored is None:  # a first run after an upgrade: start from the recorded closes
            peak = await d.equity.peak()
            stored = HighWater(peak) if peak is not None else None
        st.high_water = update_high_water(stored, equity, cleared_at=cleared)
        st.drawdown = drawdown_from_peak(st.high_water.equity, equity)
        if not self.plan and st.high_water != stored:
            await d.state.set(HIGH_WATER_KEY, st.high_water.as_dict(), d.clock.now())

    # ------------------------------------------------------------ 6. regime

    async def regime(self, st: CycleState) -> Outcome | None:
        snap = st.market
        vix = snap.volatility_index
        if vix is not None:
            stale = self._vix_too_old(snap)
            if stale is not None:
                st.notes.append(stale)
                vix = None
        st.regime = detect_regime(vix, volatility_proxy(snap.panel.close), self.risk.regime)
        return None

    def _vix_too_old(self, snap: MarketSnapshot) -> str | None:
        """Why the VIX value must not be used (too old, or of unknown date), or None."""
        cal = self.d.calendar
        last = cal.previous_session(self.msg.asof)
        limit = self.risk.regime.max_vix_age_sessions
        when = snap.volatility_index_date
        if when is None:
            return "VIX of unknown date: using the realised-volatility proxy"
        age = 0 if when >= last else len(cal.sessions_between(when, last)) - 1
        if age <= limit:
            return None
        return (
            f"VIX last value is from {when}, {age} sessions before {last} "
            f"(risk.regime.max_vix_age_sessions = {limit}): using the realised-volatility proxy"
        )

    # ------------------------------------------------------------ 7. strategies

    async def strategies(self, st: CycleState) -> Outcome | None:
        d, snap = self.d, st.market
        disabled = disabled_strategies(st.switches)
        st.enabled = [
            n
            for n, p in self.params.items()
            if p.enabled and n not in disabled and n in d.strategies
        ]
        st.positions = {n: await d.signals.held_positions(d.strategy_ids[n]) for n in d.strategies}
        st.answers = list(
            await asyncio.gather(*(self._ask(n, snap, st.positions[n]) for n in st.enabled))
        )
        st.pending = await d.pending.live(self.msg.asof)
        return None

    def _risk_capital(self, name: str) -> float:
        if self.risk.sizing_base == "portfolio" and self._equity > 0:
            return self._equity
        return float(getattr(self.params, name).capital)

    async def _ask(self, name: str, snap: MarketSnapshot, held: list[HeldPosition]) -> Signals:
        try:
            result: Signals = await self.d.strategies[name].ask(
                GenerateSignals(
                    snap,
                    positions=tuple(held),
                    capital=getattr(self.params, name).capital,
                    risk_capital=self._risk_capital(name),
                    stop_atr_multiple=self._stop_multiple(name),
                ),
                timeout=self.d.strategy_timeout_s,
            )
        except (AskTimeout, ActorStopped) as exc:
            return Signals(snap.run_id, snap.asof, name, (), error=str(exc))
        except Exception as exc:  # the strategy actor crashed on it (and restarts)
            return Signals(snap.run_id, snap.asof, name, (), error=f"{type(exc).__name__}: {exc}")
        return result

    def _stop_multiple(self, name: str) -> float:
        return self.params.stop_atr_multiple(name, self.risk.loss.stop_atr_multiple)

    # ------------------------------------------------------------ 8. filters

    async def filters(self, st: CycleState) -> Outcome | None:
        snap, report = st.market, st.recon
        st.book = self._book(st, report, await self.d.orders.cash_flows_by_strategy())
        out = st.outcome
        out.regime = str(_regime(st).regime)
        out.notes = st.notes
        out.intents.extend(st.stop_intents)
        earlier = await self._earlier_entries()
        for ans in st.answers:
            if ans.error is not None:
                st.failures.append(f"{ans.strategy}: {ans.error}")
            sigs, refused = _second_round(self._signals_for(ans, st), earlier, ans.strategy)
            decisions, funnel = pipeline.decide(
                ans.strategy,
                sigs,
                breakout=getattr(self.params, ans.strategy).breakout,
                blocking=st.blocking,
                regime=_regime(st),
                close=snap.panel.close,
                symbols=snap.panel.symbols,
                book=st.book,
                correlation=self.risk.correlation,
            )
            funnel.raw += len(refused)
            decisions = refused + decisions
            st.decided[ans.strategy] = decisions
            out.raw[ans.strategy] = len(ans.signals)
            out.signals.extend(dec.signal for dec in decisions)
            out.funnel[ans.strategy] = funnel.as_counts()
            self._collect(ans.strategy, decisions, st)
        log.info(
            "signals_generated",
            run_id=self.msg.run_id,
            asof=str(self.msg.asof),
            raw_signals=out.raw,
            regime=out.regime,
        )
        if self.plan:
            out.reason = f"plan: {len(out.intents)} orders would be placed"
            return out
        return None

    def _book(
        self, st: CycleState, report: ReconciliationReport, flows: Mapping[str, float]
    ) -> pipeline.Book:
        """The portfolio as the filters see it; each strategy's realised P&L from its trades."""
        last = {s: lp.price for s, lp in st.market.last_prices.items()} or _last_prices(st.market)
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
                {n: p.capital for n, p in self.params.items()},
                report.broker_cash,
                committed=committed,
                # cash flows = realised P&L - cost of what is still held
                realized={n: flows.get(n, 0.0) + committed.get(n, 0.0) for n in committed},
            ),
            held_symbols={p.symbol for ps in st.positions.values() for p in ps},
        )

    def _signals_for(self, ans: Signals, st: CycleState) -> list[Signal]:
        """The strategy's signals, less exits its stops already send, plus its pending ones."""
        stopped = {i.symbol for i in st.stop_intents if i.strategy == ans.strategy}
        sigs = [
            s for s in ans.signals if not (s.action is SignalAction.SELL and s.symbol in stopped)
        ]
        own = {s.symbol for s in sigs}
        for p in st.pending:
            if p.strategy != ans.strategy or p.symbol in own:
                continue
            fresh = self._reprice(p, st)
            if fresh is not None:
                sigs.append(fresh)
        return sigs

    def _reprice(self, p: PendingRow, st: CycleState) -> Signal | None:
        """A pending signal priced and sized on today's data (None: not tradable today)."""
        snap = st.market
        if p.symbol not in snap.panel.symbols:
            return None
        col = snap.panel.symbols.index(p.symbol)
        price = float(snap.panel.close[-1, col]) if len(snap.panel.dates) else math.nan
        atr_rows = snap.indicators.get("atr14")
        atr = float(atr_rows[-1, col]) if atr_rows is not None and len(atr_rows) else math.nan
        params = getattr(self.params, p.strategy)
        return reprice(
            p.signal,
            price=price,
            atr=atr,
            capital=float(params.capital),
            risk_capital=self._risk_capital(p.strategy),
            risk_per_trade=float(params.risk_per_trade),
            stop_atr_multiple=self._stop_multiple(p.strategy),
            since=p.created_asof,
        )

    def _collect(self, name: str, decisions: list[pipeline.Decision], st: CycleState) -> None:
        snap = st.market
        for dec in decisions:
            if dec.accepted and not (
                dec.signal.action is SignalAction.SELL and dec.signal.symbol in st.disputed
            ):
                st.outcome.intents.append(_intent(dec, snap, self._stop_multiple(name)))
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

    async def _earlier_entries(self) -> dict[tuple[str, str], str]:
        """(strategy, symbol) -> run id of entry intents other runs wrote for this date."""
        rows = await self.d.orders.intents_for(asof=self.msg.asof)
        return {
            (r.strategy, r.symbol): r.run_id
            for r in rows
            if r.kind is IntentKind.ENTRY and r.run_id != self.msg.run_id
        }

    # ------------------------------------------------------------ 9. place

    async def place(self, st: CycleState) -> Outcome | None:
        msg, d, out = self.msg, self.d, st.outcome
        st.ids = await self._persist(st.decided)
        await d.journal.step(msg.run_id, CycleStep.SIGNALS, d.clock.now())
        await d.pending.expire(msg.asof)
        await self._park(st.decided)
        await d.journal.step(msg.run_id, CycleStep.INTENTS, d.clock.now())
        st.results = await self._place(out.intents, st.ids)
        out.results = st.results
        await d.journal.step(msg.run_id, CycleStep.SUBMITTED, d.clock.now())
        await self._terminal_states(st.decided, st.ids, st.results, st.pending)
        await self._save_funnel(st)
        for rej in out.rejections:
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
        await self._observe(st)
        out.details = self._details(st)
        return None

    async def _save_funnel(self, st: CycleState) -> None:
        d, out = self.d, st.outcome
        for name, decisions in st.decided.items():
            accepted = {(dec.signal.symbol, _side(dec.signal)) for dec in decisions if dec.accepted}
            executed = sum(
                1
                for r in st.results
                if r.strategy == name and (r.symbol, r.side) in accepted and _went_through(r)
            )
            out.funnel[name]["executed"] = executed
            await d.signals.save_funnel(
                self.msg.run_id, self.msg.asof, d.strategy_ids[name], name, out.funnel[name]
            )
            if d.metrics is not None:
                for stage, count in out.funnel[name].items():
                    d.metrics.signals.labels(strategy=name, stage=stage).set(count)

    def _details(self, st: CycleState) -> dict[str, Any]:
        report, regime, book = st.recon, _regime(st), st.book
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
        }

    # ------------------------------------------------------------ 10. automatic switches

    async def automatic_switches(self, st: CycleState) -> Outcome | None:
        out, results = st.outcome, st.results
        rejected = sum(1 for r in results if r.status is IntentStatus.REJECTED and not r.existing)
        order_errors = [r for r in results if r.status is IntentStatus.NEW and r.error]
        blocked = [r for r in results if r.error_code == "account_blocked"]
        if blocked:
            why = f"the broker refused an order: {blocked[0].error}"
            await self._trip(BROKER_BLOCKED, why)
            out.notes.append(why)
        failed_cycle = (
            bool(st.failures) and len(st.failures) == len(st.enabled) and bool(st.enabled)
        )
        streak = await self._failure_streak(bool(st.failures) or bool(order_errors))
        day_loss = st.day.loss if st.day is not None and st.day.known else 0.0
        ctx = kill_switches.RiskContext(
            reconciliation_passed=st.recon.passed,
            daily_drawdown=day_loss,
            consecutive_failures=streak,
            rejected_orders=rejected,
            total_orders=len([r for r in results if not r.existing]),
            stale_data=False,
            bad_data_reason=None,
            drawdown_from_peak=st.drawdown if math.isfinite(st.drawdown) else 0.0,
            peak_equity=st.high_water.equity if st.high_water else 0.0,
        )
        for switch, reason in kill_switches.evaluate(ctx, self.risk.kill_switches):
            if switch != kill_switches.RECONCILIATION_FAILED:
                await self._trip(switch, reason)
        if failed_cycle:
            out.status = CycleStatus.FAILED
            out.reason = "every strategy failed: " + "; ".join(st.failures)
            return None
        accepted = sum(1 for r in results if not r.existing and _went_through(r))
        out.reason = f"{accepted} orders placed, {len(out.rejections)} signals rejected"
        refused = sum(1 for r in results if not r.existing and not _went_through(r))
        if refused:
            out.reason += f", {refused} refused"
        if st.failures:
            out.reason += "; strategies failed: " + "; ".join(st.failures)
        if out.notes:
            out.reason += "; " + "; ".join(out.notes)
        return None

    STEPS: ClassVar[tuple[Step, ...]] = (
        kill_switches,
        market_data,
        reconcile,
        stop_losses,
        loss_limits,
        regime,
        strategies,
        filters,
        place,
        automatic_switches,
    )

    # ------------------------------------------------------------ helpers

    async def _block(self, st: CycleState, switch: str, why: str, *, trip: bool) -> None:
        if trip:
            await self._trip(switch, why)
        st.blocking.append(SwitchView(switch, why, "risk"))

    async def _persist(
        self, decided: Mapping[str, list[pipeline.Decision]]
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

    async def _park(self, decided: Mapping[str, list[pipeline.Decision]]) -> None:
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
                stop_atr_multiple=i.stop_atr_multiple,
            )
            for i in sorted(intents, key=lambda i: i.side != "sell")
        )
        answer: OrderResults = await self.d.order_manager.ask(
            PlaceOrders(self.msg.run_id, self.msg.asof, specs), timeout=self.d.order_timeout_s
        )
        for r in answer.results:
            await self._order_events(r)
        return list(answer.results)

    async def _order_events(self, r: OrderResult) -> None:
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

    async def _terminal_states(
        self,
        decided: Mapping[str, list[pipeline.Decision]],
        ids: Mapping[tuple[str, str, str], int],
        results: list[OrderResult],
        pending: list[PendingRow],
    ) -> None:
        by_key = {(r.strategy, r.symbol, r.side): r for r in results}
        rows: list[tuple[int, str, str]] = []
        for name, decisions in decided.items():
            for dec in decisions:
                sid = ids.get((name, dec.signal.symbol, str(dec.signal.action)))
                if sid is not None:
                    rows.append(
                        (
                            sid,
                            *_terminal(
                                dec, by_key.get((name, dec.signal.symbol, _side(dec.signal)))
                            ),
                        )
                    )
        await self.d.signals.set_terminal(rows, self.d.clock.now())
        done = {
            (r.strategy, r.symbol)
            for r in results
            if r.status is not IntentStatus.REJECTED and r.side == "buy"
        }
        for p in pending:
            if (p.strategy, p.symbol) in done:
                await self.d.pending.resolve(p.id, "EXECUTED", self.d.clock.now())

    async def _observe(self, st: CycleState) -> None:
        m = self.d.metrics
        if m is None:
            return
        report, regime, book = st.recon, _regime(st), st.book
        assert book is not None
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


def _regime(st: CycleState) -> RegimeDecision:
    assert st.regime is not None, "regime has not run"
    return st.regime


def _side(signal: Signal) -> str:
    return "buy" if signal.action is SignalAction.BUY else "sell"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _went_through(result: OrderResult) -> bool:
    """An intent that reached the broker and was not refused (filled, accepted, pending)."""
    if result.status is IntentStatus.REJECTED:
        return False
    return not (result.status is IntentStatus.NEW and result.error)


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


def _last_closed_session(cal: ExchangeCalendar, now: dt.datetime) -> dt.date:
    """The most recent session whose close is at or before ``now``."""
    today = now.astimezone(cal.tz).date()
    if cal.is_session(today) and now >= cal.session_close(today):
        return today
    return cal.previous_session(today)


def _last_prices(snap: MarketSnapshot) -> dict[str, float]:
    """Each valid symbol's last finite close (for feeds that give no ``last_prices``)."""
    close = snap.panel.close
    if close.shape[0] == 0:
        return {}
    out: dict[str, float] = {}
    for j, symbol in enumerate(snap.panel.symbols):
        finite = close[:, j][np.isfinite(close[:, j])]
        if finite.size:
            out[symbol] = float(finite[-1])
    return out


def _intent(dec: pipeline.Decision, snap: MarketSnapshot, stop_multiple: float) -> OrderIntentSpec:
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


def _disc(x: Any) -> dict[str, Any]:
    return {"kind": x.kind, "symbol": x.symbol, "local": x.local, "broker": x.broker}


__all__ = ["Cycle", "CycleDeps", "CycleState", "Outcome", "RegimeDecision"]
