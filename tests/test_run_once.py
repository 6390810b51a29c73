"""`tradingd run --once`: one cycle on the embedded default and on a CSV market.

The process runs on a fake clock (``TRADINGD_FAKE_NOW``) during the session it
trades, so the tests do not depend on today's date.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar

ASOF = dt.date(2026, 11, 23)
DURING_ASOF = "2026-11-23T09:47:00-05:00"  # 09:47 New York time on ASOF


def run_once(cwd: Path, *args: str) -> tuple[int, list[dict[str, object]]]:
    result = subprocess.run(
        [sys.executable, "-m", "actors", "run", "--once", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=cwd,
        env={
            "PATH": "/usr/bin:/bin",
            "TRADINGD_METRICS__PORT": "0",
            "TRADINGD_FAKE_NOW": DURING_ASOF,
        },
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.stderr == "", result.stderr
    return result.returncode, lines


def test_once_on_embedded_default_logs_raw_signals_per_strategy(tmp_path: Path) -> None:
    """With no config at all, one cycle runs and logs raw signal counts per strategy."""
    code, lines = run_once(tmp_path, "--asof", ASOF.isoformat())
    assert code == 0
    generated = [line for line in lines if line["event"] == "signals_generated"]
    assert len(generated) == 1
    raw = generated[0]["raw_signals"]
    assert isinstance(raw, dict)
    assert set(raw) == {"rsi_mean_reversion", "ma_crossover", "momentum", "ml_momentum"}
    assert sum(raw.values()) > 0
    assert (tmp_path / "var" / "tradingd.db").exists()


def test_once_with_a_csv_provider(tmp_path: Path) -> None:
    """The same cycle runs on a folder of per-symbol CSV files named in the config."""
    symbols = ["AAPL", "MSFT", "XOM", "JPM", "KO", "PFE"]
    calendar = ExchangeCalendar("XNYS")
    sessions = calendar.sessions_back(calendar.previous_session(ASOF), 300)
    bars = SyntheticProvider().generate(symbols, sessions[0], sessions[-1])
    folder = tmp_path / "data"
    folder.mkdir()
    for symbol, frame in bars.groupby("symbol"):
        frame.drop(columns="symbol").assign(date=frame["date"].dt.date).to_csv(
            folder / f"{symbol}.csv", index=False
        )
    config = tmp_path / "csv.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{tmp_path / "state"}"
            [data]
            provider = "csv"
            [data.csv]
            path = "{folder}"
            [data.universe]
            symbols = {json.dumps(symbols)}
            """
        )
    )
    code, lines = run_once(tmp_path, "--config", str(config), "--asof", ASOF.isoformat())
    assert code == 0
    generated = [line for line in lines if line["event"] == "signals_generated"]
    assert len(generated) == 1
    finished = [line for line in lines if line["event"] == "cycle_finished"]
    assert finished[0]["status"] == "completed"
