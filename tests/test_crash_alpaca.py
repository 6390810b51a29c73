"""SIGKILL the daemon at random instants of a cycle against the fake Alpaca server.

After every kill the daemon is started again; at the end the day is finished
by a clean run. Whatever the instants, every order intent reached the broker
at most once (one POST, one order per client order id), the database passes
``PRAGMA integrity_check``, and the final reconciliation passes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.alpaca_daemon import alpaca_workdir, priced_fake
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer

SESSIONS = ("2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20", "2026-11-23")
KILLS_PER_SESSION = 2
pytestmark = pytest.mark.slow


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTradingServer]:
    # A daemon restarted several times a minute shares one 60 s rate window at Alpaca
    # (200 requests): the storm, not the daemon, would be rate limited. Rate limits have
    # their own tests (tests/reliability/test_broker_faults.py).
    with priced_fake(SESSIONS[0], fill_mode="immediate", rate_limit=2000) as server:
        yield server


@pytest.fixture
def workdir(fake: FakeAlpacaTradingServer) -> Iterator[Path]:
    with alpaca_workdir(fake, "td-crash-") as path:
        yield path


def start(workdir: Path, fake: FakeAlpacaTradingServer, asof: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ALPACA_API_KEY": fake.api_key,
        "ALPACA_SECRET_KEY": fake.secret_key,
        # the session's own morning (EST in November), whatever today's date is
        "TRADINGD_FAKE_NOW": f"{asof}T09:47:00-05:00",
    }
    # --force: a kill can land after the cycle completed, and a completed date is
    # otherwise refused; a forced re-run sends exits and stops only, never new entries.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors",
            "run",
            "--once",
            "--force",
            "--asof",
            asof,
            "--config",
            str(workdir / "tradingd.toml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=workdir,
    )


def kill_at_random_instant(
    proc: subprocess.Popen[str], fake: FakeAlpacaTradingServer, rng: random.Random
) -> str:
    """SIGKILL after the k-th order POST (plus a jitter) or at a random time before any."""
    if rng.random() < 0.75:
        k = rng.randint(1, 4)
        jitter = rng.uniform(0.0, 0.02)
        base = fake.order_posts
        label = f"after POST #{k} + {jitter * 1000:.0f} ms"
        deadline = time.monotonic() + 60
        while proc.poll() is None and fake.order_posts - base < k and time.monotonic() < deadline:
            time.sleep(0.001)  # polling a counter to pick the instant, not to synchronise
        time.sleep(jitter)
    else:
        delay = rng.uniform(0.3, 2.0)
        label = f"{delay:.2f} s after start"
        deadline = time.monotonic() + delay
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()
    return label


def finish_day(workdir: Path, fake: FakeAlpacaTradingServer, asof: str) -> list[dict[str, object]]:
    """Run the day to its end without a kill; its events."""
    proc = start(workdir, fake, asof)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_sigkill_anywhere_never_places_an_order_twice(
    workdir: Path, fake: FakeAlpacaTradingServer
) -> None:
    """Kills before, during and after submissions over several days: one order per intent."""
    rng = random.Random(20261123)
    kills: list[str] = []
    for asof in SESSIONS:
        for _ in range(KILLS_PER_SESSION):
            before = fake.order_posts
            proc = start(workdir, fake, asof)
            label = kill_at_random_instant(proc, fake, rng)
            kills.append(
                f"{asof} {label}: posts {before}->{fake.order_posts}, exit {proc.returncode}"
            )
        events = finish_day(workdir, fake, asof)
        finished = [e for e in events if e["event"] == "cycle_finished"]
        assert finished[-1]["status"] == "completed", (finished[-1], kills)
        assert any(e["event"] == "reconciliation_passed" for e in events), kills

    killed_mid_day = [k for k in kills if "exit -9" in k]
    assert len(killed_mid_day) >= len(SESSIONS), kills

    db_path = workdir / "state" / "tradingd.db"
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        intents = db.execute("SELECT intent_id, status FROM order_intents").fetchall()
    assert intents, kills
    posts = Counter(
        r.client_order_id
        for r in fake.requests_to("POST", "/v2/orders")
        if r.client_order_id is not None  # a POST cut short by a kill: refused, no order
    )
    assert posts, "the kills never let an order through"
    for intent_id, status in intents:
        assert posts[intent_id] <= 1, f"{intent_id} POSTed {posts[intent_id]} times: {kills}"
        assert fake.orders_for(intent_id) <= 1
        if status in ("FILLED", "ACCEPTED", "PARTIALLY_FILLED"):
            assert fake.orders_for(intent_id) == 1, intent_id
    assert set(posts) <= {i for i, _ in intents}, "an order the store does not know"
    assert all(count == 1 for count in posts.values()), kills
    assert_stops_never_doubled(fake, db_path, kills)


def assert_stops_never_doubled(
    fake: FakeAlpacaTradingServer, db_path: Path, kills: list[str]
) -> None:
    """At most one resting stop per lot, never more shares under stops than held, and no
    POST refused (a sell sent on shares a stop still held would have been)."""
    with sqlite3.connect(db_path) as db:
        lots = Counter(
            str(r[0])
            for r in db.execute("SELECT symbol FROM positions WHERE shares > 0").fetchall()
        )
        resting = db.execute(
            "SELECT COUNT(*) FROM order_intents WHERE stop_price IS NOT NULL"
        ).fetchone()[0]
    assert resting > 0, "no stop was ever placed"
    stops: dict[str, list[int]] = {}
    for order in fake.open_orders():
        if order["type"] == "stop":
            stops.setdefault(str(order["symbol"]), []).append(int(order["qty"]))
    for symbol, qtys in stops.items():
        assert len(qtys) <= lots[symbol], (symbol, qtys, kills)
        assert sum(qtys) <= fake.position_qty(symbol), (symbol, qtys, kills)
    for symbol in lots:
        assert symbol in stops, f"{symbol} is held with no stop resting: {kills}"
    refused = [  # (a POST cut short by a kill has no readable body, nor a client id)
        r.client_order_id
        for r in fake.requests_to("POST", "/v2/orders")
        if r.client_order_id is not None and fake.orders_for(r.client_order_id) == 0
    ]
    assert refused == [], (refused, kills)
