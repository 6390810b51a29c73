"""The state directory on a tiny tmpfs: a full disk and a read-only one.

The daemon must say clearly what is wrong (a ``StoreError`` naming the database
and the cause), stop trading (exit non-zero, or fail the cycle with that reason),
and leave a database that passes ``PRAGMA integrity_check`` and trades again once
the space is back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

D1, D2 = "2026-11-23", "2026-11-24"
pytestmark = pytest.mark.slow


@dataclass
class Disk:
    """A 2 MiB tmpfs holding the state directory; config and run dir live elsewhere."""

    mount: Path
    work: Path

    @property
    def state(self) -> Path:
        return self.mount / "state"

    @property
    def db(self) -> Path:
        return self.state / "tradingd.db"

    @property
    def config(self) -> Path:
        return self.work / "tradingd.toml"

    @property
    def socket(self) -> Path:
        return self.work / "run" / "tradingd.sock"

    def fill(self, leave_kib: int = 0) -> None:
        """Write a filler file until only ``leave_kib`` KiB are free."""
        stat = os.statvfs(self.mount)
        free = stat.f_bavail * stat.f_frsize
        size = max(0, free - leave_kib * 1024)
        with (self.mount / "filler").open("wb") as fh:
            try:
                fh.write(b"\0" * size)
                fh.flush()
            except OSError:
                pass  # full: that was the point

    def free(self) -> None:
        (self.mount / "filler").unlink(missing_ok=True)

    def integrity(self) -> str:
        with sqlite3.connect(f"{self.db.as_uri()}?mode=ro", uri=True) as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _mount(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def disk() -> Iterator[Disk]:
    work = Path(tempfile.mkdtemp(prefix="td-disk-", dir="/tmp"))
    mount = work / "mnt"
    mount.mkdir()
    done = _mount(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)])
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        why = f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}"
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI runs as root with CAP_SYS_ADMIN)")
        pytest.skip(why)
    d = Disk(mount, work)
    d.config.write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{d.state}"
            run_dir = "{work / "run"}"
            log_json = true
            [metrics]
            port = 0
            [schedule]
            run_on_start = false
            catch_up = false
            """
        )
    )
    try:
        yield d
    finally:
        if _mount(["umount", str(mount)]).returncode != 0:
            _mount(["umount", "-l", str(mount)])
        shutil.rmtree(work, ignore_errors=True)


def once(d: Disk, asof: str) -> tuple[int, list[dict[str, object]], str]:
    """``tradingd run --once --asof``: exit code, JSON events (stdout), stderr."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "run",
            "--once",
            "--force",  # a past date on the real clock (the date check wants it said)
            "--asof",
            asof,
            "--config",
            str(d.config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=d.work,
    )
    events = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    return done.returncode, events, done.stderr


def finished(events: list[dict[str, object]]) -> dict[str, object]:
    return [e for e in events if e["event"] == "cycle_finished"][-1]


def test_full_disk_is_a_clear_error_and_the_database_survives(disk: Disk) -> None:
    """Full at start: exit 1 naming the store; nearly full: the cycle fails "disk is full"."""
    code, events, err = once(disk, D1)
    assert code == 0, err
    assert finished(events)["status"] == "completed"

    disk.fill(0)
    code, events, err = once(disk, D2)
    assert code == 1, err
    assert err.startswith("tradingd: cannot open "), err
    assert str(disk.db) in err
    assert "check the filesystem holding" in err, err
    assert not [e for e in events if e["event"] == "cycle_started"]

    disk.free()
    disk.fill(64)
    code, events, err = once(disk, D2)
    assert code == 1, err
    last = finished(events)
    assert last["status"] == "failed", last
    assert "StoreError" in str(last["reason"]), last
    assert "the disk is full" in str(last["reason"]), last

    disk.free()
    assert disk.integrity() == "ok"
    code, events, err = once(disk, D2)
    assert code == 0, err
    assert finished(events)["status"] == "completed"
    assert disk.integrity() == "ok"


def test_full_disk_on_a_running_daemon_answers_run_cycle_with_the_reason(disk: Disk) -> None:
    """A running daemon on a full disk: run-cycle --wait says the cycle failed, disk full."""
    code, _, err = once(disk, D1)
    assert code == 0, err
    log = (disk.work / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "--config", str(disk.config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=disk.work,
    )
    try:
        deadline = time.monotonic() + 60
        while ctl(disk, "ping").returncode != 0:
            assert proc.poll() is None, "the daemon exited"
            assert time.monotonic() < deadline, "the daemon never answered ping"
            time.sleep(0.1)
        disk.fill(0)
        result = ctl(disk, "run-cycle", "--asof", D2, "--force", "--wait", "--json")
        restarts = {
            a["actor"]: a["restarts"]
            for a in json.loads(ctl(disk, "status", "--json").stdout)["actors"]
        }
        disk.free()
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["status"] == "failed"
        assert "the disk is full" in body["reason"]
        assert restarts["risk_supervisor"] == 0, restarts
    finally:
        disk.free()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        assert disk.integrity() == "ok"


def ctl(d: Disk, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors.system.ctl", "--socket", str(d.socket), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_read_only_state_dir_is_a_clear_error_at_start(disk: Disk) -> None:
    """A read-only state filesystem: exit 1 at start saying so; the database is untouched."""
    code, _, err = once(disk, D1)
    assert code == 0, err
    before = disk.db.read_bytes()
    done = _mount(["mount", "-o", "remount,ro", str(disk.mount)])
    assert done.returncode == 0, done.stderr
    try:
        code, events, err = once(disk, D2)
    finally:
        assert _mount(["mount", "-o", "remount,rw", str(disk.mount)]).returncode == 0
    assert code == 1, err
    assert err.startswith("tradingd: "), err
    assert "read-only" in err.lower(), err
    assert not [e for e in events if e["event"] == "cycle_started"]
    assert disk.db.read_bytes() == before
    assert disk.integrity() == "ok"
