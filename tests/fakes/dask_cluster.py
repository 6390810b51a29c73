"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on loopback.

Not a fake: the same commands docs/RESEARCH.md tells an operator to run, started
with ``python -m dask`` from this interpreter, bound to 127.0.0.1 on free ports
(the scheduler picks its own and writes it to a scheduler file). Workers get this
checkout first on their ``PYTHONPATH``, as a remote worker gets the same tradingd
installed. Every process is killed when the context ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def worker_env() -> dict[str, str]:
    """The environment of a scheduler or worker: this checkout importable first."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), path) if p)}


@dataclass
class DaskCluster:
    """A running scheduler and its workers."""

    address: str
    folder: Path
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> the pid of the process that runs its tasks."""
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            pids: dict[str, int] = client.run(os.getpid)
        return pids

    def stop(self) -> None:
        """Workers first (a nanny waits for a scheduler that is gone), then the scheduler."""
        for group in (self.workers, [self.scheduler]):
            for proc in group:
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextmanager
def dask_cluster(folder: Path, *, workers: int = 2, nanny: bool = True) -> Iterator[DaskCluster]:
    """Start a scheduler and ``workers`` single-threaded workers; wait until all are in."""
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    log = (folder / "scheduler.log").open("wb")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
         "--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL, stderr=log, env=worker_env(), cwd=folder,
    )  # fmt: skip
    cluster = DaskCluster("", folder, scheduler)
    try:
        cluster.address = _address(scheduler_file, scheduler)
        for i in range(workers):
            cluster.workers.append(start_worker(cluster, f"w{i}", nanny=nanny))
        _wait_for_workers(cluster.address, workers)
        yield cluster
    finally:
        cluster.stop()
        log.close()


def start_worker(cluster: DaskCluster, name: str, *, nanny: bool = True) -> subprocess.Popen[bytes]:
    """One more ``dask worker`` process joining ``cluster``."""
    log = (cluster.folder / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dask", "worker", cluster.address, "--name", name,
         "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
         "--local-directory", str(cluster.folder / name), "--nanny" if nanny else "--no-nanny"],
        stdout=subprocess.DEVNULL, stderr=log, env=worker_env(), cwd=cluster.folder,
    )  # fmt: skip
    log.close()
    return proc


def _address(scheduler_file: Path, scheduler: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert scheduler.poll() is None, "dask scheduler exited at start"
        try:
            return str(json.loads(scheduler_file.read_text())["address"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)
    raise AssertionError("dask scheduler did not write its address")


def _wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=START_TIMEOUT_S) as client:
        client.wait_for_workers(n, timeout=START_TIMEOUT_S)
