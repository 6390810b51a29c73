"""Execution costs of the reference system: 7.5 bps slippage, $0.005 per share."""

from __future__ import annotations

from dataclasses import dataclass

from actors.brokers.base import OrderSide

SLIPPAGE_BPS = 7.5
COMMISSION_PER_SHARE = 0.005


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill with its costs: buys pay up, sells receive less."""

    side: OrderSide
    qty: int
    reference_price: float
    exec_price: float
    slippage_cost: float
    commission_cost: float

    @property
    def total_cost(self) -> float:
        return self.slippage_cost + self.commission_cost

    @property
    def notional(self) -> float:
        return self.exec_price * self.qty

    @property
    def cash_delta(self) -> float:
        """Cash change: a buy spends notional + commission, a sell gets notional - commission."""
        if self.side is OrderSide.BUY:
            return -(self.notional + self.commission_cost)
        return self.notional - self.commission_cost


def apply_costs(
    side: OrderSide,
    qty: int,
    reference_price: float,
    *,
    slippage_bps: float = SLIPPAGE_BPS,
    commission_per_share: float = COMMISSION_PER_SHARE,
) -> Fill:
    """The fill of ``qty`` shares at ``reference_price`` after slippage and commission."""
    if qty <= 0:
        raise ValueError(f"qty must be positive, got {qty}")
    if not reference_price > 0:
        raise ValueError(f"reference price must be positive, got {reference_price}")
    slip = reference_price * slippage_bps / 10_000.0
    exec_price = reference_price + slip if side is OrderSide.BUY else reference_price - slip
    return Fill(
        side=side,
        qty=qty,
        reference_price=reference_price,
        exec_price=exec_price,
        slippage_cost=slip * qty,
        commission_cost=commission_per_share * qty,
    )


@dataclass(frozen=True, slots=True)
class ModelledCosts:
    """The cost model the order store books each trade with (the reference system's)."""

    slippage_bps: float = SLIPPAGE_BPS
    commission_per_share: float = COMMISSION_PER_SHARE

    def trade_costs(self, qty: int, price: float) -> tuple[float, float]:
        """``(slippage, commission)`` in dollars of ``qty`` shares at ``price``."""
        return qty * price * self.slippage_bps / 10_000.0, qty * self.commission_per_share
