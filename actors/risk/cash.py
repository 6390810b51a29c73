"""Per-strategy cash: each strategy spends its allocation and its own gains, never another's.

A :class:`CashLedger` is pure and in memory; the owning actor persists it by
saving :meth:`CashLedger.state` and rebuilds it with ``CashLedger(**state)``.

Vocabulary, per strategy:

* ``allocation``: the capital the strategy was given;
* ``realized``: its realised P&L so far (signed: a losing strategy has less to spend,
  a winning one compounds its own gains);
* ``committed``: cost basis of its open positions;
* ``reserved``: cash held back for its orders in flight.

``available(strategy) = min(allocation + realized - committed - reserved,
account_cash - all reservations)``, never below 0. A strategy's buying power is
its own money only: a loss it realised is never covered by the headroom the
other strategies leave unused in the account. Order life cycle:
:meth:`~CashLedger.reserve` before submitting; on a fill
:meth:`~CashLedger.commit` turns the reservation into a position (spending the
actual cost from account cash); on a cancel or reject
:meth:`~CashLedger.release` gives it back; on a sale
:meth:`~CashLedger.record_sale` frees the cost basis and adds the proceeds.

Only ``reserve`` is a gate: it never lets total reservations exceed account
cash nor a strategy's committed + reserved exceed its allocation. Amounts are
kept in whole cents (rounded half-even) so these invariants hold exactly, with
no float drift; sub-cent differences are not money.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypedDict

INSUFFICIENT_CASH = "insufficient_cash"
"""Reason code of a trade refused for lack of cash (a parkable block)."""


class CashState(TypedDict):
    """What the actor persists; ``CashLedger(**state)`` restores it."""

    allocations: dict[str, float]
    account_cash: float
    committed: dict[str, float]
    reserved: dict[str, float]
    realized: dict[str, float]


def _cents(amount: float, what: str, *, signed: bool = False) -> int:
    if not math.isfinite(amount) or (amount < 0 and not signed):
        kind = "a finite amount" if signed else "a finite, non-negative amount"
        raise ValueError(f"{what} must be {kind}, got {amount!r}")
    return round(amount * 100)


def _dollars(cents: int) -> float:
    return cents / 100


class CashLedger:
    """Allocations, positions' cost and reservations of every strategy; see the module docs."""

    __slots__ = ("_allocations", "_cash", "_committed", "_realized", "_reserved")

    def __init__(
        self,
        allocations: Mapping[str, float],
        account_cash: float,
        committed: Mapping[str, float] | None = None,
        reserved: Mapping[str, float] | None = None,
        realized: Mapping[str, float] | None = None,
    ) -> None:
        self._allocations = {s: _cents(v, f"allocation of {s}") for s, v in allocations.items()}
        self._cash = _cents(account_cash, "account cash", signed=True)
        self._committed = {
            s: _cents(v, f"committed cash of {s}") for s, v in (committed or {}).items()
        }
        self._reserved = {s: _cents(v, f"reserved of {s}") for s, v in (reserved or {}).items()}
        self._realized = {
            s: _cents(v, f"realized P&L of {s}", signed=True) for s, v in (realized or {}).items()
        }

    # -- reading -----------------------------------------------------------------------------

    @property
    def account_cash(self) -> float:
        """Cash in the account (the broker's figure, less fills since it was read)."""
        return _dollars(self._cash)

    @property
    def total_reserved(self) -> float:
        """All strategies' reservations together."""
        return _dollars(sum(self._reserved.values()))

    def allocation(self, strategy: str) -> float:
        """The strategy's allocation; 0 for a strategy without one."""
        return _dollars(self._allocations.get(strategy, 0))

    def committed(self, strategy: str) -> float:
        """Cost basis of the strategy's open positions."""
        return _dollars(self._committed.get(strategy, 0))

    def reserved(self, strategy: str) -> float:
        """Cash held back for the strategy's orders in flight."""
        return _dollars(self._reserved.get(strategy, 0))

    def realized(self, strategy: str) -> float:
        """The strategy's realised P&L (signed)."""
        return _dollars(self._realized.get(strategy, 0))

    def _available_cents(self, strategy: str) -> int:
        own = (
            self._allocations.get(strategy, 0)
            + self._realized.get(strategy, 0)
            - self._committed.get(strategy, 0)
            - self._reserved.get(strategy, 0)
        )
        account = self._cash - sum(self._reserved.values())
        return max(0, min(own, account))

    def available(self, strategy: str) -> float:
        """What ``strategy`` may still reserve: its own headroom, capped by the account's."""
        return _dollars(self._available_cents(strategy))

    def state(self) -> CashState:
        """A plain, JSON-ready copy of the ledger for persistence."""
        return CashState(
            allocations={s: _dollars(c) for s, c in self._allocations.items()},
            account_cash=_dollars(self._cash),
            committed={s: _dollars(c) for s, c in self._committed.items() if c},
            reserved={s: _dollars(c) for s, c in self._reserved.items() if c},
            realized={s: _dollars(c) for s, c in self._realized.items() if c},
        )

    # -- changing ----------------------------------------------------------------------------

    def reserve(self, strategy: str, amount: float) -> bool:
        """Hold back ``amount`` for ``strategy`` if it fits; False (and no change) if not."""
        cents = _cents(amount, "reservation")
        if cents > self._available_cents(strategy):
            return False
        self._reserved[strategy] = self._reserved.get(strategy, 0) + cents
        return True

    def release(self, strategy: str, amount: float) -> None:
        """Give back ``amount`` of the strategy's reservation (an order cancelled or rejected).

        Raises ``ValueError`` when that is more than the strategy has reserved.
        """
        self._reserved[strategy] = self._take_reservation(strategy, _cents(amount, "release"))

    def commit(self, strategy: str, reserved: float, cost: float) -> None:
        """A fill: drop ``reserved`` from the reservation and record a position costing ``cost``.

        ``cost`` (the actual fill cost) is spent from account cash and added to
        the strategy's committed amount; it may differ from the reservation.
        """
        remaining = self._take_reservation(strategy, _cents(reserved, "committed reservation"))
        spent = _cents(cost, "fill cost")
        self._reserved[strategy] = remaining
        self._committed[strategy] = self._committed.get(strategy, 0) + spent
        self._cash -= spent

    def record_sale(self, strategy: str, cost_basis: float, proceeds: float) -> None:
        """A sale: free ``cost_basis`` (committed floors at 0), add ``proceeds`` to cash,
        and book ``proceeds - cost_basis`` to the strategy's realised P&L."""
        basis = _cents(cost_basis, "cost basis")
        gained = _cents(proceeds, "proceeds")
        freed = min(basis, self._committed.get(strategy, 0))
        self._committed[strategy] = self._committed.get(strategy, 0) - freed
        self._realized[strategy] = self._realized.get(strategy, 0) + gained - basis
        self._cash += gained

    def _take_reservation(self, strategy: str, cents: int) -> int:
        held = self._reserved.get(strategy, 0)
        if cents > held:
            raise ValueError(
                f"{strategy} has {_dollars(held):.2f} reserved, cannot take {_dollars(cents):.2f}"
            )
        return held - cents
