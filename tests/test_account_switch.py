"""The state database holds one account's book: the demo's cannot be reconciled against Alpaca.

An operator who ran the demo (`make run`, the simulated broker) and then points the
same configuration at an Alpaca paper account must not have the daemon reconcile the
simulated book against the real account (every position a mismatch, or, adopted, the
two mixed). The real CLI: the second start exits 78 with one line that names the key
and the command that starts from a fresh state; after it, the daemon starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.alpaca_daemon import priced_fake

ASOF = "2026-11-23"
AT_0947 = "2026-11-23T09:47:00-05:00"


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="td-acct-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _config(path: Path, broker: str) -> None:
    (path / "tradingd.toml").write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{path / "state"}"
            run_dir = "{path / "run"}"
            log_json = true
            [metrics]
            port = 0
            [schedule]
            run_on_start = false
            catch_up = false
            [data.synthetic]
            corporate_actions_per_year = 0.0
            """
        )
        + broker
    )


def _once(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "actors", "run", "--once", "--asof", ASOF,
            "--config", str(path / "tradingd.toml"),
        ],
        capture_output=True, text=True, timeout=240, check=False, cwd=path,
        env={**os.environ, "TRADINGD_FAKE_NOW": AT_0947, **env},
    )  # fmt: skip


def test_the_demos_book_is_never_reconciled_against_an_alpaca_account(workdir: Path) -> None:
    _config(workdir, "")
    demo = _once(workdir, {})
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr
    with priced_fake(ASOF, fill_mode="immediate") as fake:
        alpaca = f'[broker]\nkind = "alpaca"\nbase_url = "{fake.url}"\n'
        _config(workdir, alpaca)
        keys = {"ALPACA_API_KEY": fake.api_key, "ALPACA_SECRET_KEY": fake.secret_key}
        refused = _once(workdir, keys)
        assert refused.returncode == 78, refused.stdout[-2000:] + refused.stderr
        said = (refused.stderr + refused.stdout).strip().splitlines()
        line = next(x for x in said if "broker.kind" in x)
        assert sum("broker.kind" in x for x in said) <= 2, said  # the line (and its JSON log)
        assert "holds the book of the sim account" in line
        assert "mv " in line
        assert "Traceback" not in refused.stderr
        assert fake.order_posts == 0  # nothing reached the account
        db = workdir / "state" / "tradingd.db"
        db.rename(db.with_name("tradingd.db.sim"))
        for extra in ("tradingd.db-wal", "tradingd.db-shm"):
            (workdir / "state" / extra).unlink(missing_ok=True)
        fresh = _once(workdir, keys)
        assert fresh.returncode == 0, fresh.stdout[-2000:] + fresh.stderr
