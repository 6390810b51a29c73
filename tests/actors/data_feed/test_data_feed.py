"""The DataFeed actor's snapshots: the live and the precomputed paths agree session by session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from actors.data_feed.actor import DataFeed
from actors.data_feed.market import PrecomputedMarket
from actors.data_feed.params import DataParams, UniverseParams
from actors.data_feed.providers import clip_range
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.messages import DataUnavailable, FetchSnapshot, LastPrice, MarketSnapshot

CAL = ExchangeCalendar("XNYS")
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
FIRST = dt.date(2024, 1, 2)
LAST = dt.date(2025, 12, 31)
HISTORY = 150
SESSIONS = CAL.sessions_between(FIRST, LAST)
WILDER = {"rsi14", "rsi_slope", "atr14", "adx14"}


class FrameProvider:
    """Serves a fixed long frame (and a VIX series), like a provider with no problems()."""

    name = "frame"

    def __init__(self, frame: pd.DataFrame, vix: pd.Series | None = None) -> None:
        self.frame = frame
        self.vix = vix

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        return clip_range(self.frame.loc[self.frame["symbol"].isin(symbols)], start, end)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        if self.vix is None:
            return None
        index = pd.to_datetime(self.vix.index)
        keep = (index >= pd.Timestamp(start)) & (index <= pd.Timestamp(end))
        return self.vix[keep]


class ProblemProvider(FrameProvider):
    """A provider that also reports symbols it could not read."""

    def __init__(self, frame: pd.DataFrame, problems: dict[str, str]) -> None:
        super().__init__(frame)
        self._problems = problems

    def problems(self) -> dict[str, str]:
        return dict(self._problems)


def session(k: int) -> dt.date:
    return SESSIONS[k]


def scale(frame: pd.DataFrame, symbol: str, first: int, last: int, factor: float) -> None:
    """Multiply the prices of ``symbol`` on sessions ``[first, last]`` (indices) in place."""
    dates = frame["date"]
    hit = (
        (frame["symbol"] == symbol)
        & (dates >= pd.Timestamp(session(first)))
        & (dates <= pd.Timestamp(session(last)))
    )
    for column in ("open", "high", "low", "close"):
        frame.loc[hit, column] *= factor


@pytest.fixture(scope="module")
def faulty() -> pd.DataFrame:
    """Synthetic bars with a bad print, a missing bar, a partial bar, a raw split, a level shift."""
    frame = SyntheticProvider().generate(list(SYMBOLS), FIRST, LAST).reset_index(drop=True)
    scale(frame, "AAA", 300, 300, 2.6)  # a bad print
    scale(frame, "AAA", 151, 151, 0.35)  # another, the first bar of session 301's window
    frame = frame.loc[
        ~((frame["symbol"] == "BBB") & (frame["date"] == pd.Timestamp(session(305))))
    ].reset_index(drop=True)  # a missing session
    partial = (frame["symbol"] == "CCC") & (frame["date"] == pd.Timestamp(session(310)))
    frame.loc[partial, "volume"] = np.nan
    scale(frame, "DDD", 315, len(SESSIONS) - 1, 0.5)  # an unadjusted 2:1 split
    scale(frame, "EEE", 320, len(SESSIONS) - 1, 0.3)  # a real -70% level shift
    return frame


def vix_series() -> pd.Series:
    """A VIX series that stops five sessions before the end."""
    days = pd.DatetimeIndex([pd.Timestamp(d) for d in SESSIONS[:-5]])
    return pd.Series(np.linspace(15.0, 25.0, len(days)), index=days, name="VIX")


def params() -> DataParams:
    return DataParams(history_days=HISTORY, universe=UniverseParams(symbols=SYMBOLS))


async def feeds(frame: pd.DataFrame) -> tuple[DataFeed, DataFeed]:
    """A live feed over ``frame`` and a backtest feed over the same bars, precomputed."""
    provider = FrameProvider(frame, vix_series())
    start = CAL.sessions_back(CAL.previous_session(session(HISTORY + 1)), HISTORY)[0]
    market = await PrecomputedMarket.load(provider, SYMBOLS, start, LAST)
    live = DataFeed(params(), provider, CAL)
    backtest = DataFeed(params(), provider, CAL, market=market)
    for feed in (live, backtest):
        await feed.on_start()
    return live, backtest


def assert_same(live: MarketSnapshot, backtest: MarketSnapshot) -> None:
    """Same decisions, prices, notes and bars; indicators equal on the newest row."""
    assert backtest.rejected == live.rejected
    assert backtest.last_prices == live.last_prices
    assert backtest.notes == live.notes
    assert backtest.volatility_index == live.volatility_index
    assert backtest.volatility_index_date == live.volatility_index_date
    assert backtest.panel.symbols == live.panel.symbols
    np.testing.assert_array_equal(backtest.panel.close, live.panel.close)
    for key, arr in live.indicators.items():
        # Wilder averages remember their seed ((13/14)^150 ~ 1e-5 after 150 rows), and
        # the backtest seeds at the start of its history: close, not equal. Windowed
        # indicators depend on the window's rows only: equal to rounding.
        tol = 1e-2 if key in WILDER else 1e-9
        np.testing.assert_allclose(backtest.indicators[key][-1], arr[-1], rtol=tol, atol=tol)


async def test_live_and_backtest_snapshots_agree_every_session(faulty: pd.DataFrame) -> None:
    """Over sessions crossing every fault, both paths give the same snapshot."""
    live, backtest = await feeds(faulty)
    seen: set[str] = set()
    for k in range(HISTORY + 1, len(SESSIONS), 2):
        msg = FetchSnapshot(f"run-{k}", session(k))
        a, b = await live.fetch(msg), await backtest.fetch(msg)
        assert isinstance(a, MarketSnapshot), a
        assert isinstance(b, MarketSnapshot), b
        assert_same(a, b)
        seen |= {r.reason_code for r in a.rejected}
    assert seen >= {"probable_split"}


async def test_every_fault_session_agrees(faulty: pd.DataFrame) -> None:
    """The sessions right after each injected fault (where the edges are) agree too."""
    live, backtest = await feeds(faulty)
    for k in (300, 301, 302, 306, 311, 312, 316, 321, 322, 450, 451, 452):
        msg = FetchSnapshot(f"run-{k}", session(k))
        a, b = await live.fetch(msg), await backtest.fetch(msg)
        assert isinstance(a, MarketSnapshot), a
        assert isinstance(b, MarketSnapshot), b
        assert_same(a, b)


async def test_snapshot_reports_repairs_holds_and_last_prices(faulty: pd.DataFrame) -> None:
    """The cycle after a bad print notes it; a split holds its symbol at the pre-split close."""
    live, _ = await feeds(faulty)
    snap = await live.fetch(FetchSnapshot("r", session(302)))
    assert isinstance(snap, MarketSnapshot), snap
    assert len(snap.notes) == 1
    assert snap.notes[0].startswith(f"AAA: bar {session(300)} removed as a bad print")
    assert "AAA" in snap.panel.symbols
    assert np.isnan(snap.panel.close[-2, snap.panel.column("AAA")])
    split = await live.fetch(FetchSnapshot("s", session(330)))
    assert isinstance(split, MarketSnapshot), split
    reasons = {r.symbol: r.reason_code for r in split.rejected}
    assert reasons == {"DDD": "probable_split"}
    pre_split = faulty.loc[
        (faulty["symbol"] == "DDD") & (faulty["date"] == pd.Timestamp(session(314))), "close"
    ]
    assert split.last_prices["DDD"] == LastPrice(float(pre_split.iloc[0]), session(314))
    assert "EEE" in split.panel.symbols  # the level shift trades
    assert set(split.last_prices) == set(SYMBOLS)


async def test_unconfirmed_move_holds_the_symbol_for_one_session(faulty: pd.DataFrame) -> None:
    """The cycle whose newest bar is the bad print holds AAA priced at the close before it."""
    live, backtest = await feeds(faulty)
    for feed in (live, backtest):
        snap = await feed.fetch(FetchSnapshot("u", session(301)))
        assert isinstance(snap, MarketSnapshot), snap
        reasons = {r.symbol: r.reason_code for r in snap.rejected}
        assert reasons["AAA"] == "unconfirmed_move"
        assert snap.last_prices["AAA"].session == session(299)


async def test_volatility_index_date_is_its_last_value(faulty: pd.DataFrame) -> None:
    """The snapshot gives the latest VIX on or before the last session, with its date."""
    live, backtest = await feeds(faulty)
    for feed in (live, backtest):
        snap = await feed.fetch(FetchSnapshot("v", LAST))
        assert isinstance(snap, MarketSnapshot), snap
        assert snap.volatility_index_date == SESSIONS[-6]
        assert snap.volatility_index == pytest.approx(float(vix_series().iloc[-1]))


async def test_bad_file_costs_its_symbol_and_vix_problem_is_noted(faulty: pd.DataFrame) -> None:
    """Provider problems reject their symbols as bad_file; a VIX problem becomes a note."""
    frame = faulty.loc[faulty["symbol"] != "FFF"]
    problems = {"FFF": "FFF.csv: line 9: column close: not a number: 'x'", "VIX": "VIX.csv: empty"}
    feed = DataFeed(params(), ProblemProvider(frame, problems), CAL)
    await feed.on_start()
    snap = await feed.fetch(FetchSnapshot("b", session(290)))
    assert isinstance(snap, MarketSnapshot), snap
    assert [(r.symbol, r.reason_code, r.details) for r in snap.rejected] == [
        ("FFF", "bad_file", problems["FFF"])
    ]
    assert snap.notes == ("VIX: not read (VIX.csv: empty); the regime detector uses its proxy",)


async def test_one_stale_symbol_of_four_is_no_halt(faulty: pd.DataFrame) -> None:
    """A stale symbol in a universe of four is rejected; the snapshot is still given."""
    four = SYMBOLS[:4]
    stale_from = pd.Timestamp(session(286))
    frame = faulty.loc[
        faulty["symbol"].isin(four) & ((faulty["symbol"] != "BBB") | (faulty["date"] < stale_from))
    ]
    feed = DataFeed(
        DataParams(history_days=HISTORY, universe=UniverseParams(symbols=four)),
        FrameProvider(frame),
        CAL,
    )
    await feed.on_start()
    snap = await feed.fetch(FetchSnapshot("s", session(290)))
    assert not isinstance(snap, DataUnavailable), snap
    assert {r.symbol: r.reason_code for r in snap.rejected} == {"BBB": "stale"}
    assert snap.last_prices["BBB"].session == session(285)
