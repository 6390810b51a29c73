"""BarCache (the bars table) and CachedProvider (fetch only what is missing)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from actors.data_feed.providers import CachedProvider, normalize_bars
from actors.data_feed.providers.synthetic import SyntheticProvider, epoch_sessions
from actors.store import open_store
from actors.store.bars import BarCache
from daemon.store.core import Store


def sessions(a: dt.date, b: dt.date) -> list[dt.date]:
    """The XNYS sessions in [a, b] (the synthetic provider's calendar)."""
    days = epoch_sessions()
    return [d.date() for d in days[(days >= pd.Timestamp(a)) & (days <= pd.Timestamp(b))]]


def bars(symbol: str, days: Sequence[dt.date], close: float = 10.0) -> pd.DataFrame:
    return normalize_bars(
        pd.DataFrame(
            {
                "symbol": symbol,
                "date": pd.to_datetime(list(days)),
                "open": close,
                "high": close + 1,
                "low": close - 1,
                "close": close,
                "volume": 1000.0,
            }
        )
    )


class CountingProvider:
    """Wraps the synthetic provider and records every (symbols, start, end) asked."""

    name = "counting"

    def __init__(self) -> None:
        self.inner = SyntheticProvider()
        self.calls: list[tuple[tuple[str, ...], dt.date, dt.date]] = []

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        self.calls.append((tuple(symbols), start, end))
        return await self.inner.fetch(symbols, start, end)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        return None


D = dt.date


async def test_put_then_load_round_trips(store: Store) -> None:
    """Bars written are read back identically, with the long-frame dtypes."""
    cache = BarCache(store)
    frame = pd.concat(
        [
            bars("AAA", sessions(D(2024, 1, 1), D(2024, 1, 31))),
            bars("BBB", sessions(D(2024, 1, 1), D(2024, 1, 31))),
        ]
    )
    assert await cache.put("p", frame) == len(frame)
    out = await cache.load("p", ["BBB", "AAA"], D(2024, 1, 1), D(2024, 1, 31))
    pd.testing.assert_frame_equal(out, normalize_bars(frame))
    assert str(out["date"].dtype) == "datetime64[ns]"


async def test_load_filters_provider_symbols_and_range(store: Store) -> None:
    """Only the asked provider, symbols and dates come back."""
    cache = BarCache(store)
    await cache.put("p", bars("AAA", sessions(D(2024, 1, 1), D(2024, 1, 31))))
    await cache.put("q", bars("AAA", sessions(D(2024, 1, 1), D(2024, 1, 31))))
    await cache.put("p", bars("BBB", sessions(D(2024, 1, 1), D(2024, 1, 31))))
    out = await cache.load("p", ["AAA"], D(2024, 1, 10), D(2024, 1, 12))
    assert list(out["symbol"]) == ["AAA"] * 3
    assert list(out["date"].dt.date) == [D(2024, 1, 10), D(2024, 1, 11), D(2024, 1, 12)]


async def test_put_replaces_an_existing_bar(store: Store) -> None:
    """Writing a bar again replaces it (a provider's correction wins)."""
    cache = BarCache(store)
    await cache.put("p", bars("AAA", [D(2024, 1, 2)], close=10.0))
    await cache.put("p", bars("AAA", [D(2024, 1, 2)], close=11.0))
    out = await cache.load("p", ["AAA"], D(2024, 1, 1), D(2024, 1, 31))
    assert list(out["close"]) == [11.0]


async def test_coverage_is_first_and_last_date_per_symbol(store: Store) -> None:
    """coverage() reports (first, last) for cached symbols only."""
    cache = BarCache(store)
    await cache.put("p", bars("AAA", sessions(D(2024, 1, 2), D(2024, 1, 31))))
    assert await cache.coverage("p", ["AAA", "ZZZ"]) == {"AAA": (D(2024, 1, 2), D(2024, 1, 31))}


async def test_many_symbols_are_chunked(store: Store) -> None:
    """More symbols than SQLite parameters per statement still load and cover."""
    cache = BarCache(store)
    names = [f"S{i:04d}" for i in range(600)]
    await cache.put("p", pd.concat([bars(s, [D(2024, 1, 2)]) for s in names]))
    assert len(await cache.coverage("p", names)) == 600
    assert len(await cache.load("p", names, D(2024, 1, 1), D(2024, 1, 3))) == 600


async def test_clear_forgets_bars(store: Store) -> None:
    """clear() drops one symbol's or a whole provider's bars."""
    cache = BarCache(store)
    await cache.put("p", pd.concat([bars("AAA", [D(2024, 1, 2)]), bars("BBB", [D(2024, 1, 2)])]))
    await cache.clear("p", ["AAA"])
    assert set(await cache.coverage("p", ["AAA", "BBB"])) == {"BBB"}
    await cache.clear("p")
    assert await cache.coverage("p", ["AAA", "BBB"]) == {}


async def test_empty_load_has_the_right_columns(store: Store) -> None:
    """Loading nothing gives an empty frame with the long-frame columns."""
    out = await BarCache(store).load("p", ["AAA"], D(2024, 1, 1), D(2024, 1, 31))
    assert out.empty
    assert list(out.columns) == ["symbol", "date", "open", "high", "low", "close", "volume"]


async def test_cached_provider_fetches_whole_range_once(store: Store) -> None:
    """The first fetch asks for everything; the same fetch again asks for nothing."""
    inner = CountingProvider()
    cached = CachedProvider(inner, BarCache(store), sessions)
    first = await cached.fetch(["AAA", "BBB"], D(2024, 1, 2), D(2024, 3, 29))
    again = await cached.fetch(["AAA", "BBB"], D(2024, 1, 2), D(2024, 3, 29))
    assert inner.calls == [(("AAA", "BBB"), D(2024, 1, 2), D(2024, 3, 28))]  # 29th: Good Friday
    pd.testing.assert_frame_equal(first, again)
    direct = await SyntheticProvider().fetch(["AAA", "BBB"], D(2024, 1, 2), D(2024, 3, 29))
    pd.testing.assert_frame_equal(first, direct)


async def test_cached_provider_next_day_fetches_only_the_new_session(store: Store) -> None:
    """A day later only the new session is asked for."""
    inner = CountingProvider()
    cached = CachedProvider(inner, BarCache(store), sessions)
    await cached.fetch(["AAA", "BBB"], D(2024, 1, 2), D(2024, 3, 27))
    out = await cached.fetch(["AAA", "BBB"], D(2024, 1, 3), D(2024, 3, 28))
    assert inner.calls[1:] == [(("AAA", "BBB"), D(2024, 3, 28), D(2024, 3, 28))]
    assert out["date"].max() == pd.Timestamp("2024-03-28")
    assert out["date"].min() == pd.Timestamp("2024-01-03")


async def test_cached_provider_skips_ranges_without_sessions(store: Store) -> None:
    """Asking again over a weekend asks the provider nothing."""
    inner = CountingProvider()
    cached = CachedProvider(inner, BarCache(store), sessions)
    await cached.fetch(["AAA"], D(2024, 1, 2), D(2024, 3, 1))  # a Friday
    await cached.fetch(["AAA"], D(2024, 1, 2), D(2024, 3, 3))  # the Sunday after
    assert len(inner.calls) == 1


async def test_cached_provider_restart_fetches_only_new_days(tmp_path: Path) -> None:
    """After a restart (a new store on the same file) only the new days are asked for."""
    path = tmp_path / "state.db"
    store = await open_store(path)
    try:
        await CachedProvider(CountingProvider(), BarCache(store), sessions).fetch(
            ["AAA"], D(2024, 1, 2), D(2024, 3, 1)
        )
    finally:
        await store.close()
    store = await open_store(path)
    try:
        inner = CountingProvider()
        await CachedProvider(inner, BarCache(store), sessions).fetch(
            ["AAA"], D(2024, 1, 2), D(2024, 3, 8)
        )
    finally:
        await store.close()
    assert inner.calls == [(("AAA",), D(2024, 3, 4), D(2024, 3, 8))]


async def test_cached_provider_new_symbol_gets_the_whole_range(store: Store) -> None:
    """A symbol added to the universe is fetched in full, the others only for new days."""
    inner = CountingProvider()
    cached = CachedProvider(inner, BarCache(store), sessions)
    await cached.fetch(["AAA"], D(2024, 1, 2), D(2024, 3, 1))
    out = await cached.fetch(["AAA", "NEW"], D(2024, 1, 2), D(2024, 3, 4))
    assert sorted(inner.calls[1:]) == [
        (("AAA",), D(2024, 3, 4), D(2024, 3, 4)),
        (("NEW",), D(2024, 1, 2), D(2024, 3, 4)),
    ]
    assert set(out["symbol"]) == {"AAA", "NEW"}


async def test_cached_provider_fills_earlier_history_once(store: Store) -> None:
    """A longer history asks only for the days before the cache, once."""
    inner = CountingProvider()
    cached = CachedProvider(inner, BarCache(store), sessions)
    await cached.fetch(["AAA"], D(2024, 2, 1), D(2024, 3, 1))
    await cached.fetch(["AAA"], D(2000, 1, 1), D(2024, 3, 1))
    await cached.fetch(["AAA"], D(2000, 1, 1), D(2024, 3, 1))
    assert inner.calls[1:] == [(("AAA",), D(2000, 1, 3), D(2024, 1, 31))]


async def test_cached_provider_passes_the_volatility_index_through(store: Store) -> None:
    """volatility_index comes from the inner provider."""
    inner = SyntheticProvider()
    cached = CachedProvider(inner, BarCache(store), sessions)
    vix = await cached.volatility_index(D(2024, 1, 2), D(2024, 1, 31))
    assert vix is not None
    assert len(vix) == 21
    assert cached.name == "synthetic"


def test_make_provider_builds_the_configured_provider(tmp_path: Path) -> None:
    """The factory builds synthetic by default, refuses missing settings, caches remote ones."""
    from actors.data_feed.params import AlpacaDataParams, CsvParams, DataParams
    from actors.data_feed.providers import make_provider
    from daemon.errors import ConfigError

    assert make_provider(DataParams()).name == "synthetic"
    with pytest.raises(ConfigError, match=r"data\.csv\.path"):
        make_provider(DataParams(provider="csv"))
    assert make_provider(DataParams(provider="csv", csv=CsvParams(path=tmp_path))).name == "csv"
    with pytest.raises(ConfigError, match="alpaca"):
        make_provider(DataParams(provider="alpaca"))
    with pytest.raises(ConfigError, match="alphavantage"):
        make_provider(DataParams(provider="alphavantage"))
    params = DataParams(provider="alpaca", alpaca=AlpacaDataParams(base_url="http://127.0.0.1:9"))
    plain = make_provider(params, alpaca_api_key="k", alpaca_secret_key="s")
    assert plain.name == "alpaca"
    assert not isinstance(plain, CachedProvider)


async def test_make_provider_wraps_remote_providers_in_the_cache(store: Store) -> None:
    """With a cache and a sessions function, a remote provider comes back cached."""
    from actors.data_feed.params import DataParams
    from actors.data_feed.providers import make_provider

    made = make_provider(
        DataParams(provider="alphavantage"),
        alphavantage_api_key="k",
        cache=BarCache(store),
        sessions_fn=sessions,
    )
    assert isinstance(made, CachedProvider)
    assert made.name == "alphavantage"
