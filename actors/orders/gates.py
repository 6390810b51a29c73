"""The gates an order passes before the ``OrderManager`` writes or sends it.

Before an intent is written (``PlaceOrders``, a new intent only: one that
exists already is resolved, not checked again)
----------------------------------------------------------------------------
- A buy meets the hard pre-trade limits (``actors.orders.limits``; the
  ``[limits]`` in force, None: none) on the position already held in the symbol
  and the day's other orders; a breach is REJECTED ``limit:<code>``, no row.
  The cycle checked them already: this is the last check, for every path to the
  broker (a re-run, an operator command).
- A sell of a lot bought today meets the pattern-day-trader rule
  (``limits.day_trade_refused``, on the broker's account; an account that cannot
  be read lets it pass, the broker's own check stands behind it): refused, it
  is REJECTED ``limit:<code>`` and waits for the next session.
- A sell is clamped to the strategy's held shares less what its open sell
  intents (not its resting stops) still have to sell; nothing left: REJECTED
  "nothing held", no row.

Before our own sell is sent (not a resting stop: ``clear_the_way``)
-------------------------------------------------------------------
The lot's protective stops resting at the broker (``actors.orders.resting_stops``)
are cancelled, and the cancel confirmed, so that at no instant do the resting
sells exceed what is held. A cancel not confirmed keeps the sell NEW with
``resting_stop_not_canceled`` (tried again at the next settle); the sell is then
sized on what is still held: nothing left (the stop sold first), it is CANCELED
``stopped_out``; less, it is cut to what is left.
"""

from __future__ import annotations

import datetime as dt

import structlog

from actors.brokers.base import Broker
from actors.messages import IntentStatus, OrderIntentSpec, OrderResult
from actors.orders.limits import (
    Breach,
    LimitsParams,
    OrderCheck,
    account_day_trade_breach,
    breach,
)
from actors.orders.resting_stops import MARKET_TZ, RestingStops, StopOps
from actors.orders.results import RESTING_STOP, STOPPED_OUT, refused
from actors.store.orders import IntentRow, OrderStore
from daemon.clock import Clock

log = structlog.get_logger()


class Gates:
    """The order manager's checks before writing and before sending (see the module docstring).

    ``ops`` writes an intent's status (the ``Submitter``, as for the resting stops).
    """

    def __init__(
        self,
        orders: OrderStore,
        broker: Broker,
        clock: Clock,
        stops: RestingStops,
        ops: StopOps,
    ) -> None:
        self._orders = orders
        self._broker = broker
        self._clock = clock
        self._stops = stops
        self._ops = ops

    # ------------------------------------------------------------ before writing

    async def check_buy(
        self, spec: OrderIntentSpec, iid: str, limits: LimitsParams | None
    ) -> OrderResult | None:
        """The refusal of a buy that breaks a pre-trade limit; None when it may be written."""
        hit = await self.limit_breach(spec, iid, limits)
        if hit is None:
            return None
        return refused(spec, iid, spec.qty, f"limit {hit.describe()}", f"limit:{hit.code}")

    async def check_sell(
        self, strategy_id: int, spec: OrderIntentSpec, iid: str
    ) -> OrderResult | int:
        """The shares a sell may be written for (clamped to what is held), or its refusal."""
        qty = spec.qty
        pdt = await self.day_trade_breach(strategy_id, spec)
        if pdt is not None:
            why = f"limit {pdt.describe()}: it would be a day trade; sell at the next session"
            return refused(spec, iid, qty, why, f"limit:{pdt.code}")
        available = await self.sellable(strategy_id, spec.symbol)
        if available <= 0:
            return refused(spec, iid, 0, "nothing held")
        if qty > available:
            log.warning("order_sell_clamped", intent_id=iid, requested=qty, held=available)
            qty = available
        return qty

    async def limit_breach(
        self, spec: OrderIntentSpec, iid: str, limits: LimitsParams | None
    ) -> Breach | None:
        """The pre-trade limit this buy breaks, if any (the cycle checked them already: this is
        the last check, for every path to the broker)."""
        if limits is None:
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
        return breach(check, limits)

    async def day_trade_breach(self, strategy_id: int, spec: OrderIntentSpec) -> Breach | None:
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
        return await account_day_trade_breach(self._broker)

    async def sellable(self, strategy_id: int, symbol: str) -> int:
        """Shares of the lot held less what our open sells of it still sell."""
        held = await self._orders.held(strategy_id, symbol)
        return held - await self.pending_sells(strategy_id, symbol)

    async def pending_sells(self, strategy_id: int, symbol: str, but: str = "") -> int:
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

    # ------------------------------------------------------------ before sending

    async def clear_the_way(self, row: IntentRow) -> IntentRow | None:
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
                await self._ops.set_intent(row, IntentStatus.NEW, RESTING_STOP, f"not sent: {why}")
                return None
        left = await self._orders.held(row.strategy_id, row.symbol)
        left -= await self.pending_sells(row.strategy_id, row.symbol, but=row.intent_id)
        if left <= 0:
            message = "nothing left to sell: the resting stop at the broker sold it first"
            await self._ops.set_intent(row, IntentStatus.CANCELED, STOPPED_OUT, message)
            return None
        if left < row.remaining_qty:
            log.warning("order_sell_cut_to_held", intent_id=row.intent_id, held=left)
            row = await self._orders.set_terms(
                row.intent_id, row.filled_qty + left, None, self._clock.now()
            )
        return row

    def _today(self) -> dt.date:
        return self._clock.now().astimezone(MARKET_TZ).date()
