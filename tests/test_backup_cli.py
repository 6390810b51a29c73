"""`tradectl backup` against a real daemon; `tradingd restore` refused while it runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.test_daemon_process import Proc, stop


def restore(proc: Proc, backup: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors", "restore", str(backup), "--config", str(proc.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def take_backup(proc: Proc) -> dict[str, object]:
    result = proc.ctl("backup", "--json")
    assert result.returncode == 0, result.stderr
    body: dict[str, object] = json.loads(result.stdout)
    return body


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


def test_tradectl_backup_returns_a_file_that_opens(daemon: Proc) -> None:
    """`tradectl backup` writes a verified copy under <state_dir>/backups and names it."""
    body = take_backup(daemon)
    path = Path(str(body["path"]))
    assert path.parent == daemon.state / "backups"
    assert path.name.startswith("tradingd-")
    assert body["bytes"] == path.stat().st_size
    assert {"cycles", "kill_switches", "order_intents"} <= tables(path)
    assert daemon.ctl("ping").returncode == 0


def test_restore_is_refused_while_the_daemon_runs(daemon: Proc) -> None:
    """`tradingd restore` exits 1 naming the running daemon, then works once it has stopped."""
    backup = Path(str(take_backup(daemon)["path"]))
    db = daemon.state / "tradingd.db"

    refused = restore(daemon, backup)
    assert refused.returncode == 1
    assert f"(pid {daemon.popen.pid}) is running" in refused.stderr
    assert "stop it first" in refused.stderr
    assert not list(daemon.state.glob("tradingd.db.before-restore-*"))
    assert daemon.ctl("ping").returncode == 0

    code, _ = stop(daemon)
    assert code == 0
    done = restore(daemon, backup)
    assert done.returncode == 0, done.stderr
    assert f"restored {backup} to {db}" in done.stdout
    previous = [
        p
        for p in daemon.state.glob("tradingd.db.before-restore-*")
        if not p.name.endswith(("-wal", "-shm"))
    ]
    assert len(previous) == 1
    assert f"the previous database is kept at {previous[0]}" in done.stdout
    assert "cycles" in tables(previous[0])
    assert {"cycles", "kill_switches"} <= tables(db)
