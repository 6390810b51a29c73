"""Helpers for the ops tests: a real tradingd process driven through tradectl, and metric names.

Not a test module: imported by test_grafana_dashboard.py, test_metric_labels.py and
test_prometheus_rules.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.core import Metric

REPO = Path(__file__).resolve().parents[2]

# Three consecutive sessions (Wed-Fri) driven through `tradectl run-cycle --wait`.
SESSIONS = ("2026-11-18", "2026-11-19", "2026-11-20")

# A strict one-day-move rule makes validation reject a few synthetic symbols, so the
# `reason` label of tradingd_data_rejections_total has series to look at.
REJECTING_VALIDATION = "\n[data.validation]\nmax_one_day_move = 0.04\nmax_failed_share = 0.7\n"

START_TIMEOUT_S = 60.0


def require_tool(name: str, package: str) -> str:
    """The tool's path; fail under CI=true (make test installs it), skip otherwise."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (Debian package {package}; `make test` installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@dataclass
class Daemon:
    popen: subprocess.Popen[bytes]
    workdir: Path
    socket_path: Path
    log_path: Path
    metrics_port: int = 0

    def ctl(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "actors.system.ctl", "--socket", str(self.socket_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def scrape(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def run_cycles(self, sessions: tuple[str, ...] = SESSIONS) -> list[dict[str, object]]:
        """One operator cycle per session, each waited for; all must complete."""
        done = []
        for day in sessions:
            result = self.ctl("run-cycle", "--asof", day, "--force", "--wait", "--json")
            assert result.returncode == 0, result.stderr + self.log_tail()
            body = json.loads(result.stdout)
            assert body["status"] == "completed", body
            done.append(body)
        return done


@contextmanager
def workdir() -> Iterator[Path]:
    """A short directory under /tmp (the control socket path must stay < 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="td-ops-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_daemon(work: Path, *, extra_config: str = "") -> Iterator[Daemon]:
    """Start `tradingd run` on a fresh state dir (metrics on an ephemeral port); stop it after."""
    state, run = work / "state", work / "run"
    config = work / "tradingd.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{state}"
            run_dir = "{run}"
            log_json = true

            [metrics]
            port = 0

            [schedule]
            run_on_start = false
            catch_up = false
            """
        )
        + extra_config
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}
    }
    log_path = work / "tradingd.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "actors", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
    daemon = Daemon(popen, work, run / "tradingd.sock", log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert popen.poll() is None, f"tradingd exited {popen.returncode}: {daemon.log_tail()}"
            if daemon.socket_path.exists() and daemon.ctl("ping", timeout=30).returncode == 0:
                break
            assert time.monotonic() < deadline, "tradingd not answering: " + daemon.log_tail()
            time.sleep(0.2)
        status = daemon.ctl("status", "--json")
        assert status.returncode == 0, status.stderr
        daemon.metrics_port = int(json.loads(status.stdout)["metrics_port"])
        assert daemon.metrics_port > 0
        yield daemon
    finally:
        stop_process(popen)


def stop_process(popen: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL if it did not stop."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=timeout)


# ---------------------------------------------------------------------- metric names

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "gauge": ("",),
}


class _NoActors:
    """A stand-in supervisor so the per-actor collector reports its family names."""

    def states(self) -> dict[str, object]:
        return {}


def exported_series_names() -> set[str]:
    """Every sample name the daemon's registry can export (the Counter _total form etc.)."""
    from actors.metrics import Metrics

    metrics = Metrics()
    metrics.watch_supervisor(_NoActors())  # type: ignore[arg-type]
    names: set[str] = set()
    family: Metric
    for family in metrics.registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


METRIC_NAME = re.compile(r"\btradingd_[a-zA-Z0-9_]+")


def referenced_metrics(expr: str) -> set[str]:
    """tradingd_* metric names used in a PromQL expression."""
    return set(METRIC_NAME.findall(expr))
