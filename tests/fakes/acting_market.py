"""The synthetic market with chosen corporate actions in it, served as a feed serves it.

``ActingMarket(actions)`` wraps the synthetic provider (no actions of its own): its
bars adjusted as of the last day asked for, its ``corporate_actions`` reported, a
renamed symbol's bars under the new name from the ex date on. For tests that need
one action on one held symbol on one day (backtests, the live graph on fake Alpaca).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from actors.data_feed.params import SyntheticParams
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.corporate_actions import ActionKind, CorporateAction


class ActingMarket:
    """The synthetic market (no actions of its own) with ``actions`` in it, as a feed
    gives it: bars adjusted as of the last day asked for (a split's ex date on or before
    it: the whole series / ratio), a renamed symbol's bars under its new name from the
    ex date on."""

    name = "synthetic"

    def __init__(self, actions: Sequence[CorporateAction] = ()) -> None:
        self._inner = SyntheticProvider(SyntheticParams())
        self.actions = list(actions)

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        renamed = {a.new_symbol: a for a in self.actions if a.new_symbol}
        wanted = [renamed[s].symbol if s in renamed else s for s in symbols]
        frame = await self._inner.fetch(list(dict.fromkeys(wanted)), start, end)
        parts = []
        for a in self.actions:
            if a.kind is ActionKind.RENAME and a.new_symbol:
                old = (frame["symbol"] == a.symbol) & (frame["date"] >= pd.Timestamp(a.ex_date))
                moved = frame.loc[old].assign(symbol=a.new_symbol)
                frame = frame.loc[~old]
                if a.new_symbol in symbols:
                    parts.append(moved)
        frame = pd.concat([frame, *parts], ignore_index=True) if parts else frame
        # The synthetic series is the economic one: it printed so before the ex date and
        # / ratio from it on; adjusted as of a day on or after the ex date, all of it / ratio.
        for a in self.actions:
            if a.kind.rescales and a.ex_date <= end:
                rows = frame["symbol"] == a.symbol
                for col in ("open", "high", "low", "close"):
                    frame.loc[rows, col] = frame.loc[rows, col] / a.ratio
                frame.loc[rows, "volume"] = frame.loc[rows, "volume"] * a.ratio
        return frame.sort_values(["symbol", "date"]).reset_index(drop=True)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        return await self._inner.volatility_index(start, end)

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        return [a for a in self.actions if a.symbol in symbols and start <= a.ex_date <= end]
