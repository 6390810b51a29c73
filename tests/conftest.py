"""Fixtures shared across the test tree: the state database, a short directory, a running
tradingd process and a capturing SMTP server.

A test module that needs something different defines its own fixture under its own name.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from actors.store import open_store
from daemon.store import Store
from tests.actors.notifier import SmtpSink
from tests.test_daemon_process import Proc, drain, start


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """structlog's configuration restored after each test: a test that runs a command's
    ``main()`` in-process configures logging onto pytest's captured stderr, which is
    closed after that test; a later test in the same worker would log into it."""
    config = structlog.get_config()
    yield
    structlog.configure(**config)


@pytest.fixture
def state_db(tmp_path: Path) -> Path:
    """Where the state database lives, laid out as the daemon lays it out."""
    return tmp_path / "state" / "tradingd.db"


@pytest.fixture
async def store(state_db: Path) -> AsyncIterator[Store]:
    """A fresh state database with the trading schema, closed after the test."""
    s = await open_store(state_db)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory short enough for AF_UNIX paths (tmp_path can exceed 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(short_dir: Path, tmp_path: Path) -> Iterator[Proc]:
    """A real tradingd process that has sent READY=1; killed after the test if still running."""
    proc = start(short_dir, tmp_path)
    try:
        proc.wait_notify("READY=1")
        yield proc
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()
        drain(proc)
        proc.notify.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A local SMTP server that keeps every message it receives."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()
