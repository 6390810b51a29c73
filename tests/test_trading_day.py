"""The embedded default trades on its first day; tradectl shows it; a re-run places nothing.

Every process runs on a fake clock (``TRADINGD_FAKE_NOW``) during the session it
trades, so the test does not depend on today's date.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ASOF = "2026-11-23"
AT_0947 = "2026-11-23T09:47:00-05:00"  # during ASOF's session, New York time
AT_1030 = "2026-11-23T10:30:00-05:00"


def env_at(now: str) -> dict[str, str]:
    """This process's environment with the clock set to ``now``."""
    return {**os.environ, "TRADINGD_FAKE_NOW": now}


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="td-day-", dir="/tmp"))
    (path / "tradingd.toml").write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{path / "state"}"
            run_dir = "{path / "run"}"
            log_json = true
            [metrics]
            port = 0
            [schedule]
            run_on_start = false
            catch_up = false
            """
        )
    )
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tradingd(workdir: Path, now: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors", *args, "--config", str(workdir / "tradingd.toml")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=workdir,
        env=env_at(now),
    )


def ctl(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "actors.system.ctl",
            "--socket",
            str(workdir / "run" / "tradingd.sock"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def broker_orders(workdir: Path, *, stops: bool = False) -> int:
    """The simulated broker's market orders (``stops``: its resting stop orders)."""
    which = "IS NOT NULL" if stops else "IS NULL"
    with sqlite3.connect(workdir / "state" / "tradingd.db") as db:
        query = f"SELECT COUNT(*) FROM sim_orders WHERE stop_price {which}"
        return int(db.execute(query).fetchone()[0])


def test_first_day_trades_and_rerun_places_nothing(workdir: Path) -> None:
    """run --once places orders on day one; a second run the same day adds none."""
    first = tradingd(workdir, AT_0947, "run", "--once", "--asof", ASOF)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr
    placed = broker_orders(workdir)
    assert placed > 0
    events = [json.loads(x) for x in first.stdout.splitlines() if x.startswith("{")]
    assert any(e["event"] == "order_intent_created" for e in events)

    second = tradingd(workdir, AT_1030, "run", "--once", "--asof", ASOF)
    assert second.returncode == 0
    assert broker_orders(workdir) == placed
    assert not any("cycle_finished" in x for x in second.stdout.splitlines())
    assert f"tradingd: trading date {ASOF} is done" in second.stdout

    daemon = subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "--config", str(workdir / "tradingd.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
        env=env_at(AT_1030),
    )
    try:
        for _ in range(600):
            if ctl(workdir, "ping").returncode == 0:
                break
        positions = json.loads(ctl(workdir, "positions", "--json").stdout)
        assert len(positions["open_orders"]) + len(positions["positions"]) == placed
        # Each position's protective stop rests at the broker, and both commands say so.
        assert broker_orders(workdir, stops=True) == len(positions["positions"])
        status = json.loads(ctl(workdir, "status", "--json").stdout)
        assert status["broker_stops"] is True
        # One screen: equity, the day's P&L, the drawdown, positions marked to market, orders.
        account = status["account"]
        assert account["equity"] > 0
        assert account["day_pnl"] == round(account["equity"] - account["last_close_equity"], 2)
        assert account["drawdown_from_peak"] <= 0
        marks = {m["symbol"]: m for m in account["positions"]}
        assert set(marks) == {p["symbol"] for p in status["positions"]}
        for m in marks.values():
            assert m["mark"] is not None
            assert (
                abs(m["unrealized_pnl"] - (m["mark"] - m["avg_price"]) * m["qty"]) < 0.05 * m["qty"]
            )
        assert status["open_orders"]["count"] == len(positions["open_orders"])
        for shown in (positions["positions"], status["positions"]):
            for p in shown:
                resting = p["resting_stop"]
                assert resting["status"] == "ACCEPTED", p
                assert resting["qty"] == p["shares"], p
                assert abs(resting["stop_price"] - p["stop_price"]) < 0.006, p
        funnel = json.loads(ctl(workdir, "funnel", "--json").stdout)
        assert {row["strategy"] for row in funnel["funnel"]} == {
            "rsi_mean_reversion",
            "ma_crossover",
            "momentum",
            "ml_momentum",
        }
        why = ctl(workdir, "why-no-trade", "--json")
        assert why.returncode == 0
        assert "reasons" in json.loads(why.stdout)
        plan = ctl(workdir, "plan", "--json", "--asof", ASOF)
        assert plan.returncode == 0, plan.stderr
        assert broker_orders(workdir) == placed
        reconcile = json.loads(ctl(workdir, "reconcile", "--json").stdout)
        assert reconcile["passed"] is True
        assert ctl(workdir, "why-no-trade", "nosuch").returncode == 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
