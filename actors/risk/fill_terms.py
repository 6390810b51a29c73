"""The terms the order store books a fill on: the modelled costs and the catastrophe stop.

The store records trades and positions; what a fill costs and where the stop
of a new position goes are trading decisions, made here and handed to the
store by the composition root (``actors.system.graph``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.brokers.costs import ModelledCosts
from actors.risk.stops import MIN_STOP, STOP_ATR_MULTIPLE


@dataclass(frozen=True, slots=True)
class ReferenceFillTerms:
    """The reference system's costs, and stops ``avg - k x ATR`` (never below ``MIN_STOP``).

    ``stop_atr_multiple`` (``risk.stop_atr_multiple``) is the ``k`` of an intent that
    does not carry its own; a strategy's own ``stop_atr_multiple`` rides on its intents.
    """

    costs: ModelledCosts = field(default_factory=ModelledCosts)
    stop_atr_multiple: float = STOP_ATR_MULTIPLE

    def trade_costs(self, qty: int, price: float) -> tuple[float, float]:
        return self.costs.trade_costs(qty, price)

    def stop_for(self, avg_price: float, atr: float | None, multiple: float | None) -> float | None:
        if not atr:
            return None
        return max(MIN_STOP, avg_price - (multiple or self.stop_atr_multiple) * atr)
