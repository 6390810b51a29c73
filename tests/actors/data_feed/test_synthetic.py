"""The synthetic provider: invariants, determinism, correlation structure, the VIX series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.data_feed.params import SyntheticParams
from actors.data_feed.providers.synthetic import SyntheticProvider, epoch_sessions

D = dt.date
UNIVERSE = [f"SYM{i:02d}" for i in range(40)]


def invariants_hold(frame: pd.DataFrame) -> bool:
    body_hi = frame[["open", "close"]].max(axis=1)
    body_lo = frame[["open", "close"]].min(axis=1)
    return bool(
        (frame["high"] >= body_hi).all()
        and (body_hi >= body_lo).all()
        and (body_lo >= frame["low"]).all()
        and (frame["low"] > 0).all()
        and (frame["volume"] > 0).all()
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    symbols=st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=8, unique=True),
    first=st.integers(min_value=0, max_value=8500),
    length=st.integers(min_value=1, max_value=400),
)
def test_bars_always_satisfy_the_ohlc_invariants(
    seed: int, symbols: list[str], first: int, length: int
) -> None:
    """high >= max(open, close) >= min(open, close) >= low > 0 and volume > 0, always."""
    days = epoch_sessions()
    start, end = days[first].date(), days[min(first + length, len(days) - 1)].date()
    frame = SyntheticProvider(SyntheticParams(seed=seed)).generate(symbols, start, end)
    assert invariants_hold(frame)
    assert set(frame["symbol"]) == set(symbols)
    assert np.isfinite(frame[["open", "high", "low", "close", "volume"]].to_numpy()).all()


async def test_fetch_returns_the_long_frame_contract() -> None:
    """Columns, dtypes, sorting and only sessions in [start, end]."""
    frame = await SyntheticProvider().fetch(["MSFT", "AAPL"], D(2024, 3, 25), D(2024, 4, 5))
    assert list(frame.columns) == ["symbol", "date", "open", "high", "low", "close", "volume"]
    assert str(frame["date"].dtype) == "datetime64[ns]"
    assert list(frame["symbol"].unique()) == ["AAPL", "MSFT"]
    dates = list(frame.loc[frame["symbol"] == "AAPL", "date"].dt.date)
    assert D(2024, 3, 29) not in dates  # Good Friday
    assert dates[0] == D(2024, 3, 25)
    assert dates[-1] == D(2024, 4, 5)
    assert len(dates) == 9


async def test_same_symbol_same_date_same_bar_whatever_was_asked() -> None:
    """A bar depends only on (seed, symbol, date): not on the range or the other symbols."""
    wide = await SyntheticProvider().fetch(UNIVERSE, D(2023, 1, 1), D(2024, 12, 31))
    narrow = await SyntheticProvider().fetch(["SYM07", "SYM03"], D(2024, 2, 14), D(2024, 3, 7))
    expected = wide.loc[
        wide["symbol"].isin(["SYM03", "SYM07"])
        & (wide["date"] >= "2024-02-14")
        & (wide["date"] <= "2024-03-07")
    ].reset_index(drop=True)
    pd.testing.assert_frame_equal(narrow, expected)


async def test_the_seed_changes_the_market() -> None:
    """Another seed gives other bars."""
    a = await SyntheticProvider(SyntheticParams(seed=1)).fetch(
        ["AAPL"], D(2024, 1, 1), D(2024, 2, 1)
    )
    b = await SyntheticProvider(SyntheticParams(seed=2)).fetch(
        ["AAPL"], D(2024, 1, 1), D(2024, 2, 1)
    )
    assert not np.allclose(a["close"], b["close"])


async def test_volatility_symbol_is_not_a_bar() -> None:
    """VIX is served by volatility_index, never as a tradeable symbol."""
    frame = await SyntheticProvider().fetch(["VIX", "AAPL"], D(2024, 1, 1), D(2024, 2, 1))
    assert set(frame["symbol"]) == {"AAPL"}


async def test_prices_stay_in_a_sane_band_over_decades() -> None:
    """Over the whole 36-year epoch no symbol collapses or explodes."""
    frame = await SyntheticProvider().fetch(UNIVERSE, D(2000, 1, 1), D(2035, 12, 31))
    assert frame["low"].min() > 0.5
    assert frame["high"].max() < 20_000


async def test_within_sector_correlation_exceeds_across_sector() -> None:
    """Symbols of one sector move together more than symbols of different sectors."""
    provider = SyntheticProvider(SyntheticParams(sectors=4))
    names = [f"S{i:03d}" for i in range(60)]
    frame = await provider.fetch(names, D(2015, 1, 1), D(2019, 12, 31))
    wide = frame.pivot(index="date", columns="symbol", values="close")
    corr = wide.apply(np.log).diff().dropna().corr().to_numpy()
    by_name = provider.sector_of(names)
    sector = np.array([by_name[s] for s in wide.columns])
    same = sector[:, None] == sector[None, :]
    off_diagonal = ~np.eye(len(names), dtype=bool)
    within = corr[same & off_diagonal].mean()
    across = corr[~same].mean()
    assert within > across + 0.1
    assert across > 0.1  # the market factor ties everything together


async def test_vix_is_in_range_and_tracks_realised_market_volatility() -> None:
    """The VIX-like series stays roughly in 9..80 and rises with realised market vol."""
    provider = SyntheticProvider()
    start, end = D(2005, 1, 1), D(2024, 12, 31)
    vix = await provider.volatility_index(start, end)
    days = epoch_sessions()
    inside = (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
    assert vix.index.equals(days[inside])
    assert vix.between(9, 80).all()
    assert 12 <= vix.median() <= 30
    assert vix.quantile(0.98) > 30
    frame = await provider.fetch(UNIVERSE, start, end)
    wide = frame.pivot(index="date", columns="symbol", values="close")
    market = wide.apply(np.log).diff().mean(axis=1)
    realised = market.rolling(21).std() * np.sqrt(252) * 100
    joined = pd.concat([vix, realised], axis=1).dropna()
    assert joined.corr().iloc[0, 1] > 0.6


async def test_big_moves_come_with_more_volume() -> None:
    """Volume spikes on large moves: the top move days trade more than the quiet ones."""
    frame = await SyntheticProvider().fetch(UNIVERSE[:10], D(2010, 1, 1), D(2020, 12, 31))
    frame["move"] = frame.groupby("symbol")["close"].transform(lambda c: np.log(c).diff().abs())
    frame["rel_volume"] = frame["volume"] / frame.groupby("symbol")["volume"].transform("median")
    big = frame["move"] > frame.groupby("symbol")["move"].transform(lambda m: m.quantile(0.95))
    assert frame.loc[big, "rel_volume"].median() > 1.5 * frame.loc[~big, "rel_volume"].median()


async def test_trending_and_mean_reverting_stretches_both_occur() -> None:
    """Some months trend (large monthly moves), and daily returns are not all alike."""
    frame = await SyntheticProvider().fetch(["AAPL"], D(2005, 1, 1), D(2024, 12, 31))
    close = frame.set_index("date")["close"]
    monthly = np.log(close).resample("ME").last().diff().dropna()
    assert (monthly.abs() > 0.10).sum() >= 10
    daily = np.log(close).diff().dropna()
    lag1 = daily.rolling(63).apply(lambda r: pd.Series(r).autocorr(), raw=True).dropna()
    assert lag1.min() < -0.2
    assert lag1.max() > 0.1


async def test_requests_outside_the_epoch_are_empty() -> None:
    """Before 2000-01-03 there is nothing, and an inverted range is empty."""
    provider = SyntheticProvider()
    assert (await provider.fetch(["AAPL"], D(1990, 1, 1), D(1999, 12, 31))).empty
    assert (await provider.fetch(["AAPL"], D(2024, 2, 1), D(2024, 1, 1))).empty


@pytest.mark.parametrize("sectors", [1, 50])
async def test_sector_count_extremes_work(sectors: int) -> None:
    """One sector and fifty sectors both generate valid bars."""
    provider = SyntheticProvider(SyntheticParams(sectors=sectors))
    frame = await provider.fetch(UNIVERSE[:5], D(2024, 1, 1), D(2024, 6, 30))
    assert invariants_hold(frame)
