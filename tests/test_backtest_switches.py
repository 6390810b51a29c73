"""A kill switch that trips during a backtest is in the summary and the report, with the
sessions it left without new entries (nobody resumes a backtest)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anyio

from actors.market.calendar import ExchangeCalendar
from actors.reports.switches import switch_lines
from actors.store.state import KillSwitchRecord
from actors.system.backtest import apply_overrides, run_backtest
from actors.system.backtest_report import write_report
from actors.system.config import load_settings
from tests.test_backtest import read_trades, write_symbol

CAL = ExchangeCalendar("XNYS")
UTC = dt.UTC


def record(name: str, active: bool, day: dt.date) -> KillSwitchRecord:
    at = dt.datetime.combine(day, dt.time(14, 31), UTC)
    return KillSwitchRecord(name, active, f"{name} reason", at, "risk")


def test_switch_lines_say_when_each_trip_started_and_ended() -> None:
    days = CAL.sessions_between(dt.date(2025, 3, 3), dt.date(2025, 3, 14))  # 10 sessions
    events = [
        record("max_drawdown", True, dt.date(2025, 3, 5)),
        record("bad_data", True, dt.date(2025, 3, 6)),
        record("bad_data", False, dt.date(2025, 3, 10)),
    ]
    assert switch_lines(events, days) == [
        "kill switch bad_data tripped 2025-03-06 (risk): bad_data reason;"
        " cleared 2025-03-10, 2 sessions without new entries",
        "kill switch max_drawdown tripped 2025-03-05 (risk): max_drawdown reason;"
        " on to the end of the run, 8 sessions without new entries",
    ]
    assert switch_lines([], days) == []


def test_a_drawdown_trip_mid_run_is_in_the_summary_and_the_report(tmp_path: Path) -> None:
    """One momentum entry, then a slide: the 0.5 % drawdown switch latches and says so."""
    folder = tmp_path / "data"
    folder.mkdir()
    sessions = CAL.sessions_between(dt.date(2025, 1, 2), dt.date(2026, 6, 30))
    jump = sessions.index(dt.date(2026, 3, 2))
    rows = []
    for i, d in enumerate(sessions):
        if i < jump:
            rows.append((d, 100.0, 101.0, 99.0, 100.0, 1_000_000.0))
        elif i == jump:
            rows.append((d, 100.0, 111.0, 99.0, 110.0, 3_000_000.0))
        else:  # a slide of 1 % a session after the entry, above the 3-ATR stop at first
            close = 110.0 * 0.99 ** (i - jump)
            rows.append((d, close * 1.002, close * 1.004, close * 0.998, close, 1_000_000.0))
    write_symbol(folder, "SLIDE", rows)
    write_symbol(folder, "VIX", [(d, 20.0, 20.0, 20.0, 20.0, 1.0) for d in sessions])
    env = {"TRADINGD_DATA__CSV__PATH": str(folder), "TRADINGD_RISK__MAX_DRAWDOWN": "0.005"}
    settings = apply_overrides(
        load_settings(None, env),
        provider="csv",
        universe="SLIDE",
        strategies="momentum",
        capital=100_000,
    )
    out = tmp_path / "out"
    start, end = sessions[jump - 3], sessions[jump + 14]

    async def run() -> str:
        result = await run_backtest(settings, start=start, end=end, out=out)
        return await write_report(result)

    summary = anyio.run(run)
    assert read_trades(out)[0]["action"] == "BUY"
    line = next(x for x in summary.splitlines() if x.startswith("kill switch"))
    assert line.startswith("kill switch max_drawdown tripped 2026-03-")
    assert "below its high-water mark" in line
    assert line.endswith("sessions without new entries")
    assert "on to the end of the run" in line
    assert "Kill switches" in (out / "report.html").read_text()
