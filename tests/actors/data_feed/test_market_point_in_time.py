"""A backtest's precomputed market, point in time: the history as it was each day.

The provider's bars are adjusted as of the last session. With a split in the run,
``raw_price`` is what printed (before the split: x its ratio), and ``window(asof)``
the history an adjusted feed gave on ``asof`` (the split on or after ``asof`` not
applied yet). Every indicator is classed as price-level (scaled) or a ratio
(unchanged), checked against the indicators themselves. Without actions nothing
changes.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from actors.data_feed.indicators import INDICATOR_KEYS, compute_indicators
from actors.data_feed.market import (
    PRICE_LEVEL_INDICATORS,
    PrecomputedMarket,
    last_value,
    symbols_first,
)
from actors.data_feed.panel import BarPanel
from actors.data_feed.params import SyntheticParams, ValidationParams
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.market.corporate_actions import ActionKind, CorporateAction

CAL = ExchangeCalendar("XNYS", start=dt.date(2023, 1, 1), end=dt.date(2025, 12, 31)).load()
START, END = dt.date(2024, 1, 2), dt.date(2024, 12, 31)
SYMBOLS = ("AAPL", "MSFT", "XOM")
SPLIT = dt.date(2024, 10, 15)


def _panel() -> BarPanel:
    frame = SyntheticProvider(SyntheticParams()).generate(list(SYMBOLS), START, END)
    return BarPanel.from_long(frame)


def _market(actions: tuple[CorporateAction, ...]) -> PrecomputedMarket:
    base = PrecomputedMarket(_panel(), {}, None, "synthetic", actions=actions)
    return base.prepared(ValidationParams())


def test_every_indicator_is_classed_by_how_it_scales() -> None:
    """Prices x 3: the price-level indicators x 3, every other one the same number."""
    panel = _panel()
    k = 3.0
    scaled = BarPanel(
        panel.dates,
        panel.symbols,
        panel.open * k,
        panel.high * k,
        panel.low * k,
        panel.close * k,
        panel.volume / k,
    )
    plain, times_k = compute_indicators(panel), compute_indicators(scaled)
    assert set(INDICATOR_KEYS) >= PRICE_LEVEL_INDICATORS
    for key in INDICATOR_KEYS:
        expected = plain[key] * k if key in PRICE_LEVEL_INDICATORS else plain[key]
        np.testing.assert_allclose(times_k[key], expected, rtol=1e-7, atol=1e-9, err_msg=key)


def test_before_a_split_prices_and_history_are_as_they_printed() -> None:
    split = CorporateAction(ActionKind.FORWARD_SPLIT, "MSFT", SPLIT, "test", ratio=2.0)
    dividend = CorporateAction(ActionKind.CASH_DIVIDEND, "XOM", SPLIT, "test", cash_per_share=1.0)
    market, plain = _market((split, dividend)), _market(())
    before, on = CAL.previous_session(SPLIT), SPLIT
    adjusted = plain.price("MSFT", before, "close")
    assert adjusted is not None
    assert market.raw_price("MSFT", before, "close") == pytest.approx(2 * adjusted)
    assert market.raw_price("MSFT", on, "open") == plain.price("MSFT", on, "open")
    assert market.raw_price("XOM", before, "close") == plain.price("XOM", before, "close")
    col = SYMBOLS.index("MSFT")
    # On the ex date the history is still in the old scale: MSFT x 2, the others as they are.
    old, new = market.window(on, 250), plain.window(on, 250)
    np.testing.assert_allclose(old.panel.close[:, col], 2 * new.panel.close[:, col])
    np.testing.assert_allclose(old.panel.volume[:, col], new.panel.volume[:, col] / 2)
    np.testing.assert_allclose(old.indicators["atr14"][:, col], 2 * new.indicators["atr14"][:, col])
    np.testing.assert_array_equal(old.indicators["rsi14"], new.indicators["rsi14"])
    np.testing.assert_array_equal(old.panel.close[:, 0], new.panel.close[:, 0])
    # The next session the history is adjusted: exactly the plain market's window.
    after = CAL.next_session(on)
    assert (
        market.window(after, 250).panel.close.tobytes()
        == plain.window(after, 250).panel.close.tobytes()
    )


async def test_the_market_reports_its_actions_as_a_provider_does() -> None:
    split = CorporateAction(ActionKind.FORWARD_SPLIT, "MSFT", SPLIT, "test", ratio=2.0)
    market = _market((split,))
    assert await market.corporate_actions(["MSFT", "XOM"], START, END) == [split]
    assert await market.corporate_actions(["XOM"], START, END) == []
    assert await market.corporate_actions(["MSFT"], START, CAL.previous_session(SPLIT)) == []


def test_without_actions_the_window_is_the_views_it_always_was() -> None:
    market = _market(())
    window = market.window(SPLIT, 250)
    assert window.panel.close.base is not None  # a view into the market, not a copy
    assert market.raw_price("MSFT", SPLIT, "close") == market.price("MSFT", SPLIT, "close")


def _loop_factors(market: PrecomputedMarket, asof: dt.date) -> np.ndarray:
    """The unapplied ratios as one loop over the actions (each column in action order)."""
    factors = np.ones(len(market.panel.symbols))
    for a in market.actions:
        if a.kind.rescales and a.symbol in market.panel.symbols and a.ex_date >= asof:
            factors[market.panel.column(a.symbol)] *= a.ratio
    return factors


def test_unapplied_factors_multiply_each_symbols_ratios_in_action_order() -> None:
    """Several splits per symbol, in any order of dates: the loop's products, to the bit."""
    days = CAL.sessions_between(START, END)
    fwd, rev, div = ActionKind.FORWARD_SPLIT, ActionKind.REVERSE_SPLIT, ActionKind.STOCK_DIVIDEND
    actions = tuple(
        CorporateAction(kind, symbol, days[k], "test", ratio=ratio)
        for kind, symbol, k, ratio in (
            (fwd, "MSFT", 200, 3.0),
            (div, "MSFT", 40, 1.05),
            (rev, "MSFT", 150, 0.1),
            (fwd, "MSFT", 90, 1.5),
            (div, "XOM", 60, 1.02),
            (fwd, "XOM", 61, 2.0),
            (fwd, "XOM", 230, 7.0),
            (rev, "TSLA", 10, 0.2),  # not in the panel
        )
    )
    market = _market(actions)
    for asof in days:
        got = market.unapplied_factors(asof)
        want = _loop_factors(market, asof)
        if got is None:
            assert bool(np.all(want == 1.0)), asof
        else:
            assert got.tobytes() == want.tobytes(), asof
    assert market.unapplied_factors(days[-1]) is None
    assert _market(()).unapplied_factors(days[0]) is None


def test_volatility_at_is_the_last_value_on_or_before() -> None:
    """The binary search gives ``last_value``'s answer on every day, gaps and NaNs included."""
    days = CAL.sessions_between(START, END)
    values = np.linspace(12.0, 30.0, len(days))
    values[[0, 5, 6, 7, 100]] = np.nan
    index = pd.DatetimeIndex([pd.Timestamp(d) for d in days])
    series = pd.Series(values, index=index).drop(index[[50, 51]])
    market = PrecomputedMarket(_panel(), {}, series, "synthetic")
    for k in range(len(days) + 1):
        when = days[0] - dt.timedelta(days=3) + dt.timedelta(days=k * 366 // len(days))
        assert market.volatility_at(when) == last_value(series, when), when
    unsorted = PrecomputedMarket(_panel(), {}, series.iloc[::-1], "synthetic")
    assert unsorted.volatility_at(days[20]) == last_value(series.iloc[::-1], days[20])
    assert PrecomputedMarket(_panel(), {}, None, "x").volatility_at(days[20]) == (None, None)


def test_symbols_first_puts_the_universe_first_in_its_order() -> None:
    """The universe's symbols the panel has, in universe order, then the others as they were."""
    have = ("AAPL", "MSFT", "MSFT.X", "XOM")
    assert symbols_first(have, ["XOM", "TSLA", "AAPL", "XOM"]) == ["XOM", "AAPL", "MSFT", "MSFT.X"]


async def test_load_orders_the_columns_as_the_universe() -> None:
    """The loaded market's columns are the symbols asked for, in their order."""
    provider = SyntheticProvider(SyntheticParams())
    market = await PrecomputedMarket.load(provider, ["XOM", "AAPL", "MSFT"], START, END)
    assert market.panel.symbols == ("XOM", "AAPL", "MSFT")
    sorted_panel = _panel()
    np.testing.assert_array_equal(
        market.panel.close, sorted_panel.select(["XOM", "AAPL", "MSFT"]).close
    )


def test_raw_prices_are_raw_price_of_each_symbol() -> None:
    """One lookup for many symbols gives each symbol's ``raw_price``, None where it has none."""
    split = CorporateAction(ActionKind.FORWARD_SPLIT, "MSFT", SPLIT, "test", ratio=2.0)
    symbols = ["XOM", "NOPE", "MSFT", "AAPL"]
    for market in (_market((split,)), _market(())):
        for session in (CAL.previous_session(SPLIT), SPLIT, START):
            for field in ("open", "close", "low"):
                expected = [market.raw_price(s, session, field) for s in symbols]
                assert market.raw_prices(symbols, session, field) == expected
                assert expected[1] is None
                assert all(p is not None for i, p in enumerate(expected) if i != 1)
        assert market.raw_prices(symbols, dt.date(2024, 1, 6), "close") == [None] * 4  # Saturday
        assert market.raw_prices([], SPLIT, "close") == []


def test_raw_prices_of_a_missing_bar_are_none() -> None:
    """A bar that is not there (NaN in the panel) is None, as ``raw_price`` says."""
    market = _market(())
    market.panel.close[5, 1] = np.nan
    session = market.panel.dates[5].date()
    assert market.raw_price("MSFT", session, "close") is None
    assert market.raw_prices(list(SYMBOLS), session, "close")[1] is None


async def test_the_actions_of_a_range_are_every_matching_one_in_the_markets_order() -> None:
    """A window of ex dates gives exactly the actions in it on the asked symbols, in order."""
    days = [dt.date(2024, 3, 1) + dt.timedelta(days=d) for d in (9, 2, 2, 30, 0, 15, 9)]
    actions = tuple(
        CorporateAction(ActionKind.CASH_DIVIDEND, SYMBOLS[i % 3], day, f"t{i}", cash_per_share=1.0)
        for i, day in enumerate(days)
    )
    market = PrecomputedMarket(_panel(), {}, None, "synthetic", actions=actions)
    first, last = min(days), max(days)
    for start in (first - dt.timedelta(days=1), *days):
        for end in (start, start + dt.timedelta(days=9), last):
            for symbols in (list(SYMBOLS), ["AAPL"], ["XOM", "NOPE"], []):
                expected = [a for a in actions if a.symbol in symbols and start <= a.ex_date <= end]
                assert await market.corporate_actions(symbols, start, end) == expected
