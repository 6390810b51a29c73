"""A market loaded once for a backtest: every bar and every indicator over the whole history.

Indicators are causal (the value at row t uses rows <= t only), so computing
them once over the whole history and slicing rows before ``asof`` gives a
strategy exactly what it could have known. ``window`` returns views, not
copies: a 10-year backtest does not recompute a 300-day window every day.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import numpy as np
import pandas as pd

from actors.data_feed.indicators import compute_indicators
from actors.data_feed.panel import BarPanel, FloatArray
from actors.data_feed.providers import BarProvider


@dataclass(frozen=True, eq=False)
class PrecomputedMarket:
    panel: BarPanel
    indicators: dict[str, FloatArray]
    volatility_index: pd.Series | None
    provider: str

    @classmethod
    async def load(
        cls, provider: BarProvider, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> PrecomputedMarket:
        """Fetch ``[start, end]`` once and compute the indicators in a worker thread."""
        frame = await provider.fetch(list(symbols), start, end)
        vix = await provider.volatility_index(start, end)

        def build() -> tuple[BarPanel, dict[str, FloatArray]]:
            panel = BarPanel.from_long(frame)
            return panel, dict(compute_indicators(panel)) if panel.shape[1] else {}

        panel, indicators = await anyio.to_thread.run_sync(build)
        return cls(panel, indicators, vix, provider.name)

    def window(self, asof: dt.date, history_days: int) -> tuple[BarPanel, dict[str, FloatArray]]:
        """The ``history_days`` sessions strictly before ``asof`` and their indicator rows."""
        stop = int(self.panel.dates.searchsorted(pd.Timestamp(asof), side="left"))
        start = max(0, stop - history_days)
        return (
            self.panel.rows(start, stop),
            {k: v[start:stop] for k, v in self.indicators.items()},
        )

    def price(self, symbol: str, session: dt.date, field: str) -> float | None:
        """The open or close of ``symbol`` on ``session`` (None when there is no bar)."""
        row = self._rows.get(session)
        col = self._cols.get(symbol)
        if row is None or col is None:
            return None
        value = float(getattr(self.panel, field)[row, col])
        return value if np.isfinite(value) else None

    @functools.cached_property
    def _rows(self) -> dict[dt.date, int]:
        return {ts.date(): i for i, ts in enumerate(self.panel.dates)}

    @functools.cached_property
    def _cols(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.panel.symbols)}


def select_columns(
    indicators: dict[str, FloatArray], panel: BarPanel, symbols: Sequence[str]
) -> dict[str, FloatArray]:
    """The indicator columns of ``symbols`` (in that order) from arrays aligned with ``panel``."""
    index = {s: i for i, s in enumerate(panel.symbols)}
    cols = [index[s] for s in symbols]
    return {k: v[:, cols] for k, v in indicators.items()}
