"""``Reconciler``: the mandatory gate that checks our books against the broker's.

``Reconcile`` reads the broker's account and positions, compares them with the
local ones (``actors.reconciliation.compare.compare``), writes a ``broker_state`` snapshot
of the requested kind (START, RECONCILIATION, END) and answers a
``ReconciliationReport``. A broker that cannot be read gives a *failed* report
with ``error`` set (and no snapshot, since there is nothing to record); it never
crashes the actor. The caller decides what a failed report stops.

``AdoptBrokerState`` is the operator's way out of a mismatch: the broker's
positions and cash become the local truth (logged as a warning with the
operator's reason), and a passing RECONCILIATION snapshot is written.

The cash baseline (see ``actors.store.broker_state``) is initialised once, on
the first start of a fresh install: broker cash minus the cash effect of the
trades already recorded, so a funded account starts reconciled. If the broker
cannot be read at that moment the baseline stays unset, and every
``Reconcile`` fails (naming the cause) until the operator adopts the broker's
state or the actor starts again with the broker reachable.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from actors.brokers.base import (
    Broker,
    BrokerAccount,
    BrokerPosition,
    ReadsBook,
    ReportsAccountFills,
)
from actors.messages import (
    AdoptBrokerState,
    ApplySettings,
    Discrepancy,
    GetClosingEquity,
    GetStatus,
    Reconcile,
    ReconciliationReport,
)
from actors.reconciliation.compare import compare
from actors.store.broker_state import SNAPSHOT_KINDS, BrokerStateStore, discrepancy_as_dict
from actors.store.corporate_actions import CorporateActionStore
from daemon.actor import Actor, handles
from daemon.clock import Clock
from daemon.errors import FatalError, Refusal, TradingdError
from daemon.store.core import Store

log = structlog.get_logger()

#: How far back the reconciliation looks for manual trades on a disputed symbol.
MANUAL_LOOKBACK_DAYS = 7

MARKET_TZ = ZoneInfo("America/New_York")

NO_BASELINE = (
    "no cash baseline: the broker could not be read when the reconciler started; "
    "adopt the broker's state (AdoptBrokerState) once it has been checked"
)


class BrokerUnreadable(Refusal):
    """The broker could not be read, so its state cannot be adopted now."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _quantities(positions: list[BrokerPosition]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for p in positions:
        totals[p.symbol] = totals.get(p.symbol, 0) + p.qty
    return {symbol: qty for symbol, qty in totals.items() if qty != 0}


def _log_outcome(
    msg: Reconcile, passed: bool, discrepancies: list[Discrepancy], missing: str | None
) -> None:
    """Log every discrepancy, then whether the reconciliation passed.

    A START snapshot is taken before the cycle settles its orders: a fill the book has
    not heard of yet (an order filled after the last cycle, a stop that sold at the
    broker) shows there and is booked moments later, so its differences are logged at
    info as ``reconciliation_start_difference`` and ``reconciliation_start_unsettled``
    (every resting stop that fills would otherwise put a "reconciliation_failed" in the
    operator's log); a START that cannot read the broker is a failure. The gate is the
    RECONCILIATION after the settle, an error when it fails.
    """
    unsettled = msg.kind == "START" and missing is None
    emit = log.info if unsettled else log.warning if msg.kind == "START" else log.error
    name = "reconciliation_start_difference" if unsettled else "reconciliation_discrepancy"
    for d in discrepancies:
        emit(
            name,
            run_id=msg.run_id,
            kind=msg.kind,
            discrepancy=d.kind,
            symbol=d.symbol,
            local=d.local,
            broker=d.broker,
            diff=d.diff,
        )
    if passed:
        log.info("reconciliation_passed", run_id=msg.run_id, kind=msg.kind)
    elif unsettled:
        log.info(
            "reconciliation_start_unsettled",
            run_id=msg.run_id,
            kind=msg.kind,
            discrepancies=len(discrepancies),
        )
    else:
        emit(
            "reconciliation_failed",
            run_id=msg.run_id,
            kind=msg.kind,
            discrepancies=len(discrepancies),
            error=missing,
        )


class Reconciler(Actor):
    def __init__(
        self,
        *,
        store: Store,
        broker: Broker,
        clock: Clock,
        tolerance: float = 0.01,
        manual_strategy_id: int,
    ) -> None:
        if not tolerance >= 0.0:
            raise ValueError(f"tolerance must be a non-negative fraction, got {tolerance!r}")
        self._states = BrokerStateStore(store)
        self._actions = CorporateActionStore(store)
        self._broker = broker
        self._clock = clock
        self._tolerance = tolerance
        self._manual_strategy_id = manual_strategy_id
        self.last_report: ReconciliationReport | None = None
        self._broker_read = False  # whether last_report's broker figures are real

    async def on_start(self) -> None:
        """On a fresh install (no baseline yet), derive the cash baseline from the broker."""
        await self._init_baseline()

    async def _init_baseline(self) -> float | None:
        """Set the cash baseline if there is none and the broker answers (else try later);
        the baseline, None while it is not set."""
        baseline = await self._states.cash_baseline()
        if baseline is not None:
            return baseline
        try:
            account = await self._broker.account()
        except FatalError:
            raise
        except TradingdError as exc:
            log.warning("cash_baseline_not_initialised", error=_describe(exc))
            return None
        deltas = await self._states.trade_cash_deltas()
        baseline = account.cash - deltas
        await self._states.set_cash_baseline(baseline, self._clock.now())
        log.info(
            "cash_baseline_initialised",
            baseline=baseline,
            broker_cash=account.cash,
            trade_cash_deltas=deltas,
        )
        return baseline

    async def _read_broker(self) -> tuple[BrokerAccount, list[BrokerPosition]]:
        """The broker's account and positions: in one read when it can (``ReadsBook``)."""
        if isinstance(self._broker, ReadsBook):
            return await self._broker.book()
        return await self._broker.account(), await self._broker.positions()

    @handles(ApplySettings)
    async def apply(self, msg: ApplySettings) -> None:
        """A reloaded configuration: the cash and value tolerance of the next comparison."""
        self._tolerance = msg.settings.risk.reconcile_tolerance
        log.info("reconcile_tolerance_applied", tolerance=self._tolerance)

    @handles(Reconcile)
    async def reconcile(self, msg: Reconcile) -> ReconciliationReport:
        """Compare with the broker, snapshot as ``msg.kind``, answer the report."""
        if msg.kind not in SNAPSHOT_KINDS:
            raise Refusal(f"reconciliation kind must be one of {SNAPSHOT_KINDS}, got {msg.kind!r}")
        # A broker that was down at start gets another chance here, so one bad
        # minute at boot does not fail every reconciliation until a restart.
        baseline = await self._init_baseline()
        missing = None if baseline is not None else NO_BASELINE
        local_positions = await self._states.local_positions()
        local_cash = await self._states.local_cash_from(baseline)
        try:
            account, positions = await self._read_broker()
        except FatalError:
            raise
        except TradingdError as exc:
            error = _describe(exc)
            log.error("reconciliation_failed", run_id=msg.run_id, kind=msg.kind, error=error)
            return self._keep(
                ReconciliationReport(
                    passed=False,
                    discrepancies=(),
                    local_cash=local_cash,
                    broker_cash=0.0,
                    broker_equity=0.0,
                    at=self._clock.now(),
                    error=error,
                ),
                broker_read=False,
            )
        broker_positions = _quantities(positions)
        passed, discrepancies = compare(
            local_positions, broker_positions, local_cash, account.cash, tolerance=self._tolerance
        )
        pending: tuple[str, ...] = ()
        if any(d.kind == "position" for d in discrepancies):
            local_positions, pending = await self._pending_actions(
                local_positions, broker_positions
            )
            passed, discrepancies = compare(
                local_positions,
                broker_positions,
                local_cash,
                account.cash,
                tolerance=self._tolerance,
            )
        passed = passed and missing is None
        manual = await self._manual_trades(discrepancies) if not passed else ()
        now = self._clock.now()
        await self._states.snapshot(
            msg.run_id,
            msg.kind,
            cash=account.cash,
            equity=account.equity,
            positions=broker_positions,
            discrepancies=discrepancies,
            passed=passed,
            at=now,
        )
        _log_outcome(msg, passed, discrepancies, missing)
        return self._keep(
            ReconciliationReport(
                passed=passed,
                discrepancies=tuple(discrepancies),
                local_cash=local_cash,
                broker_cash=account.cash,
                broker_equity=account.equity,
                can_trade=account.can_trade,
                at=now,
                error=missing,
                broker_last_equity=account.last_equity,
                pending_corporate_actions=pending,
                manual_trades=manual,
            )
        )

    async def _manual_trades(self, discrepancies: list[Discrepancy]) -> tuple[str, ...]:
        """The broker's fills on the disputed symbols that none of our orders explains.

        Each is shown with the exact ``tradectl adopt`` that takes the broker's book
        (the operator decides: a trade of the account owner's, or something wrong).
        Only for a broker that lists its fills (``ReportsAccountFills``); a broker that
        cannot be read for them costs nothing but a warning: the gate stays closed.
        """
        symbols = {d.symbol for d in discrepancies if d.kind == "position" and d.symbol}
        if not symbols or not isinstance(self._broker, ReportsAccountFills):
            return ()
        since = self._clock.now() - dt.timedelta(days=MANUAL_LOOKBACK_DAYS)
        try:
            fills = await self._broker.account_fills(since)
        except FatalError:
            raise
        except TradingdError as exc:
            log.warning("account_fills_unavailable", error=_describe(exc))
            return ()
        ours = await self._states.our_broker_order_ids()
        found: list[str] = []
        for f in fills:
            if f.symbol not in symbols or (f.broker_order_id and f.broker_order_id in ours):
                continue
            trade = f"{f.side} {f.qty} {f.symbol} at {f.price:.2f} on {f.at:%Y-%m-%d %H:%M %Z}"
            found.append(f'{trade}: if it is yours, tradectl adopt "manual trade: {trade}"')
            log.warning("manual_trade_seen", symbol=f.symbol, side=str(f.side), qty=f.qty)
        return tuple(found)

    async def _pending_actions(
        self, local: dict[str, int], broker: dict[str, int]
    ) -> tuple[dict[str, int], tuple[str, ...]]:
        """Compare a split applied here but not yet at the broker on its old quantity.

        Only for splits whose ex date is today or later (exchange time) and only when
        the broker holds exactly the quantity before it and we hold exactly the one
        after it: ``pending_corporate_action``, not a mismatch. Anything else still
        counts, so an unexplained difference fails closed.
        """
        today = self._clock.now().astimezone(MARKET_TZ).date()
        compared = dict(local)
        pending: list[str] = []
        for symbol, (before, after) in (await self._actions.pending_at_broker(today)).items():
            if local.get(symbol, 0) == after and broker.get(symbol, 0) == before:
                compared[symbol] = before
                pending.append(symbol)
                log.info("pending_corporate_action", symbol=symbol, broker=before, local=after)
        return compared, tuple(pending)

    @handles(GetClosingEquity)
    async def closing_equity(self, msg: GetClosingEquity) -> dict[dt.date, float]:
        """The account's equity at the close of ``msg.sessions``, as far as the broker knows."""
        try:
            return await self._broker.closing_equity(msg.sessions)
        except FatalError:
            raise
        except TradingdError as exc:
            log.warning("closing_equity_failed", error=_describe(exc))
            return {}

    @handles(AdoptBrokerState)
    async def adopt(self, msg: AdoptBrokerState) -> ReconciliationReport:
        """Take the broker's positions and cash as the truth; refused if it cannot be read."""
        try:
            account, positions = await self._read_broker()
        except FatalError:
            raise
        except TradingdError as exc:
            raise BrokerUnreadable(f"cannot adopt the broker's state: {_describe(exc)}") from exc
        held: dict[str, tuple[int, float]] = {}
        for p in positions:
            qty, _ = held.get(p.symbol, (0, p.avg_entry_price))
            held[p.symbol] = (qty + p.qty, p.avg_entry_price)
        cash_before = await self._states.local_cash()
        now = self._clock.now()
        changes = await self._states.adopt(
            held, account.cash, now, strategy_id_for_unowned=self._manual_strategy_id
        )
        log.warning(
            "broker_state_adopted",
            reason=msg.reason,
            local_cash_before=cash_before,
            broker_cash=account.cash,
            adjustments=[
                {
                    "strategy_id": c.strategy_id,
                    "symbol": c.symbol,
                    "before": c.before,
                    "after": c.after,
                }
                for c in changes
            ],
        )
        local_positions = await self._states.local_positions()
        local_cash = await self._states.local_cash()
        broker_positions = _quantities(positions)
        passed, discrepancies = compare(
            local_positions, broker_positions, local_cash, account.cash, tolerance=self._tolerance
        )
        await self._states.snapshot(
            None,
            "RECONCILIATION",
            cash=account.cash,
            equity=account.equity,
            positions=broker_positions,
            discrepancies=discrepancies,
            passed=passed,
            at=now,
        )
        return self._keep(
            ReconciliationReport(
                passed=passed,
                discrepancies=tuple(discrepancies),
                local_cash=local_cash,
                broker_cash=account.cash,
                broker_equity=account.equity,
                can_trade=account.can_trade,
                at=now,
            )
        )

    @handles(GetStatus)
    async def status(self, _msg: GetStatus) -> dict[str, Any]:
        """The last report as a JSON-able dict (``passed`` None before the first one)."""
        report = self.last_report
        if report is None:
            return {
                "passed": None,
                "at": None,
                "discrepancies": [],
                "local_cash": None,
                "broker_cash": None,
                "broker_equity": None,
                "error": None,
            }
        return {
            "passed": report.passed,
            "at": report.at.isoformat(),
            "discrepancies": [discrepancy_as_dict(d) for d in report.discrepancies],
            "local_cash": report.local_cash,
            "broker_cash": report.broker_cash if self._broker_read else None,
            "broker_equity": report.broker_equity if self._broker_read else None,
            "error": report.error,
        }

    def _keep(
        self, report: ReconciliationReport, *, broker_read: bool = True
    ) -> ReconciliationReport:
        self.last_report = report
        self._broker_read = broker_read
        return report
