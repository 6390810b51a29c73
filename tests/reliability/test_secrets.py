"""Known fake secrets never show up in anything the daemon writes or answers.

Two real processes against the fake Alpaca trading server (so the keys are
really used): ``run --once`` with the four secrets in the environment, then a
running daemon with them as systemd credential files (``$CREDENTIALS_DIRECTORY``)
asked through ``tradectl`` (status, positions, plan, help, orders, reconcile,
each as text and JSON) and scraped for metrics. No secret, whole or in part,
appears on stdout/stderr, in a metric, in a per-run event file, in a control
reply or in the database file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.alpaca_daemon import alpaca_workdir, priced_fake
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer

ASOF = "2026-11-23"
KEY = "PKFAKEKEYID0123456789XYZ"
SECRET = "fakeSecretKey0123456789abcdefghijklmnopq"
ALPHAVANTAGE = "AVFAKEKEY77TOPSECRET"
SMTP = "smtp-fake-password-Zebra42!"
SECRETS = {
    "ALPACA_API_KEY": KEY,
    "ALPACA_SECRET_KEY": SECRET,
    "ALPHAVANTAGE_API_KEY": ALPHAVANTAGE,
    "SMTP_PASSWORD": SMTP,
}
pytestmark = pytest.mark.slow


def leaks(text: str) -> list[str]:
    """The secrets (or a 12-character slice of one) found in ``text``."""
    found = []
    for name, value in SECRETS.items():
        slices = {value[i : i + 12] for i in range(0, len(value) - 11, 4)}
        if value in text or any(s in text for s in slices):
            found.append(name)
    return found


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTradingServer]:
    with priced_fake(ASOF, KEY, SECRET) as server:
        yield server


@pytest.fixture
def workdir(fake: FakeAlpacaTradingServer) -> Iterator[Path]:
    with alpaca_workdir(fake, "td-sec-") as path:
        yield path


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.pop("CREDENTIALS_DIRECTORY", None)
    return env


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


def test_secrets_appear_in_no_output_metric_event_or_reply(
    workdir: Path, fake: FakeAlpacaTradingServer
) -> None:
    """run --once (secrets in env) and a running daemon (credential files): nothing leaks."""
    once = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "run",
            "--once",
            "--force",  # a past date on the real clock (the date check wants it said)
            "--asof",
            ASOF,
            "--config",
            str(workdir / "tradingd.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=workdir,
        env={**base_env(), **SECRETS},
    )
    assert once.returncode == 0, once.stdout[-2000:] + once.stderr
    assert fake.order_posts > 0, "the keys were never used"
    assert leaks(once.stdout) == []
    assert leaks(once.stderr) == []

    creds = workdir / "credentials"
    creds.mkdir(mode=0o700)
    for name, value in SECRETS.items():
        (creds / name.lower()).write_text(value + "\n")
    log = (workdir / "daemon.out").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "--config", str(workdir / "tradingd.toml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**base_env(), "CREDENTIALS_DIRECTORY": str(creds)},
    )
    replies: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 60
        while ctl(workdir, "ping").returncode != 0:
            assert proc.poll() is None, "the daemon exited"
            assert time.monotonic() < deadline, "the daemon never answered ping"
            time.sleep(0.1)
        for command in (
            ("status",),
            ("positions",),
            ("plan", "--asof", ASOF),
            ("orders",),
            ("reconcile",),
            ("call", "help"),
        ):
            for form in ((), ("--json",)):
                done = ctl(workdir, *command, *form)
                assert done.returncode == 0, (command, done.stderr)
                replies[" ".join((*command, *form))] = done.stdout + done.stderr
        port = json.loads(ctl(workdir, "status", "--json").stdout)["metrics_port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0
    assert "tradingd_" in metrics
    assert leaks(metrics) == []
    for what, text in replies.items():
        assert leaks(text) == [], what
    assert leaks((workdir / "daemon.out").read_text()) == []

    event_files = sorted((workdir / "state" / "logs" / "events").glob("*.jsonl"))
    assert event_files, "no per-run event files were written"
    for file in event_files:
        assert leaks(file.read_text()) == [], file.name
    database = (workdir / "state" / "tradingd.db").read_bytes().decode("latin-1")
    assert leaks(database) == []
