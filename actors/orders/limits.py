"""Hard pre-trade limits: the last check before an order goes out (pure).

The risk rules decide what a strategy may want; the limits are what no order may
be, whatever decided it: a cap per order (shares, dollars), per position (dollars),
a price collar (the order's reference price against the last close: a bad print or
a wrong price would size an order on nonsense), caps on orders per cycle and per
day, and symbols no order may buy. They run after the risk rules in the cycle
(each refusal a funnel rejection at stage ``LIMITS``, seen in ``tradectl plan`` and
``why-no-trade``) and again in the order manager just before submission (so an
order from any path, a re-run or an operator command, meets them too).

What they apply to: every order that adds exposure (a buy). An order that takes
exposure off (a sell of shares held: a strategy's exit, a stop-loss, a flatten, a
protective stop) is never refused by them: a limit that keeps a position from
being closed adds risk instead of removing it. Sells are already bounded by what
is held (the order manager clamps them to the position), and they count towards
the per-cycle and per-day totals that refuse later buys.

One rule does hold sells back: FINRA's pattern-day-trader rule. In an account under
$25,000 with its three day trades of five sessions used (or flagged already), a sell
of shares bought today would be a fourth day trade and the broker would restrict the
account for 90 days; ``day_trade_refused`` says so, and the order manager holds the
sell (and the lot's resting stop) until the next session, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator

from actors.brokers.base import Broker
from daemon.errors import TradingdError

# Reason codes (funnel rejections, order intents' error codes as ``limit:<code>``).
RESTRICTED = "restricted_symbol"
ORDER_QTY = "max_order_qty"
ORDER_NOTIONAL = "max_order_notional"
POSITION_NOTIONAL = "max_position_notional"
PRICE_COLLAR = "price_collar"
ORDERS_PER_CYCLE = "max_orders_per_cycle"
ORDERS_PER_DAY = "max_orders_per_day"
PATTERN_DAY_TRADER = "pattern_day_trader"

#: FINRA Rule 4210: a margin account under this equity may not make a 4th day trade in
#: five sessions (it would be flagged a pattern day trader and restricted for 90 days).
PDT_EQUITY_MINIMUM = 25_000.0
PDT_MAX_DAY_TRADES = 3


class LimitsParams(BaseModel):
    """``[limits]``: finite by default, sized for the reference $100,000 account.

    The defaults catch a wrong size (a fat finger, a bad price, a unit error), not the
    reference configuration's own orders: its largest buy is about $26,000 (a strategy
    sized on the portfolio, on real MSFT bars; $20,000 in the 2-year synthetic backtest),
    so a buy is capped at about twice that. A cap of 10 % of equity would refuse most
    of the orders the reference system places and silently change its strategy.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_notional: float = Field(
        default=50_000.0, gt=0, allow_inf_nan=False, description="USD per buy order"
    )
    max_order_qty: int = Field(default=20_000, ge=1, description="shares per buy order")
    max_position_notional: float = Field(
        default=60_000.0,
        gt=0,
        allow_inf_nan=False,
        description="USD in one symbol after a buy (all strategies)",
    )
    price_collar_pct: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="a buy's reference price at most this far from the last close",
    )
    max_orders_per_cycle: int = Field(default=40, ge=1, description="orders one cycle places")
    max_orders_per_day: int = Field(default=80, ge=1, description="orders one trading date gets")
    restricted_symbols: tuple[str, ...] = Field(default=(), description="symbols never bought")

    @field_validator("restricted_symbols", mode="before")
    @classmethod
    def _symbols(cls, value: object) -> object:
        if isinstance(value, str):
            value = [s for s in value.split(",") if s.strip()]
        if isinstance(value, list | tuple):
            return tuple(str(s).strip().upper() for s in value)
        return value


@dataclass(frozen=True, slots=True)
class Breach:
    """Why an order is refused: the limit's code and the numbers, for the operator."""

    code: str
    details: dict[str, float | str] = field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(
            f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.details.items()
        )
        return f"{self.code} ({shown})" if shown else self.code


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """One buy as the limits see it, and the state it would add to."""

    symbol: str
    qty: int
    price: float  # the order's reference price
    last_close: float | None = None  # None: no close to collar against
    held_notional: float = 0.0  # the symbol's position now, all strategies, at ``price``
    orders_this_cycle: int = 0  # already placed (or to be placed) before this one
    orders_today: int = 0


def breach(order: OrderCheck, limits: LimitsParams) -> Breach | None:
    """The first limit a buy breaks (in the order of the module docstring), or None."""
    notional = order.qty * order.price
    checks: list[tuple[bool, Breach]] = [
        (order.symbol.upper() in limits.restricted_symbols, Breach(RESTRICTED)),
        (
            order.qty > limits.max_order_qty,
            Breach(ORDER_QTY, {"qty": float(order.qty), "limit": float(limits.max_order_qty)}),
        ),
        (
            notional > limits.max_order_notional,
            Breach(
                ORDER_NOTIONAL,
                {"notional": round(notional, 2), "limit": limits.max_order_notional},
            ),
        ),
        (
            order.held_notional + notional > limits.max_position_notional,
            Breach(
                POSITION_NOTIONAL,
                {
                    "position_after": round(order.held_notional + notional, 2),
                    "limit": limits.max_position_notional,
                },
            ),
        ),
        (_outside_collar(order, limits), _collar_breach(order, limits)),
        (
            order.orders_this_cycle >= limits.max_orders_per_cycle,
            Breach(ORDERS_PER_CYCLE, {"limit": float(limits.max_orders_per_cycle)}),
        ),
        (
            order.orders_today >= limits.max_orders_per_day,
            Breach(ORDERS_PER_DAY, {"limit": float(limits.max_orders_per_day)}),
        ),
    ]
    return next((b for hit, b in checks if hit), None)


def _outside_collar(order: OrderCheck, limits: LimitsParams) -> bool:
    close = order.last_close
    if close is None or not (math.isfinite(close) and close > 0):
        return False
    if not (math.isfinite(order.price) and order.price > 0):
        return True
    return abs(order.price / close - 1.0) > limits.price_collar_pct


def _collar_breach(order: OrderCheck, limits: LimitsParams) -> Breach:
    return Breach(
        PRICE_COLLAR,
        {
            "price": round(order.price, 4),
            "last_close": round(order.last_close or 0.0, 4),
            "collar": limits.price_collar_pct,
        },
    )


def day_trade_refused(
    equity: float, day_trades: int, flagged: bool, *, closes_todays_buy: bool
) -> Breach | None:
    """Whether an order that would make a day trade (a sell of shares bought today) must
    wait: the account is under the PDT equity minimum and has no day trade left (or is
    flagged already). None: it may go."""
    if not closes_todays_buy or equity >= PDT_EQUITY_MINIMUM:
        return None
    if not flagged and day_trades < PDT_MAX_DAY_TRADES:
        return None
    return Breach(
        PATTERN_DAY_TRADER,
        {
            "equity": round(equity, 2),
            "minimum": PDT_EQUITY_MINIMUM,
            "day_trades_5_sessions": float(day_trades),
        },
    )


async def account_day_trade_breach(broker: Broker) -> Breach | None:
    """``day_trade_refused`` for an order closing today's buy, on the broker's account;
    None when the account cannot be read (the broker's own check stands behind it)."""
    try:
        account = await broker.account()
    except TradingdError:
        return None
    return day_trade_refused(
        account.equity,
        account.daytrade_count,
        account.pattern_day_trader,
        closes_todays_buy=True,
    )
