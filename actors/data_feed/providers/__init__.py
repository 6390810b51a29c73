"""Where daily bars come from: the ``BarProvider`` protocol, the cache wrapper and the factory.

Every provider returns the same *long* frame: one row per (symbol, session) with
columns ``symbol, date, open, high, low, close, volume``; ``date`` is a tz-naive
midnight ``datetime64[ns]``; prices are split- and dividend-adjusted; only
sessions in ``[start, end]``; a symbol without data is simply absent (the
validator downstream decides what a missing symbol means). Blocking work
(HTTP, files, generation) runs in a worker thread, never on the event loop.

A provider that can tell *why* a symbol is missing (a CSV file that does not
parse) also implements ``ReportsProblems``: ``problems()`` maps each symbol its
last fetch could not read to the reason, and the data feed rejects those
symbols as ``bad_file`` instead of failing the whole market. Providers without
it are read through ``provider_problems`` as having none.

Concrete providers live in the submodules and are imported lazily by
``make_provider`` so that importing this package stays cheap:

- ``synthetic.SyntheticProvider`` (the embedded default)
- ``csv_provider.CsvProvider``
- ``alpaca.AlpacaBarProvider``
- ``alphavantage.AlphaVantageProvider``
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from actors.data_feed.providers.base import (
    PRICE_COLUMNS,
    BarProvider,
    ReportsCorporateActions,
    ReportsProblems,
    SessionsFn,
    clip_range,
    empty_bars,
    normalize_bars,
    provider_actions,
    provider_problems,
)
from actors.market.corporate_actions import CorporateAction
from daemon.errors import ConfigError

if TYPE_CHECKING:
    from actors.data_feed.params import DataParams
    from actors.store.bars import BarCache


class CachedProvider:
    """Serve bars from the ``BarCache`` and ask ``inner`` only for what is missing.

    Per symbol: never cached -> the whole ``[start, end]``; cached from F to L ->
    the sessions after L up to ``end`` and, when ``start`` is before F, the
    sessions from ``start`` up to F. Ranges with no session (by ``sessions_fn``)
    are not asked for. New bars are written to the cache, so a restart or the
    next day fetches only new days.

    History before a symbol's first cached bar that ``inner`` answered with
    nothing (a symbol listed after ``start``) is remembered in memory only, so
    it is asked again once per process; the ``bars`` table has no record of
    empty answers. The tail (after the last cached bar) is always asked: a bar
    the provider had not published yet must show up later. Gaps *inside* a
    cached span are not detected: the cache trusts that what it stored was
    contiguous.

    Callers must only ask for closed sessions: a bar fetched while its session
    is still trading would be cached as if it were final.
    """

    def __init__(self, inner: BarProvider, cache: BarCache, sessions_fn: SessionsFn) -> None:
        self.inner = inner
        self.cache = cache
        self.sessions_fn = sessions_fn
        self.name = inner.name
        self._asked: dict[str, list[tuple[dt.date, dt.date]]] = {}

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Cached bars plus whatever ``inner`` returns for the missing ranges."""
        wanted = list(dict.fromkeys(symbols))
        if not wanted or start > end:
            return empty_bars()
        coverage = await self.cache.coverage(self.name, wanted)
        groups: dict[tuple[dt.date, dt.date, bool], list[str]] = {}
        for symbol in wanted:
            for gap in self._missing(symbol, coverage.get(symbol), start, end):
                groups.setdefault(gap, []).append(symbol)
        for (gap_start, gap_end, head), group in sorted(groups.items()):
            fresh = await self.inner.fetch(group, gap_start, gap_end)
            fresh = clip_range(normalize_bars(fresh), gap_start, gap_end)
            fresh = fresh.loc[fresh["symbol"].isin(group)]
            if not fresh.empty:
                await self.cache.put(self.name, fresh)
            if head:
                for symbol in group:
                    self._asked.setdefault(symbol, []).append((gap_start, gap_end))
        return await self.cache.load(self.name, wanted, start, end)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        """Passed through to ``inner`` (no provider that has one is remote)."""
        return await self.inner.volatility_index(start, end)

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """Passed through to ``inner`` (never cached: an action can be announced late)."""
        return await provider_actions(self.inner, symbols, start, end)

    def _missing(
        self,
        symbol: str,
        span: tuple[dt.date, dt.date] | None,
        start: dt.date,
        end: dt.date,
    ) -> list[tuple[dt.date, dt.date, bool]]:
        """The (first session, last session, is-history-before-the-cache) ranges to ask for."""
        gaps: list[tuple[dt.date, dt.date, bool]] = []
        if span is None:
            gaps.append((start, end, False))
        else:
            first, last = span
            if start < first:
                gaps.append((start, min(end, first - dt.timedelta(days=1)), True))
            if end > last:
                gaps.append((max(start, last + dt.timedelta(days=1)), end, False))
        out: list[tuple[dt.date, dt.date, bool]] = []
        for gap_start, gap_end, head in gaps:
            sessions = list(self.sessions_fn(gap_start, gap_end))
            if not sessions:
                continue
            lo, hi = sessions[0], sessions[-1]
            if head and any(a <= lo and hi <= b for a, b in self._asked.get(symbol, [])):
                continue
            out.append((lo, hi, head))
        return out


def make_provider(
    params: DataParams,
    *,
    alpaca_api_key: str | None = None,
    alpaca_secret_key: str | None = None,
    alphavantage_api_key: str | None = None,
    cache: BarCache | None = None,
    sessions_fn: SessionsFn | None = None,
) -> BarProvider:
    """The provider ``params.provider`` names, wrapped in ``CachedProvider`` when remote.

    The two remote providers (alpaca, alphavantage) are cached when ``cache``
    and ``sessions_fn`` are given; synthetic and csv are local and never cached
    (a CSV edit must show at once). Missing credentials raise ``ConfigError``.
    """
    # The imports are lazy (PLC0415): alpaca-py and exchange_calendars take about
    # half a second each to import; only the configured provider is loaded.
    provider: BarProvider
    if params.provider == "synthetic":
        from actors.data_feed.providers.synthetic import SyntheticProvider

        return SyntheticProvider(params.synthetic, volatility_symbol=params.volatility_symbol)
    if params.provider == "csv":
        from actors.data_feed.providers.csv_provider import CsvProvider

        if params.csv.path is None:
            raise ConfigError("data.csv.path", "required when data.provider = 'csv'")
        return CsvProvider(params.csv.path, volatility_symbol=params.volatility_symbol)
    if params.provider == "alpaca":
        from actors.data_feed.providers.alpaca import AlpacaBarProvider

        if not alpaca_api_key or not alpaca_secret_key:
            raise ConfigError("alpaca keys", "required when data.provider = 'alpaca'")
        provider = AlpacaBarProvider(alpaca_api_key, alpaca_secret_key, params.alpaca)
    else:
        from actors.data_feed.providers.alphavantage import AlphaVantageProvider

        if not alphavantage_api_key:
            raise ConfigError(
                "alphavantage api key", "required when data.provider = 'alphavantage'"
            )
        provider = AlphaVantageProvider(alphavantage_api_key, params.alphavantage)
    if cache is not None and sessions_fn is not None:
        return CachedProvider(provider, cache, sessions_fn)
    return provider


__all__ = [
    "PRICE_COLUMNS",
    "BarProvider",
    "CachedProvider",
    "ReportsCorporateActions",
    "ReportsProblems",
    "SessionsFn",
    "clip_range",
    "empty_bars",
    "make_provider",
    "normalize_bars",
    "provider_actions",
    "provider_problems",
]
