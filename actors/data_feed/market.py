"""A market loaded once for a backtest: every bar and every indicator over the whole history.

Bad bars are decided once over the whole history (``bar_repair.scan_bars``:
a bar's removal needs only its next bar, so the decision is what every later
window would make), and the indicators are computed once on the repaired bars.
Indicators are causal (the value at row t uses rows <= t only), so slicing
rows before ``asof`` gives a strategy exactly what it could have known.
``window`` returns views, not copies: a 10-year backtest does not recompute a
300-day window every day.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import numpy as np
import pandas as pd

from actors.data_feed.bar_repair import BarFlags, blank
from actors.data_feed.indicators import compute_indicators
from actors.data_feed.panel import BarPanel, FloatArray
from actors.data_feed.params import ValidationParams
from actors.data_feed.providers import BarProvider, provider_problems
from actors.data_feed.validator import scan


@dataclass(frozen=True, slots=True, eq=False)
class MarketWindow:
    """One session's window of a ``PrecomputedMarket``: raw bars, bar flags, indicators."""

    panel: BarPanel
    flags: BarFlags
    indicators: dict[str, FloatArray]


@dataclass(frozen=True, eq=False)
class PrecomputedMarket:
    """Raw bars (``panel``), their bar flags, and indicators on the repaired bars.

    ``problems`` maps a symbol the provider could not read to why (a bad CSV file);
    ``validation`` are the parameters ``flags`` were computed with.
    """

    panel: BarPanel
    indicators: dict[str, FloatArray]
    volatility_index: pd.Series | None
    provider: str
    flags: BarFlags | None = None
    validation: ValidationParams = field(default_factory=ValidationParams)
    problems: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    async def load(
        cls,
        provider: BarProvider,
        symbols: Sequence[str],
        start: dt.date,
        end: dt.date,
        *,
        validation: ValidationParams | None = None,
    ) -> PrecomputedMarket:
        """Fetch ``[start, end]`` once; flag bad bars and compute indicators in a worker thread."""
        frame = await provider.fetch(list(symbols), start, end)
        vix = await provider.volatility_index(start, end)
        problems = provider_problems(provider)
        raw = BarPanel.from_long(frame)
        market = cls(raw, {}, vix, provider.name, problems=problems)
        return await anyio.to_thread.run_sync(market.prepared, validation or ValidationParams())

    def prepared(self, validation: ValidationParams) -> PrecomputedMarket:
        """This market with bar flags and indicators for ``validation`` (blocking).

        ``self`` when they are already there; otherwise a new market.
        """
        if self.flags is not None and self.validation == validation:
            return self
        flags = scan(self.panel, validation)
        return PrecomputedMarket(
            panel=self.panel,
            indicators=_indicators(self.panel, flags),
            volatility_index=self.volatility_index,
            provider=self.provider,
            flags=flags,
            validation=validation,
            problems=self.problems,
        )

    def window(self, asof: dt.date, history_days: int) -> MarketWindow:
        """The ``history_days`` sessions strictly before ``asof``: bars, flags, indicator rows."""
        if self.flags is None:
            raise ValueError("PrecomputedMarket.window needs prepared() bar flags")
        stop = int(self.panel.dates.searchsorted(pd.Timestamp(asof), side="left"))
        start = max(0, stop - history_days)
        return MarketWindow(
            panel=self.panel.rows(start, stop),
            flags=self.flags.rows(start, stop),
            indicators={k: v[start:stop] for k, v in self.indicators.items()},
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


def _indicators(panel: BarPanel, flags: BarFlags) -> dict[str, FloatArray]:
    """Indicators over the whole history with the removed bars skipped."""
    if not panel.shape[1]:
        return {}
    return dict(compute_indicators(blank(panel, flags.removed)))


def select_columns(
    indicators: dict[str, FloatArray], panel: BarPanel, symbols: Sequence[str]
) -> dict[str, FloatArray]:
    """The indicator columns of ``symbols`` (in that order) from arrays aligned with ``panel``."""
    index = {s: i for i, s in enumerate(panel.symbols)}
    cols = [index[s] for s in symbols]
    return {k: v[:, cols] for k, v in indicators.items()}
