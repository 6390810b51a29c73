"""Commands that cannot surprise (issue 14), through the real ``tradingd`` and ``tradectl``.

Every daemon runs on a fake clock (``TRADINGD_FAKE_NOW``) during the session of
2026-11-23, so the current trading date is that session whatever today is:

- ``tradectl resume SWITCH`` clears a latched switch and names those still active;
  ``call resume switch=NAME`` still works;
- ``tradectl flatten`` asks on a terminal, needs ``--yes`` elsewhere, sends nothing
  without it;
- ``run --once --asof`` / ``run-cycle --asof`` of another date place nothing
  (exit 2) unless ``--force``;
- ``backtest`` of a symbol the CSV folder does not have exits 2 naming it;
- output piped into a closed pipe or ``head`` ends quietly;
- ``check-config`` and ``run`` exit 78 with one line naming the key (CSV folder,
  Alpaca keys missing, for the other mode, or refused by the fake Alpaca server);
  an Alpaca out of reach is one warning line;
- ``why-no-trade`` says "no signals" and names the switches that blocked the cycle.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import pty
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from actors.market.calendar import ExchangeCalendar
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer

ASOF = "2026-11-23"
OTHER = "2026-11-20"  # the session before: not the current trading date at AT_0947
AT_0947 = "2026-11-23T09:47:00-05:00"  # during ASOF's session, New York time
CAL = ExchangeCalendar("XNYS")


def base_env() -> dict[str, str]:
    """This environment without Alpaca keys, credentials or tradingd settings."""
    drop = ("ALPACA_", "TRADINGD_", "CREDENTIALS_DIRECTORY")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory (AF_UNIX paths) with a config: state, socket, no scheduled cycle."""
    path = Path(tempfile.mkdtemp(prefix="td-cs-", dir="/tmp"))
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


def tradingd(
    workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``tradingd ARGS --config workdir/tradingd.toml`` on the fake clock."""
    return subprocess.run(
        [sys.executable, "-m", "actors", *args, "--config", str(workdir / "tradingd.toml")],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=workdir,
        env={**base_env(), "TRADINGD_FAKE_NOW": AT_0947, **(env or {})},
    )


def ctl_argv(workdir: Path, *args: str) -> list[str]:
    socket = str(workdir / "run" / "tradingd.sock")
    return [sys.executable, "-m", "actors.system.ctl", "--socket", socket, *args]


def ctl(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``tradectl ARGS`` with stdin not a terminal."""
    return subprocess.run(
        ctl_argv(workdir, *args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def ctl_json(workdir: Path, *args: str) -> Any:
    done = ctl(workdir, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ctl_on_a_terminal(workdir: Path, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``tradectl ARGS`` with stdin a pseudo-terminal on which ``answer`` is typed."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            ctl_argv(workdir, *args),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(slave)
        os.write(master, answer.encode() + b"\n")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def sim_orders(workdir: Path) -> int:
    """The simulated broker's orders (market and stop)."""
    with sqlite3.connect(workdir / "state" / "tradingd.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM sim_orders").fetchone()[0])


@contextmanager
def running(workdir: Path, now: str = AT_0947) -> Iterator[subprocess.Popen[bytes]]:
    """``tradingd run`` on a fake clock at ``now`` until it answers ping; SIGTERM after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "--config", str(workdir / "tradingd.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
        env={**base_env(), "TRADINGD_FAKE_NOW": now},
    )
    try:
        deadline = time.monotonic() + 90
        while ctl(workdir, "ping").returncode != 0:
            assert proc.poll() is None, "the daemon exited before it answered ping"
            assert time.monotonic() < deadline, "the daemon never answered ping"
            time.sleep(0.2)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.fixture
def daemon(workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A running ``tradingd run`` at AT_0947 that answers ping; stopped (SIGTERM) after."""
    with running(workdir) as proc:
        yield proc


def one_line(text: str) -> str:
    """``text`` is exactly one line (and no traceback): that line."""
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- run --once --asof / run-cycle --asof ------------------------------------------------


def test_run_once_of_another_date_is_refused_unless_forced(workdir: Path) -> None:
    """``run --once --asof`` a date that is not the current trading date: exit 2, no orders."""
    refused = tradingd(workdir, "run", "--once", "--asof", OTHER)
    assert refused.returncode == 2, refused.stderr
    line = one_line(refused.stderr)
    assert f"--asof {OTHER} is not the current trading date {ASOF}" in line
    assert "--force" in line
    assert not (workdir / "state" / "tradingd.db").exists()  # no daemon, no cycle, no order

    forced = tradingd(workdir, "run", "--once", "--asof", OTHER, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert sim_orders(workdir) > 0


# -- why-no-trade, resume, run-cycle --asof, tradectl into a closed pipe --------------------


def test_blocked_cycle_why_no_trade_resume_and_run_cycle_asof(
    workdir: Path, daemon: subprocess.Popen[bytes]
) -> None:
    """Switches block a cycle, why-no-trade names them, resume SWITCH clears one by one."""
    refused = ctl(workdir, "run-cycle", "--asof", OTHER, "--wait")
    assert refused.returncode == 2, refused.stderr
    assert f"--asof {OTHER} is not the current trading date {ASOF}" in one_line(refused.stderr)
    assert ctl_json(workdir, "why-no-trade")["cycle"] is None  # nothing was sent
    # The daemon refuses it too, for a client that does not check (the raw call form).
    raw = ctl(workdir, "call", "run-cycle", f"asof={OTHER}")
    assert raw.returncode != 0, raw.stdout
    assert f"asof {OTHER} is not the current trading date {ASOF}" in raw.stdout + raw.stderr
    assert ctl_json(workdir, "why-no-trade")["cycle"] is None

    assert ctl(workdir, "halt", "drill").returncode == 0
    assert ctl(workdir, "pause-entries").returncode == 0
    done = ctl_json(workdir, "run-cycle", "--wait")
    assert done["status"] == "completed", done

    why = ctl_json(workdir, "why-no-trade")
    blocked = [b["switch"] for b in why["blocked_by"]]
    assert set(blocked) == {"trading_halted", "entries_paused"}, why["blocked_by"]
    strategies = why["strategies"]
    silent = [name for name, s in strategies.items() if s["raw"] == 0]
    assert silent, strategies  # the synthetic market gives one strategy nothing that day
    assert all(strategies[name]["summary"] == "no signals" for name in silent)

    text = ctl(workdir, "why-no-trade")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(
        line.startswith("blocked by:") and "trading_halted (drill)" in line for line in lines
    ), text.stdout
    for name in silent:
        assert any(line.split() == [f"{name}:", "no", "signals"] for line in lines), text.stdout
    assert "(none)" not in text.stdout
    one = ctl(workdir, "why-no-trade", silent[0])
    assert f"{silent[0]}: no signals" in " ".join(one.stdout.split()), one.stdout

    cleared = ctl(workdir, "resume", "trading_halted")
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout == "cleared trading_halted\nstill active: entries_paused\n"
    called = ctl_json(workdir, "call", "resume", "switch=entries_paused")
    assert called["changed"] is True
    assert called["still_active"] == []
    again = ctl(workdir, "resume")
    assert again.stdout == "trading_halted was not active\nstill active: none\n"
    assert ctl_json(workdir, "status")["kill_switches"] == []

    # tradectl printing into a pipe whose reader is gone ends quietly.
    read, write = os.pipe()
    os.close(read)
    try:
        piped = subprocess.run(
            ctl_argv(workdir, "status"),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert piped.stderr == ""
    assert piped.returncode == 141


# -- flatten -----------------------------------------------------------------------------


def test_flatten_asks_on_a_terminal_and_needs_yes_elsewhere(
    workdir: Path, daemon: subprocess.Popen[bytes]
) -> None:
    """Without --yes: refused off a terminal, asked on one; only a yes or --yes sells."""
    done = ctl_json(workdir, "run-cycle", "--wait")
    assert done["status"] == "completed", done

    def held() -> list[dict[str, Any]]:
        return [p for p in ctl_json(workdir, "positions")["positions"] if p["shares"] > 0]

    before = held()
    assert len(before) > 1
    orders = sim_orders(workdir)

    refused = ctl(workdir, "flatten")
    assert refused.returncode == 2
    assert "--yes" in one_line(refused.stderr)
    assert refused.stdout == ""

    declined = ctl_on_a_terminal(workdir, "n", "flatten")
    assert declined.returncode == 1, declined.stderr
    assert f"flatten {len(before)} positions? [y/N]" in declined.stderr
    assert "nothing sent" in declined.stderr
    assert sim_orders(workdir) == orders
    assert held() == before

    symbol = str(before[0]["symbol"])
    count = sum(1 for p in before if p["symbol"] == symbol)
    accepted = ctl_on_a_terminal(workdir, "y", "flatten", symbol)
    assert accepted.returncode == 0, accepted.stderr
    noun = "position" if count == 1 else "positions"
    assert f"flatten {count} {noun} of {symbol}? [y/N]" in accepted.stderr
    assert accepted.stdout.startswith("orders:")
    assert sim_orders(workdir) > orders

    rest = [p for p in before if p["symbol"] != symbol]
    sold = ctl_json(workdir, "flatten", "--yes")["orders"]
    assert sorted((o["symbol"], o["side"]) for o in sold) == sorted(
        (p["symbol"], "sell") for p in rest
    )


# -- backtest of a symbol the data does not have -------------------------------------------


def write_bars(folder: Path, symbol: str, start: dt.date, end: dt.date) -> None:
    with (folder / f"{symbol}.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["date", "open", "high", "low", "close", "volume"])
        for i, day in enumerate(CAL.sessions_between(start, end)):
            price = 100.0 + (i % 7)
            w.writerow([day.isoformat(), price, price + 1, price - 1, price, 1_000_000])


def backtest(tmp_path: Path, universe: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "backtest",
            "--from",
            "2026-04-01",
            "--to",
            "2026-04-30",
            "--provider",
            "csv",
            "--csv",
            str(tmp_path / "csv"),
            "--universe",
            universe,
            "--out",
            str(tmp_path / "bt"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
        env={**base_env(), "TRADINGD_METRICS__PORT": "0"},
    )


def test_backtest_of_a_symbol_without_data_exits_2_naming_it(tmp_path: Path) -> None:
    """A universe symbol with no file (or an unreadable one) is an error, not 0 trades."""
    folder = tmp_path / "csv"
    folder.mkdir()
    write_bars(folder, "AAA", dt.date(2025, 1, 2), dt.date(2026, 6, 30))
    (folder / "BAD.csv").write_text("date,open,high,low,close,volume\nnot-a-date,1,1,1,1,1\n")
    result = backtest(tmp_path, "AAA,ZZZ,BAD")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("tradingd:")]
    assert "no bars for ZZZ, BAD" in line
    assert "AAA" not in line.split("no bars for", 1)[1]
    assert "BAD: " in line  # the provider's reason for the file it could not read
    assert not (tmp_path / "bt" / "trades.csv").exists()


# -- check-config and run: one line naming the key, exit 78 ---------------------------------


@pytest.mark.parametrize(
    ("env", "key"),
    [
        (
            {"TRADINGD_DATA__PROVIDER": "csv", "TRADINGD_DATA__CSV__PATH": "/nonexistent/bars"},
            "data.csv.path",
        ),
        ({"TRADINGD_BROKER__KIND": "alpaca"}, "ALPACA_API_KEY and ALPACA_SECRET_KEY"),
        ({"TRADINGD_DATA__PROVIDER": "alpaca"}, "ALPACA_API_KEY and ALPACA_SECRET_KEY"),
        (
            {"TRADINGD_BROKER__KIND": "alpaca", "ALPACA_API_KEY": "PKTEST0123456789"},
            "ALPACA_SECRET_KEY",
        ),
        (
            {
                "TRADINGD_BROKER__KIND": "alpaca",
                "ALPACA_API_KEY": "AKLIVE0123456789",
                "ALPACA_SECRET_KEY": "s3cret",
            },
            "ALPACA_API_KEY",
        ),
    ],
    ids=["csv-folder", "broker-no-keys", "data-no-keys", "no-secret-key", "live-key-on-paper"],
)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_unusable_settings_exit_78_naming_the_key(
    workdir: Path, env: dict[str, str], key: str, command: str
) -> None:
    """Neither command starts anything: one line on stderr names the key, exit 78."""
    result = tradingd(workdir, command, env=env, timeout=60)
    assert result.returncode == 78, result.stdout[-2000:] + result.stderr
    assert f"config error: {key}:" in one_line(result.stderr)
    assert "s3cret" not in result.stderr
    assert result.stdout == ""
    assert not (workdir / "state" / "tradingd.db").exists()


@pytest.fixture
def alpaca() -> Iterator[FakeAlpacaTradingServer]:
    """The fake Alpaca trading server on loopback, accepting one pair of paper keys."""
    with FakeAlpacaTradingServer(api_key="PKGOOD0123456789", secret_key="good-secret") as server:
        yield server


def alpaca_env(url: str, key: str, secret: str) -> dict[str, str]:
    return {
        "TRADINGD_BROKER__KIND": "alpaca",
        "TRADINGD_BROKER__BASE_URL": url,
        "ALPACA_API_KEY": key,
        "ALPACA_SECRET_KEY": secret,
    }


@pytest.mark.parametrize(
    ("key", "secret"),
    [("PKGOOD0123456789", "wrong-s3cret"), ("PKOTHER012345678", "good-secret")],
    ids=["wrong-secret", "unknown-key"],
)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_keys_alpaca_refuses_exit_78_naming_the_key(
    workdir: Path, alpaca: FakeAlpacaTradingServer, key: str, secret: str, command: str
) -> None:
    """Alpaca answers 401 to the account read: one line naming ALPACA_API_KEY, exit 78."""
    result = tradingd(workdir, command, env=alpaca_env(alpaca.url, key, secret), timeout=60)
    assert result.returncode == 78, result.stdout[-2000:] + result.stderr
    line = one_line(result.stderr)
    assert "config error: ALPACA_API_KEY: Alpaca refused the keys at http://127.0.0.1:" in line
    assert "401" in line
    assert "paper keys (broker.paper = true)" in line
    assert "s3cret" not in result.stderr
    assert "good-secret" not in result.stderr
    assert result.stdout == ""
    assert not (workdir / "state" / "tradingd.db").exists()


def test_keys_alpaca_accepts_pass_check_config(
    workdir: Path, alpaca: FakeAlpacaTradingServer
) -> None:
    """The right keys: check-config asks Alpaca once and prints the configuration."""
    env = alpaca_env(alpaca.url, "PKGOOD0123456789", "good-secret")
    result = tradingd(workdir, "check-config", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "kind = alpaca" in result.stdout or '"alpaca"' in result.stdout


def test_alpaca_out_of_reach_is_a_warning_not_a_config_error(workdir: Path) -> None:
    """Nothing listens at the URL: the keys are not judged; one warning line, exit 0."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = alpaca_env(f"http://127.0.0.1:{port}", "PKGOOD0123456789", "good-secret")
    result = tradingd(workdir, "check-config", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    line = one_line(result.stderr)
    assert line.startswith("tradingd: warning: could not ask Alpaca at http://127.0.0.1:")
    assert "good-secret" not in result.stderr


# -- tradingd output into a closed pipe or head --------------------------------------------


def test_tradingd_output_into_a_closed_pipe_ends_quietly(workdir: Path) -> None:
    """check-config into a pipe nobody reads: no BrokenPipeError traceback, exit 141."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "actors", "check-config"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
            cwd=workdir,
            env=base_env(),
        )
    finally:
        os.close(write)
    assert result.stderr == ""
    assert result.returncode == 141


def test_tradingd_piped_into_head_ends_quietly(workdir: Path) -> None:
    """``tradingd check-config | head -1``: the first line, nothing on stderr."""
    producer = subprocess.Popen(
        [sys.executable, "-m", "actors", "check-config"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=base_env(),
    )
    assert producer.stdout is not None
    head = subprocess.run(
        ["head", "-1"], stdin=producer.stdout, capture_output=True, timeout=60, check=False
    )
    producer.stdout.close()
    assert producer.stderr is not None
    err = producer.stderr.read()
    producer.stderr.close()
    assert producer.wait(timeout=60) in (0, 141)
    assert err == b""
    assert head.stdout == b"{\n"
