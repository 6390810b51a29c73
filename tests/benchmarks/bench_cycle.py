"""One daily cycle through the real process: ``tradingd run --once --asof 2026-11-23``.

The daemon runs on a fake clock during that session (``TRADINGD_FAKE_NOW``, 09:47 New
York time), so 2026-11-23 is the current trading date whatever today is (``--asof`` of
another date is refused without ``--force``).

``python -m tests.benchmarks.bench_cycle --symbols N`` starts the daemon as a
subprocess on a fresh state directory, the embedded default (synthetic market,
simulated broker, all four strategies), with the universe overridden through
``TRADINGD_DATA__UNIVERSE__SYMBOLS`` (a JSON list). It prints one JSON line:

- ``cycle_s``: the cycle's own duration, ``seconds`` of the ``cycle_finished`` log line;
- ``process_wall_s``: Popen to exit of the whole process;
- ``peak_rss_mb``: the child's peak RSS (``getrusage(RUSAGE_CHILDREN)`` after the
  wait; this process starts no other child, so the maximum is the daemon's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ASOF = "2026-11-23"
FAKE_NOW = "2026-11-23T09:47:00-05:00"
TIMEOUT_S = 600


def symbol_names(n: int) -> list[str]:
    return [f"S{i:05d}" for i in range(n)]


def daemon_env(state: Path, symbols: int, **extra: str) -> dict[str, str]:
    """The environment of a benchmark daemon: no config file, no inherited TRADINGD_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGD_")}
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "STATE_DIRECTORY"):
        env.pop(k, None)
    env.pop("RUNTIME_DIRECTORY", None)
    env.update(
        {
            "TRADINGD_DAEMON__STATE_DIR": str(state / "state"),
            "TRADINGD_DAEMON__RUN_DIR": str(state / "run"),
            "TRADINGD_DAEMON__LOG_JSON": "true",
            "TRADINGD_METRICS__PORT": "0",
            "TRADINGD_DATA__UNIVERSE__SYMBOLS": json.dumps(symbol_names(symbols)),
            **extra,
        }
    )
    return env


def tradingd() -> list[str]:
    return [sys.executable, "-m", "actors"]


def measure(symbols: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tdb-", dir="/tmp"))
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*tradingd(), "run", "--once", "--asof", ASOF],
            env=daemon_env(work, symbols, TRADINGD_FAKE_NOW=FAKE_NOW),
            cwd=work,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    finished = None
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "cycle_finished":
                finished = event
    if proc.returncode != 0 or finished is None:
        raise SystemExit(
            f"tradingd run --once exited {proc.returncode} without cycle_finished:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return {
        "symbols": symbols,
        "asof": ASOF,
        "cycle_s": float(finished["seconds"]),
        "cycle_status": finished["status"],
        "orders": finished.get("orders"),
        "process_wall_s": wall,
        "peak_rss_mb": peak_kib / 1024.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(measure(args.symbols)))


if __name__ == "__main__":
    main()
