"""Backtests: hand-computed trades on a built price path, no look-ahead, determinism, CLI."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.system.backtest import apply_overrides, run_backtest
from actors.system.config import Settings, load_settings

CAL = ExchangeCalendar("XNYS")


def settings_for_csv(folder: Path, symbols: list[str], strategies: str) -> Settings:
    base = load_settings(None, {"TRADINGD_DATA__CSV__PATH": str(folder)})
    return apply_overrides(
        base, provider="csv", universe=",".join(symbols), strategies=strategies, capital=100_000
    )


def write_symbol(
    folder: Path, symbol: str, rows: list[tuple[dt.date, float, float, float, float, float]]
) -> None:
    with (folder / f"{symbol}.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["date", "open", "high", "low", "close", "volume"])
        for d, o, h, lo, c, v in rows:
            w.writerow([d.isoformat(), o, h, lo, c, v])


def read_trades(out: Path) -> list[dict[str, str]]:
    with (out / "trades.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_hand_built_path_gives_the_hand_computed_trade(tmp_path: Path) -> None:
    """A 10% jump with a volume spike: one momentum entry, sized and costed by hand."""
    folder = tmp_path / "data"
    folder.mkdir()
    sessions = CAL.sessions_between(dt.date(2025, 1, 2), dt.date(2026, 6, 30))
    jump = sessions.index(dt.date(2026, 3, 2))  # session k: close jumps 100 -> 110
    rows = []
    for i, d in enumerate(sessions):
        if i < jump:
            rows.append((d, 100.0, 101.0, 99.0, 100.0, 1_000_000.0))
        elif i == jump:
            rows.append((d, 100.0, 111.0, 99.0, 110.0, 3_000_000.0))
        else:
            rows.append((d, 110.0, 111.0, 109.0, 110.0, 1_000_000.0))
    write_symbol(folder, "JUMP", rows)
    write_symbol(folder, "VIX", [(d, 20.0, 20.0, 20.0, 20.0, 1.0) for d in sessions])
    settings = settings_for_csv(folder, ["JUMP"], "momentum")
    entry_day = sessions[jump + 1]
    out = tmp_path / "out"
    anyio.run(
        lambda: run_backtest(settings, start=sessions[jump - 3], end=sessions[jump + 14], out=out)
    )
    trades = read_trades(out)
    assert [(t["action"], t["date"]) for t in trades] == [
        ("BUY", entry_day.isoformat()),
        ("SELL", sessions[jump + 11].isoformat()),  # held 10 sessions (hold_days)
    ]
    # ATR(14) at k: thirteen true ranges of 2 and one of 12 (111 - 99) after an
    # ATR of 2 -> (13 * 2 + 12) / 14. Shares risk 1% of the strategy's capital
    # (100,000 on one enabled strategy) with the stop 3 ATR away; regime normal
    # (VIX 20) -> 1.0x; fill at the next open (110) plus 7.5 bps.
    atr = (13 * 2 + 12) / 14
    shares = math.floor(100_000 * 0.01 / (3 * atr))
    buy = trades[0]
    assert int(float(buy["shares"])) == shares
    assert float(buy["exec_price"]) == pytest.approx(110 * 1.00075, abs=1e-6)
    assert float(buy["commission_cost"]) == pytest.approx(0.005 * shares, abs=1e-6)
    assert float(buy["slippage_cost"]) == pytest.approx(shares * 110 * 1.00075 * 0.00075, abs=1e-4)
    sell = trades[1]
    assert float(sell["exec_price"]) == pytest.approx(110 * (1 - 0.00075), abs=1e-6)


def synthetic_csv(folder: Path, symbols: list[str], start: dt.date, end: dt.date) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    bars = SyntheticProvider().generate(symbols, start, end)
    for symbol, frame in bars.groupby("symbol"):
        frame.drop(columns="symbol").assign(date=frame["date"].dt.date).to_csv(
            folder / f"{symbol}.csv", index=False
        )


SYMBOLS = ["AAPL", "MSFT", "XOM", "JPM", "KO", "PFE", "NVDA", "CAT", "WMT", "BAC"]


def test_no_look_ahead_changing_the_future_changes_nothing_before(tmp_path: Path) -> None:
    """Bars after session d rewritten: every trade up to d is unchanged."""
    first, last = dt.date(2025, 1, 2), dt.date(2026, 9, 30)
    cut = dt.date(2026, 8, 14)
    synthetic_csv(tmp_path / "a", SYMBOLS, first, last)
    synthetic_csv(tmp_path / "b", SYMBOLS, first, last)
    for path in (tmp_path / "b").glob("*.csv"):
        lines = path.read_text().splitlines()
        out = [lines[0]]
        for line in lines[1:]:
            d, *vals = line.split(",")
            if dt.date.fromisoformat(d) > cut:
                o, h, lo, c, v = (float(x) for x in vals)
                changed = [o * 1.7, h * 1.9, lo * 1.5, c * 1.6, v * 3]
                out.append(",".join([d, *(str(x) for x in changed)]))
            else:
                out.append(line)
        path.write_text("\n".join(out) + "\n")
    runs = []
    for name in ("a", "b"):
        settings = settings_for_csv(
            tmp_path / name, SYMBOLS, "rsi_mean_reversion,ma_crossover,momentum,ml_momentum"
        )
        out_dir = tmp_path / f"out-{name}"
        anyio.run(
            functools.partial(
                run_backtest, settings, start=dt.date(2026, 6, 1), end=last, out=out_dir
            )
        )
        runs.append(read_trades(out_dir))
    before = [[t for t in run if t["date"] <= cut.isoformat()] for run in runs]
    assert before[0]
    assert before[0] == before[1]
    after = [[t for t in run if t["date"] > cut.isoformat()] for run in runs]
    assert after[0] != after[1]


def test_same_inputs_give_byte_identical_trades(tmp_path: Path) -> None:
    """Two runs of the same backtest write the same trades.csv, byte for byte."""
    settings = apply_overrides(load_settings(None, {}), universe=",".join(SYMBOLS))
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        anyio.run(
            functools.partial(
                run_backtest, settings, start=dt.date(2026, 5, 1), end=dt.date(2026, 7, 31), out=out
            )
        )
    first, second = ((o / "trades.csv").read_bytes() for o in outs)
    assert first.count(b"\n") > 5
    assert first == second


def test_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    """An --out that already holds a backtest is refused; nothing in it is touched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "backtest.db").write_bytes(b"precious")
    settings = apply_overrides(load_settings(None, {}), universe="AAPL")
    with pytest.raises(Exception, match="already exists"):
        anyio.run(
            lambda: run_backtest(
                settings, start=dt.date(2026, 5, 1), end=dt.date(2026, 5, 5), out=out
            )
        )
    assert (out / "backtest.db").read_bytes() == b"precious"


@pytest.mark.slow
def test_cli_two_years_synthetic_writes_report_and_summary(tmp_path: Path) -> None:
    """`tradingd backtest` over 2 years of the synthetic market: report, CSVs, summary."""
    out = tmp_path / "bt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "backtest",
            "--from",
            "2024-11-25",
            "--to",
            "2026-11-20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sharpe" in result.stdout
    assert "momentum" in result.stdout
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "Signal funnel totals" in html
    assert "ml_momentum" in html
    assert len(read_trades(out)) > 50
    equity = (out / "equity.csv").read_text().splitlines()
    assert (
        len(equity) == len(CAL.sessions_between(dt.date(2024, 11, 25), dt.date(2026, 11, 20))) + 1
    )
    # The embedded default models resting stops and corporate actions, and says so.
    assert "model: stops: resting at the simulated broker" in result.stdout
    assert "model: corporate actions, point in time:" in result.stdout
    assert "What the run models" in html
    with sqlite3.connect(out / "backtest.db") as db:
        latched = db.execute("SELECT name FROM kill_switches WHERE active = 1").fetchall()
        applied = db.execute(
            "SELECT COUNT(*) FROM corporate_action_effects WHERE shares_before > 0"
        ).fetchone()[0]
        stop_exits = db.execute(
            "SELECT COUNT(*) FROM trades t JOIN order_intents i ON i.intent_id = t.intent_id"
            " WHERE i.stop_price IS NOT NULL"
        ).fetchone()[0]
        broker = dict(db.execute("SELECT symbol, qty FROM sim_positions").fetchall())
        book = dict(
            db.execute(
                "SELECT symbol, SUM(shares) FROM positions WHERE shares > 0 GROUP BY symbol"
            ).fetchall()
        )
    assert latched == []  # no action ever failed the reconciliation or tripped a switch
    assert applied > 0  # actions met held positions, and the book followed them
    assert stop_exits > 0  # some positions left through their resting stop
    assert broker == book


def test_cli_on_a_csv_folder(tmp_path: Path) -> None:
    """The same command on a CSV folder (--provider csv --csv DIR)."""
    synthetic_csv(tmp_path / "csv", SYMBOLS, dt.date(2025, 1, 2), dt.date(2026, 6, 30))
    out = tmp_path / "bt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "backtest",
            "--from",
            "2026-04-01",
            "--to",
            "2026-06-30",
            "--provider",
            "csv",
            "--csv",
            str(tmp_path / "csv"),
            "--universe",
            ",".join(SYMBOLS),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "report.html").exists()
    assert "total return" in result.stdout


def test_cli_bad_strategy_names_the_option(tmp_path: Path) -> None:
    """An unknown strategy exits 78 naming --strategies."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "backtest",
            "--from",
            "2026-04-01",
            "--to",
            "2026-04-30",
            "--strategies",
            "nosuch",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 78
    assert "--strategies" in result.stderr
