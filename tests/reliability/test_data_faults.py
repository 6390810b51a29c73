"""Bad market data against the daemon's own graph: CSV files and providers that fail.

The graph runs on a SimClock with the CSV provider over per-symbol files written
from ``SyntheticProvider().generate(...)`` (then damaged), and the SimBroker
priced by the same provider. A fault costs as little as it can: a bad bar costs
that bar (removed, the symbol trades, the repair noted in the cycle's reason),
a bad symbol -- stale, a probable split, a malformed file named with its line and
column -- costs that symbol while the rest trade; only a market-wide failure (the
whole feed stale, a failing provider) halts the cycle and trips ``bad_data``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actors.cycle import kill_switches
from actors.data_feed.providers import BarProvider
from actors.data_feed.providers.csv_provider import CsvProvider
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.messages import ClearKillSwitch, CycleStatus
from actors.system.backtest import apply_overrides
from actors.system.config import Settings, load_settings
from daemon.errors import ProviderError
from tests.reliability.harness import CAL, BrokerFactory, Graph, running_graph, sim_broker

SYMBOLS = ("AAPL", "MSFT", "XOM", "JPM", "KO", "PFE", "NVDA", "CAT", "WMT", "BAC", "GS", "COST")
DAY = dt.date(2026, 11, 16)
NEXT = CAL.next_session(DAY)
LAST = CAL.previous_session(DAY)  # the newest bar DAY's cycle expects
HISTORY_START = LAST - dt.timedelta(days=500)
BAD_DATA = kill_switches.BAD_DATA


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """Clean synthetic bars through NEXT's previous session (DAY itself)."""
    return SyntheticProvider().generate(list(SYMBOLS), HISTORY_START, DAY)


def write_csvs(folder: Path, bars: pd.DataFrame) -> Path:
    """One ``SYMBOL.csv`` per symbol (date, open, high, low, close, volume)."""
    folder.mkdir(parents=True, exist_ok=True)
    for symbol, rows in bars.groupby("symbol"):
        out = rows.loc[:, ["date", "open", "high", "low", "close", "volume"]].copy()
        out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
        out.to_csv(folder / f"{symbol}.csv", index=False)
    return folder


def csv_settings(folder: Path) -> Settings:
    base = load_settings(
        None, {"TRADINGD_DATA__PROVIDER": "csv", "TRADINGD_DATA__CSV__PATH": str(folder)}
    )
    return apply_overrides(base, universe=",".join(SYMBOLS))


def until(bars: pd.DataFrame, last: dt.date) -> pd.DataFrame:
    return bars.loc[bars["date"] <= pd.Timestamp(last)]


async def data_rejections(g: Graph, run_id: str) -> dict[str, str]:
    rows = await g.rows(
        "SELECT symbol, reason_code FROM signal_rejections WHERE run_id = ? AND stage = 'DATA'",
        run_id,
    )
    return {r["symbol"]: r["reason_code"] for r in rows}


async def data_details(g: Graph, run_id: str, symbol: str) -> str:
    rows = await g.rows(
        "SELECT details_json FROM signal_rejections"
        " WHERE run_id = ? AND stage = 'DATA' AND symbol = ?",
        run_id,
        symbol,
    )
    return " ".join(str(r["details_json"]) for r in rows)


async def intents(g: Graph) -> list[dict[str, object]]:
    return await g.rows("SELECT intent_id, symbol, side FROM order_intents")


async def run_with(
    tmp_path: Path, settings: Settings, provider: BarProvider
) -> tuple[CycleStatus, str, dict[str, str], list[dict[str, object]], set[str]]:
    """One cycle on DAY: status, reason, data rejections, intents, active switches."""
    async with running_graph(
        settings, tmp_path / "t.db", provider, sim_broker(settings), start=DAY
    ) as g:
        done = await g.run_day(DAY)
        assert g.all_running(), g.sup.states()
        return (
            done.status,
            done.reason,
            await data_rejections(g, done.run_id),
            await intents(g),
            await g.active_switches(),
        )


async def test_clean_csv_trades(tmp_path: Path, bars: pd.DataFrame) -> None:
    """The control: the undamaged files give a completed cycle with orders."""
    folder = write_csvs(tmp_path / "csv", until(bars, LAST))
    settings = csv_settings(folder)
    status, reason, rejected, placed, switches = await run_with(
        tmp_path, settings, CsvProvider(folder)
    )
    assert status is CycleStatus.COMPLETED, reason
    assert rejected == {}
    assert placed, reason
    assert switches == set()


async def test_stale_feed_halts_and_latches_bad_data(tmp_path: Path, bars: pd.DataFrame) -> None:
    """Bars that stop three sessions early: HALTED, bad_data latched, no order."""
    stop = CAL.sessions_back(LAST, 4)[0]
    folder = write_csvs(tmp_path / "csv", until(bars, stop))
    settings = csv_settings(folder)
    status, reason, _, placed, switches = await run_with(tmp_path, settings, CsvProvider(folder))
    assert status is CycleStatus.HALTED, reason
    assert "feed stale" in reason, reason
    assert stop.isoformat() in reason, reason
    assert LAST.isoformat() in reason, reason
    assert BAD_DATA in switches
    assert placed == []


async def test_short_history_symbols_are_rejected_and_the_rest_trade(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    """Two symbols with 80 bars: rejected insufficient_history; the others still trade."""
    short = ("PFE", "CAT")
    clean = until(bars, LAST)
    recent = clean["date"] > pd.Timestamp(CAL.sessions_back(LAST, 81)[0])
    damaged = clean.loc[~clean["symbol"].isin(short) | recent]
    assert damaged.loc[damaged["symbol"] == "PFE"].shape[0] == 80
    folder = write_csvs(tmp_path / "csv", damaged)
    settings = csv_settings(folder)
    status, reason, rejected, placed, switches = await run_with(
        tmp_path, settings, CsvProvider(folder)
    )
    assert status is CycleStatus.COMPLETED, reason
    assert rejected == dict.fromkeys(short, "insufficient_history")
    assert placed, reason
    assert not {p["symbol"] for p in placed} & set(short)
    assert BAD_DATA not in switches


class NaNInjecting:
    """A provider that answers its inner provider's bars with one NaN close per symbol given."""

    def __init__(self, inner: BarProvider, symbols: Sequence[str], day: dt.date) -> None:
        self.inner = inner
        self.symbols = tuple(symbols)
        self.day = pd.Timestamp(day)
        self.name = inner.name

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        frame = (await self.inner.fetch(symbols, start, end)).copy()
        hit = frame["symbol"].isin(self.symbols) & (frame["date"] == self.day)
        frame.loc[hit, "close"] = np.nan
        return frame

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        return await self.inner.volatility_index(start, end)


async def test_nan_and_negative_prices_cost_those_bars_only(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    """A NaN close (provider) and a negative low (file) mid-window: bars removed, all trade."""
    clean = until(bars, LAST).copy()
    when = pd.Timestamp(CAL.sessions_back(LAST, 20)[0])
    negative = (clean["symbol"] == "KO") & (clean["date"] == when)
    clean.loc[negative, "low"] = -1.0
    folder = write_csvs(tmp_path / "csv", clean)
    settings = csv_settings(folder)
    provider = NaNInjecting(CsvProvider(folder), ["JPM"], CAL.sessions_back(LAST, 30)[0])
    status, reason, rejected, placed, switches = await run_with(tmp_path, settings, provider)
    assert status is CycleStatus.COMPLETED, reason
    assert rejected == {}
    assert placed, reason
    assert BAD_DATA not in switches


async def test_nan_close_on_the_newest_bar_holds_that_symbol(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    """A NaN close on the last session rejects that symbol for the cycle; the rest trade."""
    folder = write_csvs(tmp_path / "csv", until(bars, LAST))
    settings = csv_settings(folder)
    provider = NaNInjecting(CsvProvider(folder), ["JPM"], LAST)
    status, reason, rejected, placed, switches = await run_with(tmp_path, settings, provider)
    assert status is CycleStatus.COMPLETED, reason
    assert rejected == {"JPM": "nan_values"}
    assert placed, reason
    assert "JPM" not in {p["symbol"] for p in placed}
    assert BAD_DATA not in switches


async def test_one_stale_symbol_of_four_costs_that_symbol(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    """One of four symbols' file stops three sessions early: it is rejected stale, no halt."""
    four = ("AAPL", "MSFT", "XOM", "JPM")
    stop = CAL.sessions_back(LAST, 4)[0]
    clean = until(bars, LAST)
    clean = clean.loc[clean["symbol"].isin(four)]
    damaged = clean.loc[(clean["symbol"] != "XOM") | (clean["date"] <= pd.Timestamp(stop))]
    folder = write_csvs(tmp_path / "csv", damaged)
    settings = apply_overrides(csv_settings(folder), universe=",".join(four))
    status, reason, rejected, _, switches = await run_with(tmp_path, settings, CsvProvider(folder))
    assert status is CycleStatus.COMPLETED, reason
    assert rejected == {"XOM": "stale"}
    assert BAD_DATA not in switches


async def test_bad_print_is_removed_and_noted(tmp_path: Path, bars: pd.DataFrame) -> None:
    """A bar x2.6 for one session and back: the bar is removed, the cycle says so."""
    clean = until(bars, LAST).copy()
    when = CAL.previous_session(LAST)
    hit = (clean["symbol"] == "MSFT") & (clean["date"] == pd.Timestamp(when))
    for column in ("open", "high", "low", "close"):
        clean.loc[hit, column] *= 2.6  # off any split ratio
    folder = write_csvs(tmp_path / "csv", clean)
    settings = csv_settings(folder)
    status, reason, rejected, placed, switches = await run_with(
        tmp_path, settings, CsvProvider(folder)
    )
    assert status is CycleStatus.COMPLETED, reason
    assert rejected == {}
    assert f"MSFT: bar {when.isoformat()} removed as a bad print" in reason, reason
    assert placed, reason
    assert BAD_DATA not in switches


async def test_raw_split_holds_that_symbol(tmp_path: Path, bars: pd.DataFrame) -> None:
    """An unadjusted 2:1 split ten sessions back: rejected probable_split, the others trade."""
    clean = until(bars, LAST).copy()
    when = pd.Timestamp(CAL.sessions_back(LAST, 10)[0])
    hit = (clean["symbol"] == "CAT") & (clean["date"] >= when)
    for column in ("open", "high", "low", "close"):
        clean.loc[hit, column] /= 2.0
    clean.loc[hit, "volume"] *= 2.0
    folder = write_csvs(tmp_path / "csv", clean)
    settings = csv_settings(folder)
    status, reason, rejected, placed, switches = await run_with(
        tmp_path, settings, CsvProvider(folder)
    )
    assert status is CycleStatus.COMPLETED, reason
    assert rejected == {"CAT": "probable_split"}
    assert placed, reason
    assert "CAT" not in {p["symbol"] for p in placed}
    assert BAD_DATA not in switches


class Raising:
    """A provider whose upstream fails every time."""

    name = "flaky"

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        raise ProviderError("HTTP 503 from upstream: service unavailable")

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        raise ProviderError("HTTP 503 from upstream: service unavailable")


class Throttling:
    """A provider that is throttled for its first ``n`` fetches, then answers from ``inner``."""

    def __init__(self, inner: BarProvider, n: int) -> None:
        self.inner = inner
        self.name = "throttled"
        self.left = n

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        if self.left > 0:
            self.left -= 1
            raise ProviderError("throttled: HTTP 429 Too Many Requests, retry after 60 s")
        return await self.inner.fetch(symbols, start, end)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        return await self.inner.volatility_index(start, end)


async def test_raising_provider_halts_with_the_reason(tmp_path: Path) -> None:
    """ProviderError from the provider: HALTED naming provider and error, bad_data, no order."""
    settings = apply_overrides(load_settings(None, {}), universe=",".join(SYMBOLS))
    synthetic = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", Raising(), sim_broker_over(settings, synthetic), start=DAY
    ) as g:
        done = await g.run_day(DAY)
        assert g.all_running(), g.sup.states()
        assert done.status is CycleStatus.HALTED, done.reason
        assert "provider flaky failed" in done.reason, done.reason
        assert "HTTP 503 from upstream" in done.reason, done.reason
        assert BAD_DATA in await g.active_switches()
        assert await intents(g) == []


async def test_throttled_provider_halts_then_recovers_after_clear(tmp_path: Path) -> None:
    """Throttled: HALTED, the 429 in the reason; it answers again, bad_data cleared: trades."""
    settings = apply_overrides(load_settings(None, {}), universe=",".join(SYMBOLS))
    synthetic = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings,
        tmp_path / "t.db",
        Throttling(synthetic, 1),
        sim_broker_over(settings, synthetic),
        start=DAY,
    ) as g:
        done = await g.run_day(DAY)
        assert done.status is CycleStatus.HALTED, done.reason
        assert "provider throttled failed: throttled: HTTP 429" in done.reason, done.reason
        assert BAD_DATA in await g.active_switches()
        assert await intents(g) == []

        await g.sup.ref("kill_switches").ask(
            ClearKillSwitch(BAD_DATA, "test: provider answers again", "operator")
        )
        done = await g.run_day(NEXT)
        assert done.status is CycleStatus.COMPLETED, done.reason
        assert await intents(g), done.reason
        assert g.all_running(), g.sup.states()


def sim_broker_over(settings: Settings, prices: BarProvider) -> BrokerFactory:
    """The SimBroker priced by ``prices`` whatever provider the data feed uses."""
    build = sim_broker(settings)
    return lambda store, clock, _provider: build(store, clock, prices)


@pytest.mark.parametrize(
    ("line", "column", "cell"),
    [(57, "close", "12,5x"), (123, "date", "2026-13-45"), (200, "volume", "nan")],
)
async def test_bad_csv_row_costs_that_symbol(
    tmp_path: Path, bars: pd.DataFrame, line: int, column: str, cell: str
) -> None:
    """One malformed cell drops that file's symbol as bad_file, naming file, line and column."""
    folder = write_csvs(tmp_path / "csv", until(bars, LAST))
    target = folder / "MSFT.csv"
    lines = target.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = f'"{cell}"' if "," in cell else cell
    lines[line - 1] = ",".join(cells)
    target.write_text("\n".join(lines) + "\n")
    settings = csv_settings(folder)
    async with running_graph(
        settings, tmp_path / "t.db", CsvProvider(folder), sim_broker(settings), start=DAY
    ) as g:
        done = await g.run_day(DAY)
        assert done.status is CycleStatus.COMPLETED, done.reason
        assert await data_rejections(g, done.run_id) == {"MSFT": "bad_file"}
        details = await data_details(g, done.run_id, "MSFT")
        assert str(target) in details, details
        assert f"line {line}" in details, details
        assert f"column {column}" in details, details
        placed = await intents(g)
        assert placed, done.reason
        assert "MSFT" not in {p["symbol"] for p in placed}
        assert BAD_DATA not in await g.active_switches()
