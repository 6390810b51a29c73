"""A real `tradingd backtest`'s stats.json against its own trades.csv and equity.csv, the
benchmark key reaching it, the self-contained backtest.db, and report.html in Chromium.

Two runs of the command (a subprocess each) over four months of the synthetic market and
five symbols: one on the embedded default (benchmark SPY), one with a TOML file saying
``[backtest] benchmark = "equal_weight"``; and one in-process run on a CSV folder without
SPY, which falls back to the equal weight and says so. The page is opened in headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, as tests/test_digest_browser.py
does: missing, the test fails under ``CI=true`` and skips elsewhere) at a phone's width.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.system.backtest import apply_overrides, run_backtest
from actors.system.config import load_settings
from tests.fakes.browser import headless_chromium

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

SYMBOLS = ["AAPL", "MSFT", "XOM", "JPM", "KO"]
FIRST, LAST = "2026-02-02", "2026-05-29"
OUT_FILES = ["backtest.db", "equity.csv", "report.html", "stats.json", "trades.csv"]


@dataclass(frozen=True)
class Run:
    out: Path
    stdout: str
    stats: dict[str, Any]
    trades: list[dict[str, str]]
    equity: list[dict[str, str]]


def _backtest(tmp: Path, name: str, config: str | None = None) -> Run:
    """`tradingd backtest` in a subprocess, its files read back."""
    out = tmp / name
    command = [sys.executable, "-m", "actors", "backtest", "--from", FIRST, "--to", LAST]
    command += ["--universe", ",".join(SYMBOLS), "--out", str(out)]
    if config is not None:
        path = tmp / f"{name}.toml"
        path.write_text(config, encoding="utf-8")
        command += ["--config", str(path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGD_")}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with (out / "trades.csv").open() as fh:
        trades = list(csv.DictReader(fh))
    with (out / "equity.csv").open() as fh:
        equity = list(csv.DictReader(fh))
    stats = json.loads((out / "stats.json").read_text())
    return Run(out, done.stdout, stats, trades, equity)


@pytest.fixture(scope="module")
def spy(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _backtest(tmp_path_factory.mktemp("bt-report"), "spy")


@pytest.fixture(scope="module")
def equal(tmp_path_factory: pytest.TempPathFactory) -> Run:
    config = '[backtest]\nbenchmark = "equal_weight"\n'
    return _backtest(tmp_path_factory.mktemp("bt-report"), "equal", config)


def test_stats_agree_with_the_ledger_and_the_equity_curve(spy: Run) -> None:
    """Fees are the fills' commission + slippage, realised + unrealised is final - initial
    equity to the cent, the curve's figures are those of equity.csv."""
    s, trades, equity = spy.stats, spy.trades, spy.equity
    assert len(trades) > 5
    commission = sum(float(t["commission_cost"]) for t in trades)
    slippage = sum(float(t["slippage_cost"]) for t in trades)
    assert s["commission"] == pytest.approx(commission, abs=0.01)
    assert s["slippage"] == pytest.approx(slippage, abs=0.01)
    assert s["fees"] == pytest.approx(commission + slippage, abs=0.01)
    assert s["fills"] == len(trades)
    assert (s["start"], s["end"], s["sessions"]) == (
        equity[0]["date"],
        equity[-1]["date"],
        len(equity),
    )
    final = float(equity[-1]["equity"])
    assert s["initial_equity"] == 100_000.0
    assert s["final_equity"] == pytest.approx(final, abs=0.01)
    assert s["realized_pnl"] + s["unrealized_pnl"] == pytest.approx(final - 100_000.0, abs=0.01)
    assert s["total_return"] == pytest.approx(final / 100_000.0 - 1.0, abs=1e-7)
    curve = [100_000.0, *(float(e["equity"]) for e in equity)]
    peak, worst = curve[0], 0.0
    for value in curve:
        peak = max(peak, value)
        worst = min(worst, value / peak - 1.0)
    assert s["max_drawdown"] == pytest.approx(worst, abs=1e-7)
    months = [r for year in s["monthly_returns"].values() for r in year.values()]
    assert len(months) == 4
    assert math.prod(1.0 + r for r in months) - 1.0 == pytest.approx(s["total_return"], abs=1e-9)
    assert 0.0 < s["time_in_market"] <= 1.0
    assert 0.0 < s["exposure"] < 1.5


def test_per_strategy_figures_add_up_to_the_portfolio(spy: Run) -> None:
    """The strategies' realised, unrealised, fees and trades sum to the portfolio's."""
    s = spy.stats
    strategies = s["strategies"].values()
    assert {"momentum", "ma_crossover", "rsi_mean_reversion", "ml_momentum"} <= set(s["strategies"])
    for key in ("realized_pnl", "unrealized_pnl", "fees"):
        assert sum(x[key] for x in strategies) == pytest.approx(s[key], abs=0.01)
    assert sum(x["trades"] for x in strategies) == s["trades"]
    by_strategy: dict[str, float] = {}
    for t in spy.trades:
        cost = float(t["commission_cost"]) + float(t["slippage_cost"])
        by_strategy[t["strategy"]] = by_strategy.get(t["strategy"], 0.0) + cost
    for name, fees in by_strategy.items():
        assert s["strategies"][name]["fees"] == pytest.approx(fees, abs=0.01)


def test_the_benchmark_key_reaches_the_run(spy: Run, equal: Run) -> None:
    """The default benchmarks SPY; `[backtest] benchmark = "equal_weight"` the universe."""
    assert spy.stats["benchmark"]["kind"] == "SPY"
    assert spy.stats["benchmark"]["symbols"] == ["SPY"]
    assert equal.stats["benchmark"]["kind"] == "equal_weight"
    assert equal.stats["benchmark"]["symbols"] == SYMBOLS
    assert "note" not in equal.stats["benchmark"]
    assert spy.stats["benchmark"]["total_return"] != equal.stats["benchmark"]["total_return"]
    # The benchmark changes nothing the strategies do.
    assert equal.trades == spy.trades
    assert "benchmark" in spy.stdout


def test_a_finished_backtest_leaves_one_self_contained_database(spy: Run) -> None:
    """No -wal, -shm or .lock beside backtest.db, which is out of WAL mode and complete."""
    assert sorted(p.name for p in spy.out.iterdir()) == OUT_FILES
    with sqlite3.connect(spy.out / "backtest.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("SELECT COUNT(*) FROM trades").fetchone()[0] == len(spy.trades)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(p.name for p in spy.out.iterdir()) == OUT_FILES


def test_spy_without_spy_bars_falls_back_to_equal_weight_and_says_so(tmp_path: Path) -> None:
    """A CSV folder without SPY: the universe's equal weight, with the reason in stats.json."""
    folder = tmp_path / "csv"
    folder.mkdir()
    bars = SyntheticProvider().generate(["AAA", "BBB"], dt.date(2025, 6, 2), dt.date(2026, 3, 31))
    for symbol, frame in bars.groupby("symbol"):
        frame.drop(columns="symbol").assign(date=frame["date"].dt.date).to_csv(
            folder / f"{symbol}.csv", index=False
        )
    base = load_settings(None, {"TRADINGD_DATA__CSV__PATH": str(folder)})
    settings = apply_overrides(base, provider="csv", universe="AAA,BBB", strategies="momentum")
    out = tmp_path / "out"
    anyio.run(
        functools.partial(
            run_backtest, settings, start=dt.date(2026, 3, 2), end=dt.date(2026, 3, 31), out=out
        )
    )
    benchmark = json.loads((out / "stats.json").read_text())["benchmark"]
    assert benchmark["kind"] == "equal_weight"
    assert benchmark["symbols"] == ["AAA", "BBB"]
    assert "no SPY" in benchmark["note"]
    assert "backtest.benchmark" in benchmark["note"]


# ---------------------------------------------------------------- the page in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        yield driver


_MEASURE = """
const root = document.documentElement;
return {
  scrollWidth: root.scrollWidth,
  clientWidth: root.clientWidth,
  innerWidth: window.innerWidth,
  images: [...document.images].map(i => ({id: i.id, complete: i.complete,
    natural: i.naturalWidth * i.naturalHeight, right: i.getBoundingClientRect().right})),
  tables: [...document.querySelectorAll('table')].map(t => t.rows.length),
  monthly: document.querySelector('#monthly') ? document.querySelector('#monthly').rows.length : 0,
  headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
  resources: performance.getEntriesByType('resource').map(e => e.name),
};
"""


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)])
def test_the_report_loads_with_its_charts_and_tables_and_fits_a_phone(
    browser: WebDriver, spy: Run, width: int, height: int
) -> None:
    """report.html in Chromium: both charts drawn, every table there, no sideways scroll
    of the page at 390 px (wide tables scroll in their own box), nothing fetched."""
    browser.set_window_size(width, height)
    browser.get((spy.out / "report.html").as_uri())
    m = browser.execute_script(_MEASURE)
    assert m["innerWidth"] == width
    assert m["scrollWidth"] <= m["clientWidth"], m
    assert [i["id"] for i in m["images"]] == ["equity-chart", "exposure-chart"]
    for image in m["images"]:
        assert image["complete"], m
        assert image["natural"] > 0, m
        assert image["right"] <= width, m
    assert len(m["tables"]) == 6, m
    assert all(rows >= 2 for rows in m["tables"]), m
    assert m["monthly"] == 2  # the header and 2026
    for heading in ("Returns and risk", "Per strategy (attribution)", "Monthly returns"):
        assert heading in m["headings"]
    assert m["resources"] == [], m
