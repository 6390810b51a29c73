"""`tradingd replay DATE`: the replay of a live session matches it, and tampering shows.

Each live day runs on a fake clock (``TRADINGD_FAKE_NOW``) during its own session,
as the daemon would: orders fill at that session's open whatever today's date is.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path


def tradingd(workdir: Path, *args: str, now: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if now is not None:
        env["TRADINGD_FAKE_NOW"] = now
    return subprocess.run(
        [sys.executable, "-m", "actors", *args, "--config", str(workdir / "tradingd.toml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=workdir,
        env=env,
    )


def test_replay_matches_live_and_reports_a_tampered_order(tmp_path: Path) -> None:
    """The second of two live days replays identically; a first-day order resized shows."""
    (tmp_path / "tradingd.toml").write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{tmp_path / "state"}"
            run_dir = "{tmp_path / "run"}"
            [metrics]
            port = 0
            """
        )
    )
    for day in ("2026-11-20", "2026-11-23"):
        run = tradingd(tmp_path, "run", "--once", "--asof", day, now=f"{day}T09:47:00-05:00")
        assert run.returncode == 0, run.stderr[-2000:]

    same = tradingd(tmp_path, "replay", "2026-11-23", "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    result = json.loads(same.stdout)
    assert result["matches"] is True
    assert result["orders"] == {"missing": [], "extra": [], "different_size": []}

    # The first day of a fresh account trades; the second may be full (heat, cash).
    with sqlite3.connect(tmp_path / "state" / "tradingd.db") as db:
        intent_id, qty = db.execute(
            "SELECT intent_id, target_qty FROM order_intents WHERE asof_date = '2026-11-20'"
            " ORDER BY intent_id LIMIT 1"
        ).fetchone()
        db.execute(
            "UPDATE order_intents SET target_qty = ? WHERE intent_id = ?", (qty + 7, intent_id)
        )
    differs = tradingd(tmp_path, "replay", "2026-11-20")
    assert differs.returncode == 1
    assert "DIFFERS" in differs.stdout
    assert "order different size" in differs.stdout
    assert f"live {int(qty) + 7}, replay {int(qty)}" in differs.stdout

    none = tradingd(tmp_path, "replay", "2026-11-24")
    assert none.returncode == 1
    assert "no live cycle was recorded for 2026-11-24" in none.stderr
