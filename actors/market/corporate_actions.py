"""Corporate actions: what they are, and what they do to a holding and to a price history.

A ``CorporateAction`` is one event on one symbol, as a source reports it (Alpaca's
corporate-actions API, a CSV file beside the bars, the synthetic market). The
arithmetic here is pure and shared by the simulated broker (which applies an
action to its account as a broker does) and the daemon (which applies it to its
own book), so the two agree to the cent:

- **Split** (forward 2:1 has ``ratio`` 2.0, 3:2 has 1.5; reverse 1:10 has 0.1) and
  **stock dividend** (a 5 % stock dividend has ``ratio`` 1.05), effective at the
  open of ``ex_date``: shares become ``floor(shares x ratio)``; the fraction left
  over is paid in cash at the last close before ``ex_date`` divided by the ratio
  (cash in lieu); average price, stop and ATR are divided by the ratio, so the
  position's cost and its stop distance in dollars are unchanged.
- **Cash dividend**: ``cash_per_share`` for every share held at the open of
  ``ex_date`` (the entitlement), credited on ``pay_date`` (``ex_date`` when the
  source gives none). Prices are not touched: the provider's dividend adjustment
  of *history* is the provider's business, the account's price is the market's.
- **Rename** (a symbol change): the holding, its stop and its history carry over
  to ``new_symbol`` with nothing else changed.

A price history is adjusted *as of* a date: every bar before an action's
``ex_date`` (up to that date) has its prices divided by the ratio and its volume
multiplied by it; that is what an adjusted feed (Alpaca's ``adjustment=all``)
returns on that date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd


class ActionKind(StrEnum):
    FORWARD_SPLIT = "forward_split"
    REVERSE_SPLIT = "reverse_split"
    STOCK_DIVIDEND = "stock_dividend"
    CASH_DIVIDEND = "cash_dividend"
    RENAME = "rename"

    @property
    def rescales(self) -> bool:
        """Whether the action changes the share count and the price scale."""
        return self in (
            ActionKind.FORWARD_SPLIT,
            ActionKind.REVERSE_SPLIT,
            ActionKind.STOCK_DIVIDEND,
        )


_RESCALING = frozenset(
    {ActionKind.FORWARD_SPLIT, ActionKind.REVERSE_SPLIT, ActionKind.STOCK_DIVIDEND}
)


class BadCorporateAction(ValueError):
    """An action a source reported that cannot be applied (named, with what is wrong)."""


@dataclass(frozen=True, slots=True)
class CorporateAction:
    """One corporate action on ``symbol`` (see the module docstring for each kind)."""

    kind: ActionKind
    symbol: str
    ex_date: dt.date
    source: str
    ratio: float = 1.0
    cash_per_share: float = 0.0
    pay_date: dt.date | None = None
    new_symbol: str | None = None
    source_id: str | None = None
    #: Stable over sources and re-reads: kind, symbol, ex date and terms (derived once).
    action_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise BadCorporateAction(f"{self.kind} {self.symbol} {self.ex_date}: {problem}")
        object.__setattr__(self, "action_id", _action_id(self))

    @property
    def credited_on(self) -> dt.date:
        """When a cash dividend's cash arrives (its pay date, else its ex date)."""
        return self.pay_date or self.ex_date

    def describe(self) -> str:
        if self.kind.rescales:
            return f"{self.kind.replace('_', ' ')} {ratio_text(self.ratio)} on {self.symbol}"
        if self.kind is ActionKind.CASH_DIVIDEND:
            return f"cash dividend ${self.cash_per_share:g}/share on {self.symbol}"
        return f"rename {self.symbol} -> {self.new_symbol}"


def _action_id(a: CorporateAction) -> str:
    """``<symbol>-<ex date>-<kind>-`` and a hash of the kind, symbol, ex date and terms."""
    terms = f"{a.kind}|{a.symbol}|{a.ex_date}|{a.ratio:.10g}|"
    terms += f"{a.cash_per_share:.10g}|{a.new_symbol or ''}"
    return (
        f"{a.symbol}-{a.ex_date:%Y%m%d}-{a.kind}-" + hashlib.sha256(terms.encode()).hexdigest()[:8]
    )


def _problem(a: CorporateAction) -> str | None:
    """What makes ``a`` impossible to apply, or ``None``."""
    if not a.symbol:
        return "no symbol"
    if a.kind.rescales:
        if not (math.isfinite(a.ratio) and a.ratio > 0 and a.ratio != 1.0):
            return f"ratio must be positive and not 1, got {a.ratio!r}"
        if (a.kind is ActionKind.REVERSE_SPLIT) != (a.ratio < 1):
            return f"ratio {a.ratio} does not fit a {a.kind} (reverse splits are below 1)"
    elif a.kind is ActionKind.CASH_DIVIDEND:
        if not (math.isfinite(a.cash_per_share) and a.cash_per_share > 0):
            return f"cash per share must be positive, got {a.cash_per_share!r}"
        if a.pay_date is not None and a.pay_date < a.ex_date:
            return f"pay date {a.pay_date} before the ex date"
    elif a.kind is ActionKind.RENAME and (not a.new_symbol or a.new_symbol == a.symbol):
        return f"a rename needs a new symbol, got {a.new_symbol!r}"
    return None


def ratio_text(ratio: float) -> str:
    """``2.0`` -> ``"2:1"``, ``1.5`` -> ``"3:2"``, ``0.1`` -> ``"1:10"``."""
    for den in range(1, 101):
        num = ratio * den
        if abs(num - round(num)) < 1e-6 * max(1.0, num):
            return f"{round(num)}:{den}"
    return f"{ratio:g}:1"


@dataclass(frozen=True, slots=True)
class Rescaled:
    """A holding after a split or stock dividend (``cash_in_lieu`` for the fraction)."""

    shares: int
    avg_price: float
    stop: float | None
    atr: float | None
    cash_in_lieu: float


def rescale(
    shares: int,
    avg_price: float,
    stop: float | None,
    atr: float | None,
    ratio: float,
    *,
    last_close: float | None,
) -> Rescaled:
    """``shares`` after ``ratio``, the rest per share divided by it; the fraction in cash.

    ``last_close`` is the close before the ex date (unadjusted); without one the
    fraction is paid at the new average price.
    """
    exact = shares * ratio
    new = math.floor(exact + 1e-9)
    fraction = max(0.0, exact - new)
    new_avg = avg_price / ratio
    price = last_close / ratio if last_close is not None and last_close > 0 else new_avg
    return Rescaled(
        shares=new,
        avg_price=new_avg,
        stop=None if stop is None else stop / ratio,
        atr=None if atr is None else atr / ratio,
        cash_in_lieu=round(fraction * price, 2) if fraction > 1e-9 else 0.0,
    )


def dividend_cash(shares: int, action: CorporateAction) -> float:
    """The cash a holding of ``shares`` at the ex date receives (to the cent)."""
    return round(shares * action.cash_per_share, 2) if shares > 0 else 0.0


def adjustment_factors(
    dates: pd.Series, actions: Iterable[CorporateAction], asof: dt.date
) -> np.ndarray:
    """Per bar, the product of the ratios of actions after it with ``ex_date <= asof``."""
    days = pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]")
    factor = np.ones(len(days))
    for action in actions:
        if action.kind.rescales and action.ex_date <= asof:
            factor[days < np.datetime64(action.ex_date, "ns")] *= action.ratio
    return factor


def adjust_history(
    frame: pd.DataFrame, actions: Sequence[CorporateAction], asof: dt.date
) -> pd.DataFrame:
    """The long frame (``symbol, date, open, high, low, close, volume``) adjusted as of ``asof``.

    Only rescaling actions on the frame's own symbols count; bars on or after an
    action's ex date are left as they are. A frame with nothing to adjust is
    returned as is.
    """
    relevant = [a for a in actions if a.kind.rescales and a.ex_date <= asof]
    if frame.empty or not relevant:
        return frame
    out = frame.copy()
    for symbol, rows in out.groupby("symbol", sort=False).groups.items():
        mine = [a for a in relevant if a.symbol == symbol]
        if not mine:
            continue
        factor = adjustment_factors(out.loc[rows, "date"], mine, asof)
        for col in ("open", "high", "low", "close"):
            out.loc[rows, col] = out.loc[rows, col].to_numpy(dtype=float) / factor
        out.loc[rows, "volume"] = out.loc[rows, "volume"].to_numpy(dtype=float) * factor
    return out
