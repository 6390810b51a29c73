"""A year of sessions in one process: memory, file descriptors, tasks and threads stay flat.

The daemon's own graph (live DataFeed over the synthetic provider, the SimBroker
priced through ``ProviderPriceSource``) on a SimClock runs 250 consecutive
sessions of a 12-symbol universe. After a 30-session warm-up, RSS may grow by
less than 10 % and the counts of open file descriptors, asyncio tasks and
threads by no more than a small constant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.messages import CycleStatus
from actors.system.backtest import apply_overrides
from actors.system.config import load_settings
from tests.reliability.harness import CAL, running_graph, sim_broker

SYMBOLS = "AAPL,MSFT,XOM,JPM,KO,PFE,NVDA,CAT,WMT,BAC,GS,COST"
SESSIONS = CAL.sessions_between(dt.date(2025, 6, 2), dt.date(2026, 6, 30))[:250]
WARM_UP = 30
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Sample:
    rss_kib: int
    fds: int
    tasks: int
    threads: int

    @classmethod
    def now(cls) -> Sample:
        gc.collect()
        rss = next(
            int(line.split()[1])
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        return cls(
            rss_kib=rss,
            fds=len(os.listdir("/proc/self/fd")),
            tasks=len(asyncio.all_tasks()),
            threads=threading.active_count(),
        )


@pytest.mark.timeout(240)
async def test_250_sessions_keep_memory_fds_tasks_and_threads_flat(tmp_path: Path) -> None:
    """250 sessions: RSS +<10 % after warm-up; fds, tasks, threads +<=3."""
    assert len(SESSIONS) == 250
    settings = apply_overrides(load_settings(None, {}), universe=SYMBOLS)
    provider = SyntheticProvider(settings.data.synthetic)
    statuses: dict[str, int] = {}
    started = time.monotonic()
    async with running_graph(
        settings, tmp_path / "soak.db", provider, sim_broker(settings), start=SESSIONS[0]
    ) as g:
        warm: Sample | None = None
        for n, day in enumerate(SESSIONS, start=1):
            done = await g.run_day(day)
            statuses[str(done.status)] = statuses.get(str(done.status), 0) + 1
            if n == WARM_UP:
                warm = Sample.now()
        end = Sample.now()
        assert g.all_running(), g.sup.states()
        orders = await g.rows("SELECT COUNT(*) AS n FROM order_intents")
    elapsed = time.monotonic() - started
    assert warm is not None
    growth = (end.rss_kib - warm.rss_kib) / warm.rss_kib
    print(
        f"soak: {len(SESSIONS)} sessions in {elapsed:.0f} s, {orders[0]['n']} intents, "
        f"statuses {statuses}; after warm-up {warm}, at the end {end}, RSS {growth:+.1%}"
    )
    assert statuses.get(str(CycleStatus.COMPLETED)) == len(SESSIONS), statuses
    assert orders[0]["n"] > 50
    assert growth < 0.10, (warm, end)
    assert end.fds <= warm.fds + 3, (warm, end)
    assert end.tasks <= warm.tasks + 3, (warm, end)
    assert end.threads <= warm.threads + 3, (warm, end)
