"""Start-up to READY: a real daemon process, NOTIFY_SOCKET bound here.

``python -m tests.benchmarks.bench_startup [--runs 5]`` starts ``tradingd run``
on a fresh state directory per run (embedded default, ``run_on_start = false``),
times Popen to the ``READY=1`` datagram, stops it with SIGTERM and prints one
JSON line with the median and every run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.benchmarks.bench_cycle import daemon_env, tradingd

READY_TIMEOUT_S = 120.0


@dataclass
class Running:
    popen: subprocess.Popen[bytes]
    socket_path: Path
    ready_s: float
    stdout: Path


@contextmanager
def running_daemon(symbols: int | None, **extra_env: str) -> Iterator[Running]:
    """A daemon on a fresh state dir, yielded once READY=1 arrived; SIGTERM on exit."""
    work = Path(tempfile.mkdtemp(prefix="tdb-", dir="/tmp"))
    notify_path = work / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    env = daemon_env(
        work,
        symbols or 0,
        NOTIFY_SOCKET=str(notify_path),
        TRADINGD_SCHEDULE__RUN_ON_START="false",
        TRADINGD_SCHEDULE__CATCH_UP="false",
        **extra_env,
    )
    if symbols is None:  # the embedded default universe
        env.pop("TRADINGD_DATA__UNIVERSE__SYMBOLS")
    out = work / "stdout.log"
    popen: subprocess.Popen[bytes] | None = None
    try:
        with out.open("wb") as sink:
            t0 = time.perf_counter()
            popen = subprocess.Popen(
                [*tradingd(), "run"], env=env, cwd=work, stdout=sink, stderr=subprocess.STDOUT
            )
        deadline = t0 + READY_TIMEOUT_S
        while True:
            left = deadline - time.perf_counter()
            if left <= 0 or popen.poll() is not None:
                raise SystemExit(f"no READY=1 (exit {popen.poll()}):\n{out.read_text()[-3000:]}")
            notify.settimeout(left)
            data = notify.recv(4096).decode()
            if "READY=1" in data.split("\n"):
                ready_s = time.perf_counter() - t0
                break
        yield Running(popen, work / "run" / "tradingd.sock", ready_s, out)
    finally:
        if popen is not None and popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        notify.close()
        shutil.rmtree(work, ignore_errors=True)


def measure(runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        with running_daemon(None) as d:
            times.append(d.ready_s)
    return {"runs": runs, "median_s": statistics.median(times), "all_s": times}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.runs)))


if __name__ == "__main__":
    main()
