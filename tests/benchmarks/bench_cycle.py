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
- ``peak_rss_mb``: the child's peak RSS (``os.wait4``'s resource usage of that child);
- ``next_day``: the same figures for 2026-11-24 on the same state directory, the ML
  model then reused (it refits every ``retrain_every_days``): a daemon's usual day.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ASOF = "2026-11-23"
FAKE_NOW = "2026-11-23T09:47:00-05:00"
NEXT_ASOF = "2026-11-24"
NEXT_FAKE_NOW = "2026-11-24T09:47:00-05:00"


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


def run_once(work: Path, symbols: int, asof: str, fake_now: str) -> dict[str, Any]:
    """One ``run --once`` on ``work``'s state: the cycle's line, the wall time, the peak RSS."""
    log = work / f"stdout-{asof}.log"
    t0 = time.perf_counter()
    with log.open("w") as out, (work / f"stderr-{asof}.log").open("w") as err:
        proc = subprocess.Popen(
            [*tradingd(), "run", "--once", "--asof", asof],
            env=daemon_env(work, symbols, TRADINGD_FAKE_NOW=fake_now),
            cwd=work,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    finished = None
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "cycle_finished":
                finished = event
    if proc.returncode != 0 or finished is None:
        raise SystemExit(
            f"tradingd run --once --asof {asof} exited {proc.returncode} without"
            f" cycle_finished:\n{log.read_text()[-3000:]}\n"
            f"{(work / f'stderr-{asof}.log').read_text()[-3000:]}"
        )
    return {
        "cycle_s": float(finished["seconds"]),
        "cycle_status": finished["status"],
        "orders": finished.get("orders"),
        "process_wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
    }


def measure(symbols: int) -> dict[str, Any]:
    """The first day (the ML model fitted) and the next (the model reused: it refits every
    ``retrain_every_days``), on one state directory as a daemon runs them."""
    work = Path(tempfile.mkdtemp(prefix="tdb-", dir="/tmp"))
    try:
        first = run_once(work, symbols, ASOF, FAKE_NOW)
        nxt = run_once(work, symbols, NEXT_ASOF, NEXT_FAKE_NOW)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "symbols": symbols,
        "asof": ASOF,
        **first,
        "next_day": {"asof": NEXT_ASOF, **nxt},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(measure(args.symbols)))


if __name__ == "__main__":
    main()
