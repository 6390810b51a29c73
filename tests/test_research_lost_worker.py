"""A sweep survives a worker killed mid-run (kill -9), and Ctrl-C keeps the finished rows.

Two ``dask worker --no-nanny`` processes, so a killed worker stays dead: its tasks
can only finish on the other one (a new worker joins after the test).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.system.backtest import apply_overrides
from actors.system.config import load_settings
from actors.system.research.cluster import dask_client
from actors.system.research.grid import parse_params
from actors.system.research.results import read_results
from actors.system.research.sweep import Plan, run_sweep
from actors.system.research.tasks import Outcome
from tests.fakes.dask_cluster import DaskCluster, dask_cluster, start_worker, worker_env

START, END = dt.date(2025, 1, 2), dt.date(2025, 3, 31)
PARAMS = ["strategies.ma_crossover.fast=4,6,8", "strategies.ma_crossover.slow=20,40"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask"), nanny=False) as running:
        yield running


def plan(out: Path) -> Plan:
    settings = apply_overrides(
        load_settings(None, {}), universe="AAPL,MSFT,XOM", strategies="ma_crossover"
    )
    return Plan(settings, START, END, parse_params(PARAMS), out)


def test_a_worker_killed_mid_sweep_loses_no_row(cluster: DaskCluster, tmp_path: Path) -> None:
    """kill -9 of a busy worker after the first result: its task reruns; every row completes."""
    from distributed import Client

    victim, pid = sorted(cluster.worker_pids().items())[0]
    killed: list[int] = []

    def kill_once(position: int, outcome: Outcome) -> None:
        if killed:
            return
        with Client(cluster.address, timeout=10) as watcher:
            deadline = time.monotonic() + 30
            while not watcher.processing(workers=[victim]).get(victim):
                assert time.monotonic() < deadline, "the victim never got a task"
                time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    with dask_client(workers=None, scheduler=cluster.address) as client:
        result = run_sweep(plan(tmp_path / "out"), client, listener=kill_once)
    assert killed == [pid]
    (process,) = [w for w in cluster.workers if w.pid == pid]
    assert process.wait(timeout=10) == -signal.SIGKILL
    cluster.workers.append(start_worker(cluster, "w2", nanny=False))  # whole again for the next
    assert len(result.rows) == 6
    assert [r.outcome.error for r in result.rows] == [None] * 6
    rows = read_results(tmp_path / "out" / "results.csv")
    assert [r["error"] for r in rows] == [""] * 6


def test_ctrl_c_cancels_the_rest_and_writes_the_finished_rows(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    """SIGINT once the first row is in: exit 130, results.csv holds the finished rows."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "sweep", "--from", "2025-01-02", "--to", "2025-03-31",
         "--universe", "AAPL,MSFT,XOM", "--strategies", "ma_crossover",
         "--param", "strategies.ma_crossover.fast=4:14:2",
         "--param", "strategies.ma_crossover.slow=20,40",
         "--scheduler", cluster.address, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=worker_env(),
    )  # fmt: skip
    try:
        seen = b""
        assert proc.stderr is not None
        while b" 1/12 combinations" not in seen:  # the progress line of the first row
            line = proc.stderr.readline()
            assert line, f"the sweep ended first: {seen.decode()}"
            seen += line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    rows = read_results(out / "results.csv")
    assert 1 <= len(rows) < 12
    assert all(r["error"] == "" for r in rows)
