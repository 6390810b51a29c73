"""The per-strategy filter chain of a cycle, as plain functions over a ``Book``.

Order (the reference system's funnel): raw -> regime -> correlation -> risk
(size, heat, cash) -> executed. Exits (SELL) pass every filter: getting out is
always allowed, whatever the regime, correlation or heat. Entries (BUY) are
taken strongest first; each accepted entry is added to the book at once, so
the next one sees its heat, its cash and its correlation (two highly
correlated entries on the same day are not both taken).

Rejections carry a stage, a reason code and the numbers behind it; entries
blocked *only* by heat or cash are marked ``park`` (pending signals).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from actors.brokers.costs import COMMISSION_PER_SHARE, SLIPPAGE_BPS
from actors.data_feed.panel import FloatArray
from actors.messages import Signal, SignalAction, SwitchView
from actors.risk.cash import CashLedger
from actors.risk.correlation import CorrelationTable
from actors.risk.heat import heat_check
from actors.risk.params import CorrelationParams
from actors.risk.pending import should_park
from actors.risk.regime import RegimeDecision, strategy_allowed


class Stage(StrEnum):
    KILL_SWITCH = "KILL_SWITCH"
    REGIME = "REGIME"
    CORRELATION = "CORRELATION"
    RISK = "RISK"
    EXECUTION = "EXECUTION"
    DATA = "DATA"
    LIMITS = "LIMITS"  # a hard pre-trade limit (actors.orders.limits), after the risk rules


@dataclass(frozen=True, slots=True)
class Rejection:
    stage: Stage
    reason_code: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    signal: Signal
    shares: int  # after attenuation and sizing; 0 when rejected
    rejection: Rejection | None = None
    park: bool = False
    multiplier: float = 1.0

    @property
    def accepted(self) -> bool:
        return self.rejection is None


@dataclass(slots=True)
class Funnel:
    raw: int = 0
    after_regime: int = 0
    after_correlation: int = 0
    after_risk: int = 0
    executed: int = 0

    def as_counts(self) -> dict[str, int]:
        return {
            "raw": self.raw,
            "after_regime": self.after_regime,
            "after_correlation": self.after_correlation,
            "after_risk": self.after_risk,
            "executed": self.executed,
        }


@dataclass(slots=True)
class Book:
    """The portfolio as the cycle sees it, updated as entries are accepted."""

    portfolio_value: float
    exposure: float
    cash: CashLedger
    held_symbols: set[str] = field(default_factory=set)


def session_correlations(
    signals: Iterable[Signal],
    *,
    close: FloatArray,
    symbols: Sequence[str],
    book: Book,
    params: CorrelationParams,
) -> CorrelationTable:
    """The correlation table of a session: its entries against what is held, for every strategy.

    ``signals`` are every strategy's signals of the session; the table is
    measured at once for all their entries, so the strategies share it.
    """
    entries = [s.symbol for s in signals if s.action is SignalAction.BUY]
    return CorrelationTable(close, symbols, params, candidates=entries, held=book.held_symbols)


def entry_cost(shares: int, price: float) -> float:
    """Cash an entry needs: notional plus modelled slippage and commission."""
    return shares * price * (1 + SLIPPAGE_BPS / 10_000.0) + shares * COMMISSION_PER_SHARE


def decide(
    strategy: str,
    signals: Sequence[Signal],
    *,
    breakout: bool,
    blocking: Sequence[SwitchView],
    regime: RegimeDecision,
    book: Book,
    correlations: CorrelationTable,
) -> tuple[list[Decision], Funnel]:
    """Run one strategy's signals through the filters; mutates ``book`` for accepted entries.

    ``correlations`` is the session's table (``session_correlations``), shared
    by every strategy of the cycle.
    """
    funnel = Funnel(raw=len(signals))
    decisions: list[Decision] = []
    exits = [s for s in signals if s.action is SignalAction.SELL]
    entries = sorted(
        (s for s in signals if s.action is SignalAction.BUY), key=lambda s: -s.confidence
    )
    for sig in exits:
        decisions.append(Decision(sig, sig.shares))
    funnel.after_regime = funnel.after_correlation = funnel.after_risk = len(exits)

    allowed, why = strategy_allowed(regime, breakout)
    for sig in entries:
        decision = _gate(sig, blocking, regime, allowed=allowed, why=why)
        if decision is None:
            decision = _correlate_and_size(
                strategy,
                sig,
                regime=regime,
                book=book,
                correlations=correlations,
            )
        _count(funnel, decision)
        decisions.append(decision)
    return decisions, funnel


def _count(funnel: Funnel, decision: Decision) -> None:
    """Add an entry's decision to the funnel: every stage it got past counts."""
    stage = decision.rejection.stage if decision.rejection is not None else None
    if stage in (Stage.KILL_SWITCH, Stage.REGIME):
        return
    funnel.after_regime += 1
    if stage is Stage.CORRELATION:
        return
    funnel.after_correlation += 1
    if stage is Stage.RISK:
        return
    funnel.after_risk += 1


def _gate(
    sig: Signal,
    blocking: Sequence[SwitchView],
    regime: RegimeDecision,
    *,
    allowed: bool,
    why: str,
) -> Decision | None:
    """Reject an entry blocked by a kill switch or by the regime; None lets it through."""
    if blocking:
        names = [s.name for s in blocking]
        return _reject(sig, Stage.KILL_SWITCH, "kill_switch", {"switches": names})
    if not allowed:
        return _reject(sig, Stage.REGIME, "regime", {"regime": str(regime.regime), "why": why})
    return None


def _correlate_and_size(
    strategy: str,
    sig: Signal,
    *,
    regime: RegimeDecision,
    book: Book,
    correlations: CorrelationTable,
) -> Decision:
    """Apply the correlation filter to an entry, then size and book it."""
    corr = correlations.decide(sig.symbol, sorted(book.held_symbols - {sig.symbol}))
    if corr.rejected:
        return _reject(
            sig,
            Stage.CORRELATION,
            "high_correlation",
            {
                "correlation": round(corr.max_corr, 4),
                "with_symbol": corr.with_symbol,
                "window": corr.window,
            },
        )
    return _size_and_book(strategy, sig, regime, book, regime.size_multiplier * corr.multiplier)


def _size_and_book(
    strategy: str, sig: Signal, regime: RegimeDecision, book: Book, multiplier: float
) -> Decision:
    """Size an entry, check heat and cash, and add it to ``book`` when it passes."""
    shares = math.floor(sig.shares * multiplier)
    if shares <= 0:
        return _reject(
            sig,
            Stage.RISK,
            "zero_size",
            {"signal_shares": sig.shares, "multiplier": round(multiplier, 4)},
        )
    value = shares * sig.price
    heat = heat_check(value, book.exposure, book.portfolio_value, regime.heat_limit)
    if not heat.allowed:
        return _reject(
            sig,
            Stage.RISK,
            "heat_limit",
            {
                "heat_after": round(heat.heat_after, 4),
                "limit": heat.limit,
                "trade_value": round(value, 2),
            },
            park=True,
        )
    cost = entry_cost(shares, sig.price)
    if not book.cash.reserve(strategy, cost):
        return _reject(
            sig,
            Stage.RISK,
            "insufficient_cash",
            {
                "needed": round(cost, 2),
                "available": round(book.cash.available(strategy), 2),
            },
            park=True,
        )
    book.exposure += value
    book.held_symbols.add(sig.symbol)
    return Decision(sig, shares, multiplier=multiplier)


def _reject(
    sig: Signal, stage: Stage, code: str, details: dict[str, Any], *, park: bool = False
) -> Decision:
    return Decision(sig, 0, Rejection(stage, code, details), park=park and should_park(code))
