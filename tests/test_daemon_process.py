"""The real process: start, READY on a real NOTIFY_SOCKET, tradectl, metrics, reload, stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FAKE_SECRET = "AKFAKESECRETDONOTLEAK42"
ROOT = Path(__file__).resolve().parent.parent


def write_config(path: Path, state: Path, run: Path, *, extra: str = "") -> None:
    path.write_text(
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
        + extra
    )


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    notify: socket.socket
    socket_path: Path
    config: Path
    state: Path
    seen: list[str] = field(default_factory=list)

    def wait_notify(self, wanted: str, timeout: float = 60.0) -> list[str]:
        """Read datagrams until one contains ``wanted``; returns everything read."""
        self.notify.settimeout(timeout)
        got: list[str] = []
        while True:
            data = self.notify.recv(4096).decode()
            got.append(data)
            self.seen.append(data)
            if wanted in data.split("\n"):
                return got

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "actors.system.ctl", "--socket", str(self.socket_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def start(short_dir: Path, tmp_path: Path, *, extra: str = "") -> Proc:
    state, run = tmp_path / "state", short_dir / "run"
    config = tmp_path / "tradingd.toml"
    write_config(config, state, run, extra=extra)
    notify_path = short_dir / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "1000000",
        "ALPACA_API_KEY": FAKE_SECRET,
        "ALPACA_SECRET_KEY": FAKE_SECRET + "S",
    }
    env.pop("WATCHDOG_PID", None)
    popen = subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    return Proc(popen, notify, run / "tradingd.sock", config, state)


def stop(proc: Proc) -> tuple[int, str]:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
    try:
        code = proc.popen.wait(timeout=30)
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
        proc.notify.close()
    return code, drain(proc)


def drain(proc: Proc) -> str:
    """Everything the process printed; closes the pipe."""
    if proc.popen.stdout is None or proc.popen.stdout.closed:
        return ""
    with proc.popen.stdout:
        return proc.popen.stdout.read()


def test_ready_ping_status_metrics_watchdog_and_clean_stop(daemon: Proc) -> None:
    """The daemon becomes READY, answers tradectl, serves metrics, pings the watchdog, stops."""
    ping = daemon.ctl("ping")
    assert ping.returncode == 0, ping.stderr
    assert "pong" in ping.stdout

    status = daemon.ctl("status", "--json")
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert {a["state"] for a in body["actors"]} == {"running"}
    assert {a["actor"] for a in body["actors"]} >= {
        "kill_switches",
        "data_feed",
        "risk_supervisor",
        "strategy.ml_momentum",
    }
    human = daemon.ctl("status")
    assert human.returncode == 0
    assert "risk_supervisor" in human.stdout

    port = body["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert "tradingd_build_info{" in text
    assert 'tradingd_actor_up{actor="risk_supervisor"} 1.0' in text
    assert "tradingd_event_loop_lag_seconds" in text
    assert FAKE_SECRET not in text

    daemon.wait_notify("WATCHDOG=1")

    daemon.popen.send_signal(signal.SIGTERM)
    daemon.wait_notify("STOPPING=1")
    code = daemon.popen.wait(timeout=10)
    assert code == 0
    out = drain(daemon)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert "daemon_ready" in events
    assert "daemon_stopped" in events
    assert all({"timestamp", "level", "event"} <= line.keys() for line in lines)
    assert FAKE_SECRET not in out
    assert not daemon.socket_path.exists()


def test_metrics_pass_promtool(daemon: Proc) -> None:
    """A real scrape passes `promtool check metrics`."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool missing: `make test` installs Debian's prometheus package")
        pytest.skip("promtool not installed (make test installs it as root)")
    port = json.loads(daemon.ctl("status", "--json").stdout)["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read()
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_sighup_applies_good_config_and_rejects_bad(daemon: Proc) -> None:
    """SIGHUP reloads a good config (RELOADING/READY) and keeps the old one on a bad one."""
    daemon.config.write_text(
        daemon.config.read_text().replace("log_json = true", 'log_json = true\nlog_level = "debug"')
    )
    daemon.popen.send_signal(signal.SIGHUP)
    got = daemon.wait_notify("READY=1")
    assert any("RELOADING=1" in d for d in got)

    daemon.config.write_text(daemon.config.read_text() + "\n[metrics]\nport = 99999999\n")
    daemon.popen.send_signal(signal.SIGHUP)
    daemon.wait_notify("READY=1")
    assert daemon.ctl("ping").returncode == 0

    reload = daemon.ctl("reload", "--json")
    assert reload.returncode == 0
    assert json.loads(reload.stdout)["reloaded"] is False

    code, out = stop(daemon)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    applied = [e for e in events if e["event"] == "config_reloaded"]
    rejected = [e for e in events if e["event"] == "config_reload_rejected"]
    assert len(applied) == 1
    assert len(rejected) >= 1
    assert rejected[0]["key"] in {"metrics.port", str(daemon.config)}


def test_reload_applies_live_keys_and_names_the_ones_that_need_a_restart(daemon: Proc) -> None:
    """Limits, the reconciliation's tolerance and the notifier change at once; a broker key
    is named as needing a restart, never reported as applied."""
    daemon.config.write_text(
        daemon.config.read_text()
        + "\n[limits]\nmax_order_qty = 123\n"
        + "\n[broker]\ntimeout_s = 9.0\n"
    )
    reload = daemon.ctl("reload", "--json")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    body = json.loads(reload.stdout)
    assert body["reloaded"] is True
    assert "limits.max_order_qty" in body["applied"]
    assert body["needs_restart"] == ["broker.timeout_s"]
    code, out = stop(daemon)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    [limits] = [e for e in events if e["event"] == "order_limits_applied"]
    assert limits["limits"]["max_order_qty"] == 123
    assert [e for e in events if e["event"] == "reconcile_tolerance_applied"]
    assert [e for e in events if e["event"] == "notifier_channels_applied"]


def test_operator_switches_via_tradectl(daemon: Proc) -> None:
    """halt/resume, pause-entries and disable/enable answer and show up in status."""
    assert daemon.ctl("halt", "broker", "maintenance").returncode == 0
    body = json.loads(daemon.ctl("status", "--json").stdout)
    assert [s["switch"] for s in body["kill_switches"]] == ["trading_halted"]
    assert body["kill_switches"][0]["reason"] == "broker maintenance"
    assert daemon.ctl("resume").returncode == 0
    assert daemon.ctl("pause-entries").returncode == 0
    assert daemon.ctl("resume-entries").returncode == 0
    assert daemon.ctl("disable", "momentum").returncode == 0
    bad = daemon.ctl("disable", "nosuch")
    assert bad.returncode == 1
    assert "unknown strategy 'nosuch'" in bad.stderr
    body = json.loads(daemon.ctl("status", "--json").stdout)
    assert [s["switch"] for s in body["kill_switches"]] == ["strategy_disabled:momentum"]
    unknown = daemon.ctl("call", "frobnicate")
    assert unknown.returncode == 1
    assert "unknown_command" in unknown.stderr


def test_second_instance_on_same_state_refuses(daemon: Proc, tmp_path: Path) -> None:
    """A second daemon on the same state directory exits non-zero naming the lock holder."""
    second = subprocess.run(
        [sys.executable, "-m", "actors", "run", "--config", str(daemon.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert second.returncode == 1
    assert "another tradingd" in second.stderr
    assert daemon.ctl("ping").returncode == 0


def test_tradectl_says_when_daemon_is_not_running(short_dir: Path) -> None:
    """tradectl exits 3 with a clear message when no daemon listens."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors.system.ctl",
            "--socket",
            str(short_dir / "none.sock"),
            "ping",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3
    assert "tradingd is not running" in result.stderr


def test_bad_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    """An invalid value exits 78 with one line naming the key."""
    config = tmp_path / "bad.toml"
    config.write_text("[metrics]\nport = 'high'\n")
    result = subprocess.run(
        [sys.executable, "-m", "actors", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78
    assert "metrics.port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    """check-config prints the effective config with secrets masked."""
    result = subprocess.run(
        [sys.executable, "-m", "actors", "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "ALPACA_API_KEY": FAKE_SECRET, "SMTP_PASSWORD": FAKE_SECRET + "P"},
    )
    assert result.returncode == 0, result.stderr
    assert FAKE_SECRET not in result.stdout
    assert '"alpaca_api_key": "***"' in result.stdout
