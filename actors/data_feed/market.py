"""A market loaded once for a backtest: every bar and every indicator over the whole history.

Bad bars are decided once over the whole history (``bar_repair.scan_bars``:
a bar's removal needs only its next bar, so the decision is what every later
window would make), and the indicators are computed once on the repaired bars.
Indicators are causal (the value at row t uses rows <= t only), so slicing
rows before ``asof`` gives a strategy exactly what it could have known.
``window`` returns views, not copies: a 10-year backtest does not recompute a
300-day window every day. ``load`` puts the universe's columns first, in its
order, so a session's universe is a slice of the history too.

Corporate actions, point in time. The provider gives the bars adjusted as of the
last session; the market also keeps the provider's actions over the run
(``actions``). A split with ex date ``e`` makes every bar before ``e`` look
``ratio`` times cheaper than it printed. So:

- ``raw_price`` is what printed on the day (adjusted x the ratios of the splits
  after it): what the simulated broker trades and marks at, as a broker does;
- ``window(asof)`` is the history as an adjusted feed gave it on ``asof``: the
  splits with ex date on or after ``asof`` not yet applied (prices and the
  price-level indicators x their ratios, volume / them, per symbol). Over one
  window that is one factor per symbol, so no window has a jump in it, and
  returns, RSI, ADX and the other ratios are the same numbers;
- ``corporate_actions`` reports them as a provider does (the simulated broker
  applies them to its account, the cycle to its book).

Without actions nothing is scaled and every number is as before, to the bit.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import numpy as np
import numpy.typing as npt
import pandas as pd

from actors.data_feed.bar_repair import BarFlags, IntArray, blank
from actors.data_feed.indicators import compute_indicators
from actors.data_feed.panel import BarPanel, FloatArray
from actors.data_feed.params import ValidationParams
from actors.data_feed.providers import BarProvider, provider_problems
from actors.data_feed.providers.base import provider_actions
from actors.data_feed.validator import scan
from actors.market.corporate_actions import CorporateAction

#: Indicators in price units (scaled with the prices); the others are ratios.
PRICE_LEVEL_INDICATORS = frozenset(
    {"sma20", "sma100", "atr14", "vwap20", "sma20_prev", "sma100_prev"}
)


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
    #: The provider's corporate actions on the symbols over the run, by ex date.
    actions: tuple[CorporateAction, ...] = ()

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
        actions = tuple(await provider_actions(provider, list(symbols), start, end))
        # A symbol renamed during the run trades on under its new name: its bars too.
        renamed = [a.new_symbol for a in actions if a.new_symbol and a.new_symbol not in symbols]
        frame = await provider.fetch(list(dict.fromkeys([*symbols, *renamed])), start, end)
        vix = await provider.volatility_index(start, end)
        problems = provider_problems(provider)
        raw = BarPanel.from_long(frame)
        order = symbols_first(raw.symbols, symbols)
        if tuple(order) != raw.symbols:
            # The universe's columns first, in its order: a session's window is then a
            # slice of the history (a view), not a selection of columns (a copy).
            raw = raw.select(order)
        market = cls(raw, {}, vix, provider.name, problems=problems, actions=actions)
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
            actions=self.actions,
        )

    def window(self, asof: dt.date, history_days: int) -> MarketWindow:
        """The ``history_days`` sessions strictly before ``asof``: bars, flags, indicator rows."""
        if self.flags is None:
            raise ValueError("PrecomputedMarket.window needs prepared() bar flags")
        stop = int(self.panel.dates.searchsorted(pd.Timestamp(asof), side="left"))
        start = max(0, stop - history_days)
        window = MarketWindow(
            panel=self.panel.rows(start, stop),
            flags=self.flags.rows(start, stop),
            indicators={k: v[start:stop] for k, v in self.indicators.items()},
        )
        factors = self.unapplied_factors(asof)
        return window if factors is None else _scaled(window, factors)

    def price(self, symbol: str, session: dt.date, field: str) -> float | None:
        """The open or close of ``symbol`` on ``session`` (None when there is no bar),
        adjusted as of the last session."""
        row = self._rows.get(session)
        col = self._cols.get(symbol)
        if row is None or col is None:
            return None
        value = float(getattr(self.panel, field)[row, col])
        return value if np.isfinite(value) else None

    def raw_price(self, symbol: str, session: dt.date, field: str) -> float | None:
        """``price`` as it printed on ``session`` (before the splits after it)."""
        value = self.price(symbol, session, field)
        if value is None or not self.actions:
            return value
        return value * self.scale(symbol, session)

    def raw_prices(
        self, symbols: Sequence[str], session: dt.date, field: str
    ) -> list[float | None]:
        """``raw_price`` of each of ``symbols`` on ``session``, with one array lookup."""
        row = self._rows.get(session)
        if row is None:
            return [None] * len(symbols)
        cols = [self._cols.get(s) for s in symbols]
        values = getattr(self.panel, field)[row].take([c for c in cols if c is not None]).tolist()
        out: list[float | None] = [None] * len(symbols)
        known = (i for i, c in enumerate(cols) if c is not None)
        splits = self._splits if self.actions else {}
        for i, value in zip(known, values, strict=True):
            if not math.isfinite(value):
                continue
            # A symbol without splits has a scale of exactly 1.0: the value as it is.
            out[i] = value * self.scale(symbols[i], session) if symbols[i] in splits else value
        return out

    def scale(self, symbol: str, session: dt.date) -> float:
        """The ratios of ``symbol``'s splits with ex date after ``session``, multiplied."""
        factor = 1.0
        for ex_date, ratio in self._splits.get(symbol, ()):
            if ex_date > session:
                factor *= ratio
        return factor

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """The actions on ``symbols`` with ex date in ``[start, end]`` (as a provider reports)."""
        return self.actions_between(symbols, start, end)

    def actions_between(
        self, symbols: Sequence[str] | set[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """``corporate_actions``, synchronously: a binary search, not a scan a session."""
        wanted = set(symbols)
        days, ranked = self._actions_by_ex_date
        # The actions in the date range (a binary search), in the order of ``actions``.
        picked = sorted(ranked[bisect.bisect_left(days, start) : bisect.bisect_right(days, end)])
        return [a for a in (self.actions[i] for i in picked) if a.symbol in wanted]

    def unapplied_factors(self, asof: dt.date) -> FloatArray | None:
        """Per panel column, the ratios of its splits on or after ``asof``; None when all 1.

        Each column's ratios are multiplied in the order of its actions (round ``i``
        takes every symbol's ``i``-th split; a split before ``asof`` multiplies by 1).
        """
        if not self._splits:
            return None
        factors = np.ones(len(self.panel.symbols))
        day = np.datetime64(asof, "D")
        for cols, ex_dates, ratios in self._split_rounds:
            factors[cols] *= np.where(ex_dates >= day, ratios, 1.0)
        return None if bool(np.all(factors == 1.0)) else factors

    def volatility_at(self, session: dt.date) -> tuple[float | None, dt.date | None]:
        """``last_value`` of the volatility index on ``session``, by a binary search."""
        found = self._volatility_arrays
        if found is None:
            return last_value(self.volatility_index, session)
        days, values = found
        pos = int(days.searchsorted(np.datetime64(session, "D"), side="right")) - 1
        if pos < 0:
            return None, None
        day_found: dt.date = days[pos].item()
        return float(values[pos]), day_found

    @functools.cached_property
    def _volatility_arrays(self) -> tuple[npt.NDArray[np.datetime64], FloatArray] | None:
        """The index's finite values and their days, when its dates are sorted, naive days."""
        series = self.volatility_index
        if series is None or series.empty:
            return None
        index = pd.to_datetime(series.index)
        if index.tz is not None or not index.is_monotonic_increasing:
            return None
        if not bool((index == index.normalize()).all()):
            return None
        finite = np.isfinite(series.to_numpy())
        days = index.to_numpy().astype("datetime64[D]")[finite]
        return days, series.to_numpy(dtype=np.float64)[finite]

    @functools.cached_property
    def _split_rounds(self) -> tuple[tuple[IntArray, npt.NDArray[np.datetime64], FloatArray], ...]:
        """The splits by rank within their symbol: (panel columns, ex dates, ratios) per rank."""
        by_col = [(self._cols[s], splits) for s, splits in self._splits.items() if s in self._cols]
        depth = max((len(splits) for _, splits in by_col), default=0)
        rounds = []
        for rank in range(depth):
            items = [(col, splits[rank]) for col, splits in by_col if len(splits) > rank]
            rounds.append(
                (
                    np.array([col for col, _ in items], dtype=np.intp),
                    np.array([ex for _, (ex, _) in items], dtype="datetime64[D]"),
                    np.array([ratio for _, (_, ratio) in items], dtype=np.float64),
                )
            )
        return tuple(rounds)

    @functools.cached_property
    def _splits(self) -> dict[str, tuple[tuple[dt.date, float], ...]]:
        out: dict[str, list[tuple[dt.date, float]]] = {}
        for a in self.actions:
            if a.kind.rescales:
                out.setdefault(a.symbol, []).append((a.ex_date, a.ratio))
        return {k: tuple(v) for k, v in out.items()}

    @functools.cached_property
    def _rows(self) -> dict[dt.date, int]:
        return {ts.date(): i for i, ts in enumerate(self.panel.dates)}

    @functools.cached_property
    def _cols(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.panel.symbols)}

    @functools.cached_property
    def _actions_by_ex_date(self) -> tuple[list[dt.date], list[int]]:
        """The actions' ex dates in increasing order, and each one's index in ``actions``."""
        ranked = sorted(range(len(self.actions)), key=lambda i: self.actions[i].ex_date)
        return [self.actions[i].ex_date for i in ranked], ranked


def _scaled(window: MarketWindow, factors: FloatArray) -> MarketWindow:
    """``window`` with each column's prices (and price-level indicators) x its factor."""
    p = window.panel
    panel = BarPanel(
        dates=p.dates,
        symbols=p.symbols,
        open=p.open * factors,
        high=p.high * factors,
        low=p.low * factors,
        close=p.close * factors,
        volume=p.volume / factors,
    )
    indicators = {
        k: (v * factors if k in PRICE_LEVEL_INDICATORS else v) for k, v in window.indicators.items()
    }
    return MarketWindow(panel=panel, flags=window.flags, indicators=indicators)


def _indicators(panel: BarPanel, flags: BarFlags) -> dict[str, FloatArray]:
    """Indicators over the whole history with the removed bars skipped."""
    if not panel.shape[1]:
        return {}
    return dict(compute_indicators(blank(panel, flags.removed)))


def symbols_first(have: Sequence[str], symbols: Sequence[str]) -> list[str]:
    """``have`` reordered: the ``symbols`` it has first (in their order), then the rest."""
    present = set(have)
    first = [s for s in dict.fromkeys(symbols) if s in present]
    chosen = set(first)
    return [*first, *(s for s in have if s not in chosen)]


def last_value(
    series: pd.Series | None, last_session: dt.date
) -> tuple[float | None, dt.date | None]:
    """The series' latest finite value on or before ``last_session``, and its date."""
    if series is None or series.empty:
        return None, None
    index = pd.to_datetime(series.index)
    upto = series[(index <= pd.Timestamp(last_session)) & np.isfinite(series.to_numpy())]
    if upto.empty:
        return None, None
    when = pd.Timestamp(upto.index[-1]).date()
    return float(upto.iloc[-1]), when


def select_columns(
    indicators: dict[str, FloatArray], panel: BarPanel, symbols: Sequence[str]
) -> dict[str, FloatArray]:
    """The indicator columns of ``symbols`` (in that order) from arrays aligned with ``panel``."""
    index = {s: i for i, s in enumerate(panel.symbols)}
    cols = [index[s] for s in symbols]
    return {k: v[:, cols] for k, v in indicators.items()}
