"""``OrderManager``: writes order intents, submits them, books fills — and never twice.

The guarantee
-------------
An intent's id is a function of (trading date, strategy, symbol, side) only
(``actors.orders.intents``) and is the order's client order id. The broker
refuses a second order with a client id it already has. So whatever we do not
know after a crash or a timeout can be asked of the broker by that id, and a
submission of an id the broker already has fails (``DuplicateClientOrderId``)
instead of placing a second order: the worst a wrong guess can cost is one
refused request, never a second position.

Order of writes
---------------
1. The intent is written NEW (durable) *before* anything is sent; a batch's
   intents are all written before the first of them is sent.
2. It is marked SUBMITTED (durable) just before ``broker.submit``.
3. The broker's answer moves it on; fills are booked with ``OrderStore.book_fill``
   (trade row, intent, position in one durable transaction), always as the
   *delta* between the broker's cumulative filled quantity and the intent's, so
   polling twice never books twice.

Submitting (``PlaceOrders``, in the given order)
-------------------------------------------------
- A sell is clamped to the strategy's held shares less what its open sell
  intents still have to sell; nothing left: REJECTED "nothing held", no row.
- The intent already exists (a re-run of the day): it is *resolved* (table
  below), not submitted again; ``existing=True`` unless this call had to
  submit it because the broker has never heard of it (e.g. the first run met
  ``BrokerUnavailable``).
- ``BrokerOrder`` back: its status per ``next_status``, fills booked.
- ``DuplicateClientOrderId``: our order exists: look it up and adopt it.
- ``SubmissionOutcomeUnknown`` (or any other broker error): UNKNOWN, then one
  immediate lookup by client id: found, adopt; not found (or the lookup fails),
  it stays UNKNOWN for the next ``SettleOrders`` or start. Never resubmitted
  blindly.
- ``OrderRejected``: REJECTED with the broker's reason.
- ``BrokerUnavailable``: nothing happened; back to NEW with the error
  (reported as status NEW + error, which the CycleRunner counts as a failure).
- ``AccountBlocked``: REJECTED with the error, and the rest of the batch is
  not submitted: those intents (already written, as the whole batch is written
  before the first submission) are closed EXPIRED with ``not_submitted``, so
  nothing submits them behind the kill switch's back later.

Resolving a non-terminal intent (on start, on ``SettleOrders``, on a re-run)
---------------------------------------------------------------------------
First ``order_by_client_id``; if that read fails the intent is left as it is.

=========================  ==================================================
local status / broker      what happens
=========================  ==================================================
any, order found           adopt it: status from the broker, new fills booked
NEW, not found             it was never sent (or the crash came before the
                           request left): submit it now
SUBMITTED, not found       the request never created an order (the broker
                           knows every order by this id): back to NEW, submit
UNKNOWN, not found         same: the broker has no order with this id, so
                           submitting it creates the first and only one; if
                           a lost request lands late after all, one of the
                           two is refused as a duplicate and we adopt the other
ACCEPTED/PARTIALLY_FILLED, the broker acknowledged it once and now denies
not found                  it: left as is with error ``missing_at_broker``
                           (a person must look; never resubmitted)
NEW/SUBMITTED/UNKNOWN of   on start and settle only: the session it was meant
an earlier session, not    for is over and today's cycle makes its own
found                      decisions, so it becomes EXPIRED ("stale"), unsent
=========================  ==================================================

"Today" is the New York date of the injected clock. A re-run's explicit
``PlaceOrders`` is not subject to the staleness rule: it asks for that day.

A fill the store cannot book (a sell beyond the position, more than ordered)
is not booked: the intent keeps its status with error ``booking_failed`` and a
critical log, and the reconciler's disagreement stops trading until a person
looks; the actor does not crash-loop on it.

Metrics are optional: with ``metrics`` given, ``metrics.order_results`` (a
Counter labelled ``status``), if present, counts every result reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from actors.brokers.base import (
    AccountBlocked,
    Broker,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerUnavailable,
    DuplicateClientOrderId,
    OrderRejected,
    OrderRequest,
    OrderSide,
    SubmissionOutcomeUnknown,
)
from actors.messages import (
    ApplySettings,
    Flatten,
    GetStatus,
    IntentKind,
    IntentStatus,
    OrderIntentSpec,
    OrderResult,
    OrderResults,
    PlaceOrders,
    RestingStopsReport,
    SettleOrders,
    SyncRestingStops,
)
from actors.orders.intents import SIDES, intent_id, next_status
from actors.orders.limits import Breach, LimitsParams, OrderCheck, breach, day_trade_refused
from actors.orders.resting_stops import (
    CANCEL_REQUESTED,
    CANCELED_BY_US,
    SAME_PRICE,
    RestingStops,
)
from actors.store.orders import (
    FillTerms,
    IntentRow,
    NegativePosition,
    OrderStore,
    OverFill,
)
from daemon.actor import Actor, handles
from daemon.clock import Clock
from daemon.errors import Refusal, TradingdError
from daemon.store.core import Store

log = structlog.get_logger()

MARKET_TZ = ZoneInfo("America/New_York")

# error_code values written to order_intents
BROKER_UNAVAILABLE = "broker_unavailable"
OUTCOME_UNKNOWN = "outcome_unknown"
BROKER_ERROR = "broker_error"
REJECTED = "rejected"
ACCOUNT_BLOCKED = "account_blocked"
MISSING_AT_BROKER = "missing_at_broker"
STALE = "stale"
BOOKING_FAILED = "booking_failed"
NOT_FOUND = "not_found"
NOT_SUBMITTED = "not_submitted"
RESTING_STOP = "resting_stop_not_canceled"
#: How old a broker answer may be for the resting-stop sync to use it instead of asking.
FRESH_S = 5.0
STOPPED_OUT = "stopped_out"

_RESUBMITTABLE = (IntentStatus.NEW, IntentStatus.SUBMITTED, IntentStatus.UNKNOWN)


class OrderManager(Actor):
    """Owns order intents: write, submit, resolve, book fills (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        broker: Broker,
        clock: Clock,
        terms: FillTerms,
        strategy_ids: Mapping[str, int] | None = None,
        metrics: Any | None = None,
        broker_stops: bool = False,
        limits: LimitsParams | None = None,
    ) -> None:
        """``terms``: the modelled costs and the stop rule each fill is booked with;
        ``broker_stops``: keep each lot's protective stop resting at the broker
        (``actors.orders.resting_stops``; ``orders.broker_stops``); ``limits``: the hard
        pre-trade limits every buy meets just before it is written (``actors.orders.limits``;
        None: none)."""
        self._orders = OrderStore(store, terms)
        self._broker_stops = broker_stops
        self._limits = limits
        self._stops = RestingStops(self._orders, broker, clock, self)
        self._broker = broker
        self._clock = clock
        self._strategy_ids: dict[str, int] = dict(strategy_ids or {})
        self._metrics = metrics
        self._last_resolution: dict[str, Any] = {}
        # The broker's last answer per order, and when: a sync right after a settle reads
        # these instead of asking again (Alpaca allows 200 requests a minute).
        self._seen: dict[str, tuple[dt.datetime, BrokerOrder]] = {}

    # ------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        """Resolve every non-terminal intent with the broker before taking any message."""
        changed = await self._resolve_all()
        self._last_resolution = {
            "at": self._clock.now().isoformat(),
            "trigger": "start",
            "changed": len(changed),
        }
        log.info(
            "order_intents_resolved",
            trigger="start",
            changed=[(r.intent_id, str(r.status)) for r in changed],
        )
        if self._broker_stops:
            await self._stops.sync("start")

    # ------------------------------------------------------------ handlers

    @handles(PlaceOrders)
    async def place(self, msg: PlaceOrders) -> OrderResults:
        """Write every intent of the batch, then submit them in order.

        The whole batch is written (durable) before the first order is sent, so a
        crash in the middle of submitting leaves the rest of the day's plan in the
        store: the restart's resolution submits exactly those, and a re-run of the
        day finds them instead of planning a second round on changed positions.
        """
        written = [await self._write(msg, spec) for spec in msg.intents]
        results: list[OrderResult] = []
        blocked: str | None = None
        for item in written:
            result, blocked_now = await self._send(item, blocked)
            if blocked_now and blocked is None:
                blocked = result.error or "account blocked"
            results.append(result)
            self._count(result)
        return OrderResults(msg.run_id, msg.asof, tuple(results))

    @handles(Flatten)
    async def flatten(self, msg: Flatten) -> OrderResults:
        """Cancel the matching open orders (an open buy would otherwise survive the flatten),
        then sell the matching positions (all, a strategy's, or a symbol's) at market.

        The results are the cancelled orders' first, then the sells'.
        """
        target = (msg.target or "").strip()

        def matches(strategy: str, symbol: str) -> bool:
            return not target or strategy == target or symbol == target.upper()

        rows = [
            r
            for r in await self._orders.positions()
            if int(r["shares"]) > 0 and matches(str(r["strategy"]), str(r["symbol"]))
        ]
        working = [
            r
            for r in await self._orders.open_intents()
            if not r.resting and matches(r.strategy, r.symbol)
        ]
        if target and not rows and not working:
            raise Refusal(f"no open position or order matches {target!r}")
        log.warning(
            "flatten_requested", target=target or "all", positions=len(rows), orders=len(working)
        )
        cancelled = [_result(await self._cancel_working(r)) for r in working]
        specs = tuple(
            OrderIntentSpec(
                strategy=str(r["strategy"]),
                symbol=str(r["symbol"]),
                side="sell",
                qty=int(r["shares"]),
                kind=IntentKind.FLATTEN,
                reference_price=float(r["avg_price"] or 0.0),
                reason=f"{msg.reason}: {target or 'all'}",
            )
            for r in await self._orders.positions()
            if int(r["shares"]) > 0 and matches(str(r["strategy"]), str(r["symbol"]))
        )
        sold = await self.place(PlaceOrders(msg.run_id, msg.asof, specs))
        return OrderResults(msg.run_id, msg.asof, (*cancelled, *sold.results))

    async def _cancel_working(self, row: IntentRow) -> IntentRow:
        """Cancel one of our open orders at the broker and take its answer (a fill that
        came first is booked); one never sent is closed here."""
        if row.status is IntentStatus.NEW:
            return await self._set(row, IntentStatus.CANCELED, None, "cancelled by a flatten")
        try:
            await self._broker.cancel(row.intent_id)
            order = await self._broker.order_by_client_id(row.intent_id)
        except TradingdError as exc:
            log.warning("flatten_cancel_failed", intent_id=row.intent_id, error=repr(exc))
            return row
        if order is None:  # never reached the broker: closed, so nothing submits it later
            return await self._set(row, IntentStatus.CANCELED, None, "cancelled by a flatten")
        return await self._apply(row, order)

    @handles(SettleOrders)
    async def settle(self, msg: SettleOrders) -> OrderResults:
        """Poll every non-terminal intent, book new fills; results of the intents that changed."""
        changed = await self._resolve_all()
        self._last_resolution = {
            "at": self._clock.now().isoformat(),
            "trigger": "settle",
            "changed": len(changed),
        }
        results = tuple(_result(r) for r in changed)
        for result in results:
            self._count(result)
        return OrderResults(msg.run_id or "settle", self._today(), results)

    @handles(ApplySettings)
    async def apply(self, msg: ApplySettings) -> None:
        """A reloaded configuration: the ``[limits]`` apply to the next order
        (``orders.broker_stops`` takes a restart: the stops at the broker would stay)."""
        self._limits = msg.settings.limits
        log.info("order_limits_applied", limits=self._limits.model_dump())

    @handles(SyncRestingStops)
    async def sync_stops(self, msg: SyncRestingStops) -> RestingStopsReport:
        """Each lot's protective stop at the broker looked up, booked, put right."""
        if not self._broker_stops:
            return RestingStopsReport(msg.run_id, enabled=False)
        return RestingStopsReport(msg.run_id, True, tuple(await self._stops.sync(msg.run_id)))

    @handles(GetStatus)
    async def status(self, _msg: GetStatus) -> dict[str, Any]:
        open_rows = [r for r in await self._orders.open_intents() if not r.resting]
        return {
            "broker_stops": self._broker_stops,
            "resting_stops": [
                {
                    "intent_id": r.intent_id,
                    "status": str(r.status),
                    "strategy": r.strategy,
                    "symbol": r.symbol,
                    "qty": r.remaining_qty,
                    "stop_price": r.stop_price,
                    "error": r.error_message,
                }
                for r in await self._orders.resting_stops()
            ],
            "counts": await self._orders.status_counts(),
            "open": [
                {
                    "intent_id": r.intent_id,
                    "status": str(r.status),
                    "strategy": r.strategy,
                    "symbol": r.symbol,
                    "side": r.side,
                    "qty": r.target_qty,
                    "filled_qty": r.filled_qty,
                    "asof": r.asof.isoformat(),
                    "error": r.error_message,
                }
                for r in open_rows
            ],
            "last_resolution": self._last_resolution,
        }

    # ------------------------------------------------------------ placing

    async def _write(
        self, msg: PlaceOrders, spec: OrderIntentSpec
    ) -> OrderResult | tuple[IntentRow, bool]:
        """Write one intent NEW; ``(row, existed)``, or the result of a refusal (no row)."""
        if spec.side not in SIDES:
            return _refused(spec, "", spec.qty, f"invalid side {spec.side!r}")
        iid = intent_id(msg.asof, spec.strategy, spec.symbol, spec.side)
        existing = await self._orders.get(iid)
        if existing is not None:
            if existing.target_qty != spec.qty:
                log.info(
                    "order_intent_rerun_qty_differs",
                    intent_id=iid,
                    stored_qty=existing.target_qty,
                    requested_qty=spec.qty,
                )
            return existing, True
        if spec.qty <= 0:
            return _refused(spec, iid, spec.qty, "qty must be positive")
        if spec.side == "buy":
            hit = await self._limit_breach(spec, iid)
            if hit is not None:
                return _refused(spec, iid, spec.qty, f"limit {hit.describe()}", f"limit:{hit.code}")
        strategy_id = await self._strategy_id(spec.strategy)
        qty = spec.qty
        if spec.side == "sell":
            pdt = await self._day_trade_breach(strategy_id, spec)
            if pdt is not None:
                why = f"limit {pdt.describe()}: it would be a day trade; sell at the next session"
                return _refused(spec, iid, qty, why, f"limit:{pdt.code}")
            available = await self._sellable(strategy_id, spec.symbol)
            if available <= 0:
                return _refused(spec, iid, 0, "nothing held")
            if qty > available:
                log.warning("order_sell_clamped", intent_id=iid, requested=qty, held=available)
                qty = available
        row, created = await self._orders.create_intent(
            intent_id=iid,
            run_id=msg.run_id,
            asof=msg.asof,
            strategy_id=strategy_id,
            strategy=spec.strategy,
            symbol=spec.symbol,
            side=spec.side,
            qty=qty,
            kind=spec.kind,
            reference_price=spec.reference_price,
            atr=spec.atr,
            signal_id=spec.signal_id,
            reason=spec.reason,
            stop_atr_multiple=spec.stop_atr_multiple,
            at=self._clock.now(),
        )
        if created:
            log.info(
                "order_intent_created",
                intent_id=iid,
                run_id=msg.run_id,
                strategy=spec.strategy,
                symbol=spec.symbol,
                side=spec.side,
                qty=qty,
                kind=str(spec.kind),
            )
        return row, not created

    async def _send(
        self, item: OrderResult | tuple[IntentRow, bool], blocked: str | None
    ) -> tuple[OrderResult, bool]:
        """Submit (or, for an intent that existed, resolve) one written intent."""
        if isinstance(item, OrderResult):
            return item, False
        row, existed = item
        if existed:
            row, submitted = await self._resolve(row, explicit=True, may_submit=not blocked)
            return _result(row, existing=not submitted), submitted and _is_blocked(row)
        if blocked is not None:
            # Written but never sent: closed now, so nothing submits it behind the switch later.
            row = await self._set(
                row,
                IntentStatus.EXPIRED,
                NOT_SUBMITTED,
                f"account blocked: not submitted ({blocked})",
            )
            return _result(row), False
        row = await self._submit(row)
        return _result(row), _is_blocked(row)

    async def _day_trade_breach(self, strategy_id: int, spec: OrderIntentSpec) -> Breach | None:
        """The pattern-day-trader rule for a sell of a lot bought today (``orders.limits``)."""
        rows = await self._orders.positions()
        today = self._today().isoformat()
        if not any(
            int(r["strategy_id"]) == strategy_id
            and r["symbol"] == spec.symbol
            and str(r["entry_date"] or "") == today
            for r in rows
        ):
            return None
        try:
            account = await self._broker.account()
        except TradingdError:
            return None  # unknown: the broker's own check stands behind it
        return day_trade_refused(
            account.equity,
            account.daytrade_count,
            account.pattern_day_trader,
            closes_todays_buy=True,
        )

    async def _limit_breach(self, spec: OrderIntentSpec, iid: str) -> Breach | None:
        """The pre-trade limit this buy breaks, if any (the cycle checked them already: this is
        the last check, for every path to the broker)."""
        if self._limits is None:
            return None
        held = sum(
            int(r["shares"] or 0)
            for r in await self._orders.positions()
            if r["symbol"] == spec.symbol
        )
        today = [
            r
            for r in await self._orders.intents_for(asof=self._today())
            if not r.resting and r.intent_id != iid
        ]
        check = OrderCheck(
            symbol=spec.symbol,
            qty=spec.qty,
            price=spec.reference_price,
            held_notional=held * spec.reference_price,
            orders_today=len(today),
        )
        return breach(check, self._limits)

    async def _strategy_id(self, name: str) -> int:
        sid = self._strategy_ids.get(name)
        if sid is None:
            sid = await self._orders.strategy_id(name)
            self._strategy_ids[name] = sid
        return sid

    async def _sellable(self, strategy_id: int, symbol: str) -> int:
        held = await self._orders.held(strategy_id, symbol)
        return held - await self._pending_sells(strategy_id, symbol)

    async def _pending_sells(self, strategy_id: int, symbol: str, but: str = "") -> int:
        """Shares our open sells of the lot (not its resting stops, nor ``but``) still sell."""
        return sum(
            r.remaining_qty
            for r in await self._orders.open_intents()
            if r.strategy_id == strategy_id
            and r.symbol == symbol
            and r.side == "sell"
            and not r.resting
            and r.intent_id != but
        )

    async def _clear_the_way(self, row: IntentRow) -> IntentRow | None:
        """Before our own sell of a lot: its resting stops cancelled, confirmed, and the sell
        sized on what is still held. The row to send, or None with ``row`` closed or kept
        NEW (a cancel not confirmed: tried again at the next settle)."""
        stops = [
            r
            for r in await self._orders.resting_stops()
            if r.strategy_id == row.strategy_id and r.symbol == row.symbol
        ]
        if stops:
            why = await self._stops.cancel_confirmed(stops)
            if why is not None:
                log.warning("order_waits_for_stop_cancel", intent_id=row.intent_id, why=why)
                await self._set(row, IntentStatus.NEW, RESTING_STOP, f"not sent: {why}")
                return None
        left = await self._orders.held(row.strategy_id, row.symbol)
        left -= await self._pending_sells(row.strategy_id, row.symbol, but=row.intent_id)
        if left <= 0:
            message = "nothing left to sell: the resting stop at the broker sold it first"
            await self._set(row, IntentStatus.CANCELED, STOPPED_OUT, message)
            return None
        if left < row.remaining_qty:
            log.warning("order_sell_cut_to_held", intent_id=row.intent_id, held=left)
            row = await self._orders.set_terms(
                row.intent_id, row.filled_qty + left, None, self._clock.now()
            )
        return row

    async def _submit(self, row: IntentRow) -> IntentRow:
        """Mark SUBMITTED (durable), send, and turn the answer or the error into a status.

        Our own sell of a lot first clears its resting stops (``_clear_the_way``).
        """
        iid = row.intent_id
        if row.side == "sell" and not row.resting:
            cleared = await self._clear_the_way(row)
            if cleared is None:
                return await self._orders.get(iid) or row
            row = cleared
        row = await self._orders.update_status(iid, IntentStatus.SUBMITTED, at=self._clock.now())
        request = OrderRequest(
            client_order_id=iid,
            symbol=row.symbol,
            side=OrderSide(row.side),
            qty=row.target_qty,
            stop_price=row.stop_price,
        )
        try:
            order = await self._broker.submit(request)
        except DuplicateClientOrderId:
            log.warning("order_duplicate_adopted", intent_id=iid)
            return await self._lookup(row, missing=(OUTCOME_UNKNOWN, "duplicate id, not found"))
        except SubmissionOutcomeUnknown as exc:
            log.warning("order_outcome_unknown", intent_id=iid, error=str(exc))
            row = await self._set(row, IntentStatus.UNKNOWN, OUTCOME_UNKNOWN, str(exc))
            return await self._lookup(row)
        except OrderRejected as exc:
            log.warning("order_rejected", intent_id=iid, reason=exc.reason)
            return await self._set(row, IntentStatus.REJECTED, REJECTED, exc.reason)
        except BrokerUnavailable as exc:
            log.warning("order_broker_unavailable", intent_id=iid, error=str(exc))
            return await self._set(row, IntentStatus.NEW, BROKER_UNAVAILABLE, str(exc))
        except AccountBlocked as exc:
            log.error("order_account_blocked", intent_id=iid, error=str(exc))
            return await self._set(
                row, IntentStatus.REJECTED, ACCOUNT_BLOCKED, f"account blocked: {exc}"
            )
        except TradingdError as exc:
            # Some other broker failure after the request may have left: treat as unknown.
            log.warning("order_submit_failed", intent_id=iid, error=repr(exc))
            row = await self._set(row, IntentStatus.UNKNOWN, BROKER_ERROR, repr(exc))
            return await self._lookup(row)
        log.info("order_submitted", intent_id=iid, broker_status=str(order.status))
        return await self._apply(row, order)

    async def _lookup(self, row: IntentRow, *, missing: tuple[str, str] | None = None) -> IntentRow:
        """One lookup by client id: adopt what is found; otherwise UNKNOWN stays UNKNOWN."""
        try:
            order = await self._broker.order_by_client_id(row.intent_id)
        except TradingdError as exc:
            log.warning("order_lookup_failed", intent_id=row.intent_id, error=repr(exc))
            order = None
        if order is not None:
            return await self._apply(row, order)
        if missing is not None:
            return await self._set(row, IntentStatus.UNKNOWN, *missing)
        return row

    # ------------------------------------------------------------ resolving

    async def _resolve_all(self) -> list[IntentRow]:
        changed: list[IntentRow] = []
        may_submit = True
        for row in await self._orders.open_intents():
            new, submitted = await self._resolve(row, explicit=False, may_submit=may_submit)
            if submitted and _is_blocked(new):
                may_submit = False
            if _differs(row, new):
                changed.append(new)
        return changed

    async def _resolve(
        self, row: IntentRow, *, explicit: bool, may_submit: bool
    ) -> tuple[IntentRow, bool]:
        """Bring one intent up to date with the broker; True when it was submitted now."""
        if row.status.terminal:
            return row, False
        try:
            order = await self._broker.order_by_client_id(row.intent_id)
        except TradingdError as exc:
            log.warning("order_lookup_failed", intent_id=row.intent_id, error=repr(exc))
            return row, False
        if order is not None:
            return await self._apply(row, order), False
        if row.status not in _RESUBMITTABLE:
            log.critical("order_missing_at_broker", intent_id=row.intent_id, status=str(row.status))
            message = f"the broker acknowledged this order ({row.status}) and now has no record"
            return await self._set(row, row.status, MISSING_AT_BROKER, message), False
        if not explicit and row.asof < self._today():
            log.warning("order_intent_stale", intent_id=row.intent_id, asof=row.asof.isoformat())
            message = f"never reached the broker and session {row.asof} is over"
            return await self._set(row, IntentStatus.EXPIRED, STALE, message), False
        if not may_submit:
            return row, False
        if row.status is not IntentStatus.NEW:
            # The broker answered that no order with this id exists: it was never created.
            row = await self._set(
                row, IntentStatus.NEW, NOT_FOUND, f"{row.status} but unknown to the broker"
            )
        log.info("order_resubmitting", intent_id=row.intent_id)
        return await self._submit(row), True

    # ------------------------------------------------------------ applying broker state

    async def _apply(self, row: IntentRow, order: BrokerOrder) -> IntentRow:
        """Take the broker's view of the order: status per ``next_status``, new fills booked."""
        if row.status.terminal:
            return row
        iid = row.intent_id
        if row.resting:
            self._seen[iid] = (self._clock.now(), order)
        if row.resting and _terms_differ(row, order):
            # The broker adjusted the resting stop (a split): its terms are the order's now.
            log.warning(
                "resting_stop_adjusted_at_broker",
                intent_id=iid,
                qty=(row.target_qty, order.qty),
                stop=(row.stop_price, order.stop_price),
            )
            row = await self._orders.set_terms(iid, order.qty, order.stop_price, self._clock.now())
        status = next_status(row.status, order.status, order.filled_qty, row.target_qty)
        delta = order.filled_qty - row.filled_qty
        if delta < 0:
            log.error(
                "order_broker_fills_shrank",
                intent_id=iid,
                booked=row.filled_qty,
                broker=order.filled_qty,
            )
        if delta > 0:
            price = order.filled_avg_price
            if price is None or not price > 0:
                # Cannot book without a price: keep it open, the next poll will.
                log.warning("order_fill_without_price", intent_id=iid, filled=order.filled_qty)
                interim = IntentStatus.PARTIALLY_FILLED if row.filled_qty else IntentStatus.ACCEPTED
                return await self._set(row, interim, None, None, order.broker_order_id)
            booked_value = row.filled_qty * (row.avg_fill_price or 0.0)
            delta_price = (order.filled_qty * price - booked_value) / delta
            if not delta_price > 0:
                delta_price = price
            try:
                new = await self._orders.book_fill(
                    iid,
                    delta,
                    delta_price,
                    status=status,
                    at=self._clock.now(),
                    broker_order_id=order.broker_order_id,
                )
            except (NegativePosition, OverFill) as exc:
                log.critical("order_fill_not_booked", intent_id=iid, error=str(exc))
                return await self._set(
                    row, row.status, BOOKING_FAILED, str(exc), order.broker_order_id
                )
            log.info(
                "order_filled",
                intent_id=iid,
                shares=delta,
                price=delta_price,
                filled_qty=new.filled_qty,
                status=str(new.status),
            )
            return new
        code: str | None = None
        message: str | None = None
        if status is IntentStatus.REJECTED:
            code, message = REJECTED, order.reject_reason or "rejected by the broker"
        elif row.error_code == CANCEL_REQUESTED and order.status is BrokerOrderStatus.CANCELED:
            code, message = CANCELED_BY_US, "cancelled by the daemon"
        elif (
            order.status is BrokerOrderStatus.CANCELED or order.status is BrokerOrderStatus.EXPIRED
        ):
            message = f"{order.status} at the broker"
        if (
            status is row.status
            and order.broker_order_id == row.broker_order_id
            and code == row.error_code
            and message == row.error_message
        ):
            return row
        return await self._set(row, status, code, message, order.broker_order_id)

    async def _set(
        self,
        row: IntentRow,
        status: IntentStatus,
        code: str | None,
        message: str | None,
        broker_order_id: str | None = None,
    ) -> IntentRow:
        return await self._orders.update_status(
            row.intent_id,
            status,
            at=self._clock.now(),
            broker_order_id=broker_order_id,
            error_code=code,
            error_message=message,
        )

    # ------------------------------------------------------------ StopOps (resting_stops)

    async def submit_intent(self, row: IntentRow) -> IntentRow:
        return await self._submit(row)

    async def apply_order(self, row: IntentRow, order: BrokerOrder) -> IntentRow:
        return await self._apply(row, order)

    async def set_intent(
        self, row: IntentRow, status: IntentStatus, code: str | None, message: str | None
    ) -> IntentRow:
        return await self._set(row, status, code, message)

    def recently_seen(self, intent_id: str) -> BrokerOrder | None:
        seen = self._seen.pop(intent_id, None)
        if seen is None or (self._clock.now() - seen[0]).total_seconds() > FRESH_S:
            return None
        return seen[1]

    # ------------------------------------------------------------ helpers

    def _today(self) -> dt.date:
        return self._clock.now().astimezone(MARKET_TZ).date()

    def _count(self, result: OrderResult) -> None:
        if self._metrics is None:
            return
        counter = getattr(self._metrics, "order_results", None)
        if counter is not None:
            counter.labels(status=str(result.status)).inc()


def _terms_differ(row: IntentRow, order: BrokerOrder) -> bool:
    """Whether the broker's resting stop sells another quantity or at another price."""
    if order.qty != row.target_qty:
        return True
    if order.stop_price is None or row.stop_price is None:
        return False
    return abs(order.stop_price - row.stop_price) > SAME_PRICE


def _is_blocked(row: IntentRow) -> bool:
    return row.error_code == ACCOUNT_BLOCKED


def _differs(old: IntentRow, new: IntentRow) -> bool:
    return (old.status, old.filled_qty, old.error_code, old.error_message) != (
        new.status,
        new.filled_qty,
        new.error_code,
        new.error_message,
    )


def _result(row: IntentRow, *, existing: bool = False) -> OrderResult:
    return OrderResult(
        intent_id=row.intent_id,
        strategy=row.strategy,
        symbol=row.symbol,
        side=row.side,
        qty=row.target_qty,
        status=row.status,
        filled_qty=row.filled_qty,
        avg_price=row.avg_fill_price,
        error=row.error_message,
        existing=existing,
        error_code=row.error_code,
    )


def _refused(
    spec: OrderIntentSpec, iid: str, qty: int, why: str, code: str | None = None
) -> OrderResult:
    log.warning("order_refused", intent_id=iid, symbol=spec.symbol, side=spec.side, reason=why)
    return OrderResult(
        iid,
        spec.strategy,
        spec.symbol,
        spec.side,
        qty,
        IntentStatus.REJECTED,
        error=why,
        error_code=code,
    )
