"""A trading date whose cycle completed is done, through the real CLI on a fake clock.

``TRADINGD_FAKE_NOW`` puts each process at an instant of the 2026-11-23 session
(a Monday), so these tests do not depend on the wall clock: a second
``tradingd run --once`` or ``tradectl run-cycle`` places nothing and says when the
first cycle completed, during market hours and after the close alike; ``--force``
re-runs exits and stop checks without new entries.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

NY = ZoneInfo("America/New_York")
SESSION = "2026-11-23"
AT_0947 = "2026-11-23T09:47:00-05:00"  # during the session: the demo's default time
AT_1015 = "2026-11-23T10:15:00-05:00"
AFTER_CLOSE = "2026-11-23T16:30:00-05:00"  # the trading date is Tuesday 2026-11-24
LATER_EVENING = "2026-11-23T18:05:00-05:00"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory (AF_UNIX paths are limited) with a config for the demo defaults."""
    path = Path(tempfile.mkdtemp(prefix="td-date-", dir="/tmp"))
    write_config(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_config(path: Path, extra: str = "") -> None:
    (path / "tradingd.toml").write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{path / "state"}"
            run_dir = "{path / "run"}"
            log_json = true
            [metrics]
            port = 0
            """
        )
        + textwrap.dedent(extra)
    )


def env_at(now: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "TRADINGD_FAKE_NOW": now}


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
    socket = str(workdir / "run" / "tradingd.sock")
    return subprocess.run(
        [sys.executable, "-m", "actors.system.ctl", "--socket", socket, *args],
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )


def events(stdout: str, name: str) -> list[dict[str, Any]]:
    lines = (json.loads(x) for x in stdout.splitlines() if x.startswith("{"))
    return [e for e in lines if e["event"] == name]


def count(workdir: Path, sql: str, *params: str) -> int:
    with sqlite3.connect(workdir / "state" / "tradingd.db") as db:
        return int(db.execute(sql, params).fetchone()[0])


def buys(workdir: Path) -> int:
    return count(workdir, "SELECT COUNT(*) FROM sim_orders WHERE side = 'buy'")


def completed_cycle(workdir: Path, asof: str) -> tuple[str, str]:
    """The first completed run of ``asof`` and its finish time as the refusal prints it."""
    with sqlite3.connect(workdir / "state" / "tradingd.db") as db:
        run_id, finished = db.execute(
            "SELECT run_id, finished_at FROM cycles WHERE asof_date = ? AND status = 'completed'"
            " ORDER BY started_at LIMIT 1",
            (asof,),
        ).fetchone()
    local = dt.datetime.fromisoformat(finished).astimezone(NY)
    return str(run_id), f"{local:%Y-%m-%d %H:%M:%S %Z}"


def done_line(stdout: str) -> str:
    lines = [x for x in stdout.splitlines() if x.startswith("tradingd: ")]
    assert len(lines) == 1, stdout[-3000:]
    return lines[0]


def first_run(workdir: Path, now: str) -> tuple[str, str]:
    """Run ``run --once`` at ``now``; it must place entries. Its (run id, completion time)."""
    first = tradingd(workdir, now, "run", "--once")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    assert buys(workdir) > 0
    asof = events(first.stdout, "cycle_finished")[0]["asof"]
    return completed_cycle(workdir, asof)


def test_second_run_once_during_the_session_places_nothing(workdir: Path) -> None:
    """At 09:47 and again at 10:15 New York time: the second run says when the first completed."""
    run_id, when = first_run(workdir, AT_0947)
    placed = count(workdir, "SELECT COUNT(*) FROM sim_orders")

    second = tradingd(workdir, AT_1015, "run", "--once")
    assert second.returncode == 0, second.stderr
    assert count(workdir, "SELECT COUNT(*) FROM sim_orders") == placed
    assert events(second.stdout, "cycle_finished") == []
    line = done_line(second.stdout)
    assert f"trading date {SESSION} is done" in line
    assert f"{run_id} completed at {when}" in line
    assert "--force runs exits and stop checks again" in line


def test_second_run_once_after_the_close_places_nothing(workdir: Path) -> None:
    """After the close both runs are the next session's; the second places nothing."""
    run_id, when = first_run(workdir, AFTER_CLOSE)
    assert completed_cycle(workdir, "2026-11-24")[0] == run_id
    placed = count(workdir, "SELECT COUNT(*) FROM sim_orders")

    second = tradingd(workdir, LATER_EVENING, "run", "--once")
    assert second.returncode == 0, second.stderr
    assert count(workdir, "SELECT COUNT(*) FROM sim_orders") == placed
    line = done_line(second.stdout)
    assert "trading date 2026-11-24 is done" in line
    assert f"{run_id} completed at {when}" in line


def test_an_explicit_asof_of_a_done_date_is_refused_too(workdir: Path) -> None:
    """``--asof`` of the completed date is refused the same way, without orders."""
    run_id, _ = first_run(workdir, AT_0947)
    placed = count(workdir, "SELECT COUNT(*) FROM sim_orders")
    second = tradingd(workdir, AT_1015, "run", "--once", "--asof", SESSION)
    assert second.returncode == 0, second.stderr
    assert count(workdir, "SELECT COUNT(*) FROM sim_orders") == placed
    assert run_id in done_line(second.stdout)


def test_force_reruns_exits_and_stops_without_new_entries(workdir: Path) -> None:
    """``--force`` runs a whole cycle again, but no entry reaches the broker."""
    run_id, _ = first_run(workdir, AT_0947)
    bought = buys(workdir)

    forced = tradingd(workdir, AT_1015, "run", "--once", "--force")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr
    assert buys(workdir) == bought
    (note,) = events(forced.stdout, "cycle_forced")
    assert (note["completed_run"], note["entries"]) == (run_id, "blocked")
    (finished,) = events(forced.stdout, "cycle_finished")
    assert finished["status"] == "completed"
    assert count(workdir, "SELECT COUNT(*) FROM cycles WHERE status = 'completed'") == 2


def test_force_with_allow_entries_lifts_the_block(workdir: Path) -> None:
    """``--force --allow-entries`` runs a whole cycle with no day_already_traded block."""
    first_run(workdir, AT_0947)
    forced = tradingd(workdir, AT_1015, "run", "--once", "--force", "--allow-entries")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr
    (note,) = events(forced.stdout, "cycle_forced")
    assert note["entries"] == "allowed"
    (finished,) = events(forced.stdout, "cycle_finished")
    blocked = count(
        workdir,
        "SELECT COUNT(*) FROM signal_rejections WHERE run_id = ? AND details_json LIKE ?",
        finished["run_id"],
        "%day_already_traded%",
    )
    assert blocked == 0


def test_allow_entries_without_force_is_a_usage_error(workdir: Path) -> None:
    """``run --once --allow-entries`` alone exits 2 naming the flag, before doing anything."""
    result = tradingd(workdir, AT_0947, "run", "--once", "--allow-entries")
    assert result.returncode == 2
    assert "--allow-entries needs --force" in result.stderr
    assert not (workdir / "state" / "tradingd.db").exists()


def test_fake_clock_is_refused_for_a_live_money_account(workdir: Path) -> None:
    """TRADINGD_FAKE_NOW with a live Alpaca account exits 78 with one line naming it."""
    write_config(
        workdir,
        """
        [broker]
        kind = "alpaca"
        paper = false
        live_confirm = true
        """,
    )
    result = tradingd(workdir, AT_0947, "run", "--once")
    assert result.returncode == 78
    assert result.stderr.count("\n") == 1
    assert "TRADINGD_FAKE_NOW is refused: the broker is a live-money account" in result.stderr
    assert not (workdir / "state" / "tradingd.db").exists()


def test_a_malformed_fake_clock_is_a_config_error(workdir: Path) -> None:
    """A TRADINGD_FAKE_NOW without an offset exits 78 naming the variable."""
    result = tradingd(workdir, "2026-11-23T09:47:00", "run", "--once")
    assert result.returncode == 78
    assert "TRADINGD_FAKE_NOW='2026-11-23T09:47:00' must be an ISO 8601 instant" in result.stderr


def wait_until_scheduled(workdir: Path, daemon: subprocess.Popen[str]) -> None:
    """Until the daemon answers and its scheduler has made its start-up decision."""
    for _ in range(1200):
        assert daemon.poll() is None, "tradingd exited early"
        status = ctl(workdir, "status", "--json")
        if status.returncode == 0 and json.loads(status.stdout)["next_cycle"] is not None:
            return
    raise AssertionError("tradingd did not become ready")


def test_restart_and_run_cycle_refuse_a_done_date(workdir: Path) -> None:
    """After the day's cycle: a restart runs nothing, and run-cycle is refused unless forced."""
    run_id, when = first_run(workdir, AT_0947)
    bought = buys(workdir)
    log = (workdir / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "--config", str(workdir / "tradingd.toml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=workdir,
        env=env_at(AT_1015),
    )
    try:
        wait_until_scheduled(workdir, daemon)
        refused = ctl(workdir, "run-cycle", "--wait")
        assert refused.returncode == 1
        assert f"trading date {SESSION} is done" in refused.stderr
        assert f"{run_id} completed at {when}" in refused.stderr
        assert ctl(workdir, "run-cycle", "--allow-entries").returncode == 2
        raw = ctl(workdir, "call", "run-cycle", "allow_entries:=true")
        assert raw.returncode == 1
        assert "allow_entries: needs force" in raw.stderr
        plan = ctl(workdir, "plan", "--json", "--timeout", "300")
        assert plan.returncode == 0, plan.stderr
        assert run_id in json.loads(plan.stdout)["entries_blocked"]
        forced = ctl(workdir, "run-cycle", "--force", "--wait", "--json", "--timeout", "300")
        assert forced.returncode == 0, forced.stderr
        assert json.loads(forced.stdout)["status"] == "completed"
        assert buys(workdir) == bought
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        log.close()
    start = events((workdir / "daemon.log").read_text(), "cycle_already_completed")
    assert [(e["asof"], e["trigger"]) for e in start] == [(SESSION, "start")]
