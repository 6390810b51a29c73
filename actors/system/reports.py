"""``tradingd report --out DIR``: the digest of past sessions, from the store, as files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anyio

from actors.notifier.digest import render_digest
from actors.notifier.digest_data import digest_data
from actors.store import open_store
from actors.store.cycles import CycleJournal
from actors.system.config import Settings
from daemon.errors import Refusal


async def write_reports(
    settings: Settings, out: Path, start: dt.date | None, end: dt.date | None
) -> list[Path]:
    """Write ``digest-<date>.html`` and ``equity-<date>.png`` per finished session in range.

    Without a range, the last finished session. Reads a read-only view of the
    state database, so it works while the daemon runs.
    """
    db = settings.daemon.db_path
    if not await anyio.Path(db).exists():
        raise Refusal(f"no state database at {db}")
    store = await open_store(db, lock=False, readonly=True)
    try:
        journal = CycleJournal(store)
        last_per_day = await journal.last_finished_per_day()
        days = sorted(last_per_day)
        if start is not None or end is not None:
            lo, hi = start or dt.date.min, end or dt.date.max
            days = [d for d in days if lo <= d <= hi]
        elif days:
            days = days[-1:]
        if not days:
            raise Refusal("no finished cycle in that range")
        await anyio.Path(out).mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for day in days:
            record = await journal.get(last_per_day[day])
            assert record is not None
            data = await digest_data(store, record)
            message = render_digest(data)
            html = (message.html or "").replace('src="cid:equity"', f'src="equity-{day}.png"')
            html_path = out / f"digest-{day}.html"
            await anyio.Path(html_path).write_text(html)
            written.append(html_path)
            if data.equity_png is not None:
                png_path = out / f"equity-{day}.png"
                await anyio.Path(png_path).write_bytes(data.equity_png)
                written.append(png_path)
        return written
    finally:
        await store.close()
