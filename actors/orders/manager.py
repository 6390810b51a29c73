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

The actor and its parts
-----------------------
The actor owns the intents and takes the messages; the work on them is done by:

- ``actors.orders.gates``: the checks a new intent meets before it is written
  (the pre-trade limits on a buy; the pattern-day-trader rule and the clamp to
  what is held on a sell) and our own sell before it is sent (the lot's resting
  stop cancelled first);
- ``actors.orders.submission``: submitting one intent, what each answer or error
  of the broker makes of it, resolving it with the broker (the table there),
  booking its fills;
- ``actors.orders.resting_stops``: each lot's protective stop resting at the
  broker (``orders.broker_stops``);
- ``actors.orders.results``: the error codes written and the results reported.

Placing (``PlaceOrders``, in the given order)
---------------------------------------------
- A new intent passes the gates, then is written NEW; a refused one is
  REJECTED with the reason, and no row is written.
- The intent already exists (a re-run of the day): it is *resolved*, not
  submitted again; ``existing=True`` unless this call had to submit it because
  the broker has never heard of it (e.g. the first run met ``BrokerUnavailable``).
  A re-run's explicit ``PlaceOrders`` is not subject to the staleness rule: it
  asks for that day.
- ``AccountBlocked``: REJECTED with the error, and the rest of the batch is
  not submitted: those intents (already written, as the whole batch is written
  before the first submission) are closed EXPIRED with ``not_submitted``, so
  nothing submits them behind the kill switch's back later.

On start and on ``SettleOrders`` every non-terminal intent is resolved with the
broker; ``Flatten`` cancels the matching open orders, then sells the matching
positions at market. "Today" is the New York date of the injected clock.

Metrics are optional: with ``metrics`` given, ``metrics.orders`` (the Counter
``tradingd_orders_total``, labelled ``status``) counts each intent this manager
places, once, by its status when placing ends: a cycle's entries and exits and an
operator's flatten sells, never an intent a re-run found (``existing``) nor a
resting stop (those are ``RestingStops``' and carry a stop price).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from actors.brokers.base import Broker
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
from actors.orders.intents import SIDES, intent_id
from actors.orders.limits import LimitsParams
from actors.orders.results import NOT_SUBMITTED, is_blocked, refused, result_of
from actors.orders.submission import Submitter
from actors.store.orders import FillTerms, IntentRow, OrderStore
from daemon.actor import Actor, handles
from daemon.clock import Clock
from daemon.errors import Refusal, TradingdError
from daemon.store.core import Store

log = structlog.get_logger()

MARKET_TZ = ZoneInfo("America/New_York")


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
        self._submitter = Submitter(self._orders, broker, clock)
        self._stops = self._submitter.stops
        self._gates = self._submitter.gates
        self._broker = broker
        self._clock = clock
        self._strategy_ids: dict[str, int] = dict(strategy_ids or {})
        self._metrics = metrics
        self._last_resolution: dict[str, Any] = {}

    # ------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        """Resolve every non-terminal intent with the broker before taking any message."""
        changed = await self._submitter.resolve_all()
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
        cancelled = [result_of(await self._cancel_working(r)) for r in working]
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
            return await self._submitter.set_intent(
                row, IntentStatus.CANCELED, None, "cancelled by a flatten"
            )
        try:
            await self._broker.cancel(row.intent_id)
            order = await self._broker.order_by_client_id(row.intent_id)
        except TradingdError as exc:
            log.warning("flatten_cancel_failed", intent_id=row.intent_id, error=repr(exc))
            return row
        if order is None:  # never reached the broker: closed, so nothing submits it later
            return await self._submitter.set_intent(
                row, IntentStatus.CANCELED, None, "cancelled by a flatten"
            )
        return await self._submitter.apply_order(row, order)

    @handles(SettleOrders)
    async def settle(self, msg: SettleOrders) -> OrderResults:
        """Poll every non-terminal intent, book new fills; results of the intents that changed."""
        changed = await self._submitter.resolve_all()
        self._last_resolution = {
            "at": self._clock.now().isoformat(),
            "trigger": "settle",
            "changed": len(changed),
        }
        results = tuple(result_of(r) for r in changed)
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
            return refused(spec, "", spec.qty, f"invalid side {spec.side!r}")
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
            return refused(spec, iid, spec.qty, "qty must be positive")
        if spec.side == "buy":
            refusal = await self._gates.check_buy(spec, iid, self._limits)
            if refusal is not None:
                return refusal
        strategy_id = await self._strategy_id(spec.strategy)
        qty = spec.qty
        if spec.side == "sell":
            checked = await self._gates.check_sell(strategy_id, spec, iid)
            if isinstance(checked, OrderResult):
                return checked
            qty = checked
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
            row, submitted = await self._submitter.resolve(
                row, explicit=True, may_submit=not blocked
            )
            return result_of(row, existing=not submitted), submitted and is_blocked(row)
        if blocked is not None:
            # Written but never sent: closed now, so nothing submits it behind the switch later.
            row = await self._submitter.set_intent(
                row,
                IntentStatus.EXPIRED,
                NOT_SUBMITTED,
                f"account blocked: not submitted ({blocked})",
            )
            return result_of(row), False
        row = await self._submitter.submit_intent(row)
        return result_of(row), is_blocked(row)

    async def _strategy_id(self, name: str) -> int:
        sid = self._strategy_ids.get(name)
        if sid is None:
            sid = await self._orders.strategy_id(name)
            self._strategy_ids[name] = sid
        return sid

    # ------------------------------------------------------------ helpers

    def _today(self) -> dt.date:
        return self._clock.now().astimezone(MARKET_TZ).date()

    def _count(self, result: OrderResult) -> None:
        """One more placed order in ``tradingd_orders_total`` (see the module docstring)."""
        if self._metrics is not None and not result.existing:
            self._metrics.orders.labels(status=str(result.status)).inc()
