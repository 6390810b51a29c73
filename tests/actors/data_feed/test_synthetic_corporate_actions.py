"""The synthetic market's corporate actions: drawn from the seed, bars adjusted as of the end."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from actors.data_feed.params import SyntheticParams
from actors.data_feed.providers import ReportsCorporateActions
from actors.data_feed.providers.synthetic import (
    EPOCH_END,
    EPOCH_START,
    RENAME_SUFFIX,
    SyntheticProvider,
)
from actors.market.corporate_actions import ActionKind, CorporateAction, adjust_history

D = dt.date
UNIVERSE = [f"SYM{i:02d}" for i in range(12)]
PRICES = ["open", "high", "low", "close"]


def with_actions(rate: float = 2.0, seed: int = 20260101) -> SyntheticProvider:
    return SyntheticProvider(SyntheticParams(seed=seed, corporate_actions_per_year=rate))


def scale_on(days: pd.Series, actions: list[CorporateAction]) -> np.ndarray:
    """C(day): the product of the ratios of the splits with ex date on or before each day."""
    stamps = pd.to_datetime(days).to_numpy(dtype="datetime64[ns]")
    scale = np.ones(len(stamps))
    for a in actions:
        if a.kind.rescales:
            scale[stamps >= np.datetime64(a.ex_date, "ns")] *= a.ratio
    return scale


def first_split(provider: SyntheticProvider, start: dt.date, end: dt.date) -> CorporateAction:
    return next(a for a in provider.actions(UNIVERSE, start, end) if a.kind.rescales)


def first_rename(provider: SyntheticProvider) -> CorporateAction:
    actions = provider.actions(UNIVERSE, D(2001, 1, 1), D(2034, 1, 1))
    return next(a for a in actions if a.kind is ActionKind.RENAME)


async def test_rate_zero_means_no_actions_and_the_very_same_bars() -> None:
    """At 0 (the default) nothing is reported and the bars equal those without the key."""
    plain = SyntheticProvider()
    zero = SyntheticProvider(SyntheticParams(corporate_actions_per_year=0.0))
    assert plain.params.corporate_actions_per_year == 0.0
    assert await zero.corporate_actions(UNIVERSE, EPOCH_START, EPOCH_END) == []
    a = await plain.fetch(UNIVERSE, D(2020, 1, 1), D(2026, 6, 30))
    b = await zero.fetch(UNIVERSE, D(2020, 1, 1), D(2026, 6, 30))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(zero.generate_raw(UNIVERSE, D(2020, 1, 1), D(2026, 6, 30)), b)
    assert isinstance(zero, ReportsCorporateActions)


def test_same_seed_same_actions_other_seed_other_actions() -> None:
    """The actions depend on (seed, symbol, rate) only: not on the range or the other symbols."""
    one = with_actions().actions(UNIVERSE, EPOCH_START, EPOCH_END)
    assert one == with_actions().actions(UNIVERSE, EPOCH_START, EPOCH_END)
    alone = with_actions().actions(["SYM03"], D(2010, 1, 1), D(2020, 1, 1))
    assert alone
    assert alone == [
        a for a in one if a.symbol == "SYM03" and D(2010, 1, 1) <= a.ex_date <= D(2020, 1, 1)
    ]
    assert one != with_actions(seed=7).actions(UNIVERSE, EPOCH_START, EPOCH_END)


def test_the_mix_of_actions() -> None:
    """Splits 2:1, 3:2, 3:1, 1:10, 1:5; dividends of 0.2-5 %; at most one rename a symbol."""
    provider = with_actions()
    actions = provider.actions(UNIVERSE, EPOCH_START, EPOCH_END)
    years = (EPOCH_END - EPOCH_START).days / 365.25
    assert 0.8 < len(actions) / (2.0 * years * len(UNIVERSE)) < 1.1  # a session holds one at most
    kinds = Counter(a.kind for a in actions)
    assert kinds[ActionKind.CASH_DIVIDEND] > kinds[ActionKind.FORWARD_SPLIT] > 0
    assert kinds[ActionKind.REVERSE_SPLIT] > 0
    assert 0 < kinds[ActionKind.RENAME] <= len(UNIVERSE)
    forward = {a.ratio for a in actions if a.kind is ActionKind.FORWARD_SPLIT}
    assert forward == {2.0, 1.5, 3.0}
    assert {a.ratio for a in actions if a.kind is ActionKind.REVERSE_SPLIT} == {0.1, 0.2}
    renames = [a for a in actions if a.kind is ActionKind.RENAME]
    assert len({a.symbol for a in renames}) == len(renames)
    assert all(a.new_symbol == a.symbol + RENAME_SUFFIX for a in renames)
    raw = provider.generate_raw(UNIVERSE, EPOCH_START, EPOCH_END)
    for a in actions:
        if a.kind is ActionKind.CASH_DIVIDEND:
            assert a.pay_date is not None
            assert a.ex_date < a.pay_date
            rows = raw.loc[(raw["symbol"] == a.symbol) & (raw["date"] < pd.Timestamp(a.ex_date))]
            share = a.cash_per_share / float(rows["close"].iloc[-1])
            assert 0.0005 < share < 0.15, a  # 0.2-1 % (2-5 % special) of a month-old price


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (D(2024, 11, 25), D(2026, 11, 20)),
        (D(2005, 1, 1), D(2012, 6, 30)),
        (D(2030, 1, 1), D(2030, 3, 1)),
    ],
)
async def test_fetch_is_the_raw_bars_adjusted_as_of_its_end(start: dt.date, end: dt.date) -> None:
    """adjust_history(raw, corporate_actions(start, end), end) is exactly what fetch returns."""
    provider = with_actions()
    fetched = await provider.fetch(UNIVERSE, start, end)
    actions = await provider.corporate_actions(UNIVERSE, start, end)
    assert actions == sorted(actions, key=lambda a: a.ex_date)
    assert all(start <= a.ex_date <= end for a in actions)
    raw = provider.generate_raw(UNIVERSE, start, end)
    pd.testing.assert_frame_equal(fetched, adjust_history(raw, actions, end))
    assert list(fetched.columns) == ["symbol", "date", *PRICES, "volume"]
    for frame in (raw, fetched):
        assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
        assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
        assert (frame["low"] > 0).all()
        assert (frame["volume"] > 0).all()


async def test_a_split_divides_the_bars_before_it_and_leaves_the_rest() -> None:
    """As of a date on or after the ex date: before it raw / ratio, from it on the raw bars."""
    provider = with_actions()
    split = first_split(provider, D(2024, 1, 1), D(2025, 12, 31))
    start, end = split.ex_date - dt.timedelta(days=20), split.ex_date + dt.timedelta(days=20)
    [symbol] = [split.symbol]
    raw = provider.generate_raw([symbol], start, end)
    fetched = await provider.fetch([symbol], start, end)
    later = [a for a in provider.actions([symbol], split.ex_date, end) if a.kind.rescales]
    assert later == [split]  # no other split in the window
    before = raw["date"] < pd.Timestamp(split.ex_date)
    assert before.any()
    assert (~before).any()
    for column in PRICES:
        assert fetched.loc[before, column].to_numpy() == pytest.approx(
            raw.loc[before, column].to_numpy() / split.ratio
        )
        assert (fetched.loc[~before, column] == raw.loc[~before, column]).all()
    assert fetched.loc[before, "volume"].to_numpy() == pytest.approx(
        raw.loc[before, "volume"].to_numpy() * split.ratio
    )
    as_of_eve = await provider.fetch([symbol], start, split.ex_date - dt.timedelta(days=1))
    pd.testing.assert_frame_equal(as_of_eve, raw.loc[before].reset_index(drop=True))


async def test_the_economic_path_is_unchanged_by_the_actions() -> None:
    """fetch x C(end) is the path without actions, to half a cent of each raw print."""
    start, end = D(2015, 1, 1), D(2026, 11, 20)
    economic = SyntheticProvider().generate(UNIVERSE, start, end)
    provider = with_actions()
    fetched = await provider.fetch(UNIVERSE, start, end)
    assert fetched[["symbol", "date"]].equals(economic[["symbol", "date"]])
    for symbol in UNIVERSE:
        rows = (fetched["symbol"] == symbol).to_numpy()
        actions = provider.actions([symbol], EPOCH_START, end)
        c_day = scale_on(fetched.loc[rows, "date"], actions)
        c_end = float(np.prod([a.ratio for a in actions if a.kind.rescales]))
        for column in PRICES:
            got = fetched.loc[rows, column].to_numpy() * c_end
            want = economic.loc[rows, column].to_numpy()
            assert np.all(np.abs(got - want) <= 0.0051 * c_day + 1e-9), (symbol, column)


async def test_a_renamed_symbol_serves_its_company_under_both_names() -> None:
    """Before the rename the new symbol has nothing; from it on the whole history, both names."""
    provider = with_actions()
    rename = first_rename(provider)
    old, new, day = rename.symbol, rename.new_symbol, rename.ex_date
    assert new is not None
    start = day - dt.timedelta(days=400)
    early = await provider.fetch([new], start, day - dt.timedelta(days=1))
    assert early.empty
    assert await provider.corporate_actions([new], start, day - dt.timedelta(days=1)) == []
    end = day + dt.timedelta(days=400)
    both = await provider.fetch([old, new], start, end)
    under_old = both.loc[both["symbol"] == old].drop(columns="symbol").reset_index(drop=True)
    under_new = both.loc[both["symbol"] == new].drop(columns="symbol").reset_index(drop=True)
    pd.testing.assert_frame_equal(under_old, under_new)
    assert under_new["date"].iloc[0] < pd.Timestamp(day)  # the whole history
    old_actions = await provider.corporate_actions([old], start, end)
    new_actions = await provider.corporate_actions([new], start, end)
    assert rename in old_actions
    assert all(a.kind is not ActionKind.RENAME and a.symbol == new for a in new_actions)
    assert [(a.kind, a.ex_date) for a in new_actions] == [
        (a.kind, a.ex_date) for a in old_actions if a != rename
    ]
    raw = provider.generate_raw([new], start, end)
    pd.testing.assert_frame_equal(
        await provider.fetch([new], start, end), adjust_history(raw, new_actions, end)
    )
    assert provider.sector_of([new]) == {new: provider.sector_of([old])[old]}


async def test_only_the_asked_symbols_and_never_the_volatility_index() -> None:
    provider = with_actions()
    actions = await provider.corporate_actions(["SYM01", "VIX"], EPOCH_START, EPOCH_END)
    assert actions
    assert {a.symbol for a in actions} == {"SYM01"}
    frame = await provider.fetch(["SYM01", "VIX"], D(2024, 1, 1), D(2024, 3, 1))
    assert set(frame["symbol"]) == {"SYM01"}


async def test_drawing_every_schedule_at_once_changes_no_action_and_no_bar() -> None:
    """Schedules drawn for many names in one batch: each name's actions and bars as alone."""
    names = [*UNIVERSE, f"SYM01{RENAME_SUFFIX}", f"NONE{RENAME_SUFFIX}"]
    start, end = D(2020, 1, 1), D(2026, 6, 30)
    batched = with_actions()
    actions = batched.actions(names, EPOCH_START, EPOCH_END)
    bars = await batched.fetch(names, start, end)
    alone = [with_actions() for _ in names]
    assert actions == sorted(
        (
            a
            for p, n in zip(alone, names, strict=True)
            for a in p.actions([n], EPOCH_START, EPOCH_END)
        ),
        key=lambda a: (a.ex_date, a.symbol, a.kind),
    )
    one_by_one = [await p.fetch([n], start, end) for p, n in zip(alone, names, strict=True)]
    expected = pd.concat([f for f in one_by_one if not f.empty], ignore_index=True)
    pd.testing.assert_frame_equal(
        bars.sort_values(["symbol", "date"], ignore_index=True),
        expected.sort_values(["symbol", "date"], ignore_index=True),
        check_exact=True,
    )


def _printed_alone(bars: pd.DataFrame, actions: list[CorporateAction]) -> pd.DataFrame:
    """One name's economic bars as printed, one pandas step at a time (the reference)."""
    splits = [a for a in actions if a.kind.rescales]
    out = bars.reset_index(drop=True)
    if not splits or out.empty:
        return out
    scale = scale_on(out["date"], splits)
    out = out.copy()
    for column in PRICES:
        price = out[column].to_numpy(dtype=np.float64) / scale
        out[column] = np.maximum(np.rint(price * 100.0) / 100.0, 0.01)
    out["volume"] = np.maximum(np.rint(out["volume"].to_numpy(dtype=np.float64) * scale), 1.0)
    return out


@pytest.mark.parametrize("adjusted", [True, False])
def test_every_name_at_once_is_each_name_printed_and_adjusted_alone(adjusted: bool) -> None:
    """The block path's bars are, to the bit, each name's bars printed and adjusted alone."""
    provider = with_actions(rate=3.0)
    names = [*UNIVERSE, f"SYM01{RENAME_SUFFIX}", f"SYM05{RENAME_SUFFIX}"]
    start, end = D(2021, 3, 1), D(2026, 6, 30)
    got = (
        provider.generate(names, start, end)
        if adjusted
        else provider.generate_raw(names, start, end)
    )
    reference = with_actions(rate=3.0)
    parts = []
    for name in sorted(names):
        listing = reference._listing(name)
        if not listing.listed_by(end):
            continue
        bars = reference._economic([listing.company], start, end).assign(symbol=name)
        actions = list(reference._actions_of(name, listing))
        printed = _printed_alone(bars, actions)
        parts.append(adjust_history(printed, actions, end) if adjusted else printed)
    want = pd.concat(parts, ignore_index=True)
    assert len({n for n in names if with_actions()._listing(n).listed_by(end)}) == len(parts)
    assert any(a.kind.rescales for n in names for a in reference.actions([n], start, end))
    pd.testing.assert_frame_equal(got, want, check_exact=True)
