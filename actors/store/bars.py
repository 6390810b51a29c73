"""``BarCache``: the market-data cache in the ``bars`` table (all SQL for bars lives here).

Rows are keyed by (provider, symbol, date) with ``date`` as ISO ``YYYY-MM-DD``;
writing a bar that is already there replaces it (a provider's correction wins).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from daemon.store.core import Store

# The f-strings below only ever insert "?,?,..." placeholders (S608 is a false alarm there).
# Stay far below SQLite's host-parameter limit (999 on old builds).
_CHUNK = 500
_FIELDS = ("open", "high", "low", "close", "volume")


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class BarCache:
    """Read and write cached daily bars per provider."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def put(self, provider: str, frame: pd.DataFrame) -> int:
        """Upsert the rows of a long bar frame; returns how many rows were written."""
        if frame.empty:
            return 0
        dates = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
        values = frame.loc[:, list(_FIELDS)].to_numpy(dtype=np.float64)
        rows = [
            (provider, str(symbol), day, *map(float, vals))
            for symbol, day, vals in zip(frame["symbol"], dates, values, strict=True)
        ]
        await self.store.executemany(
            "INSERT OR REPLACE INTO bars (provider, symbol, date, open, high, low, close, volume)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    async def load(
        self, provider: str, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> pd.DataFrame:
        """The cached bars of ``symbols`` in ``[start, end]`` as a long frame (symbol, date)."""
        records: list[tuple[object, ...]] = []
        wanted = list(dict.fromkeys(symbols))
        for chunk in _chunks(wanted):
            rows = await self.store.fetchall(
                "SELECT symbol, date, open, high, low, close, volume FROM bars"  # noqa: S608
                f" WHERE provider = ? AND symbol IN ({_marks(len(chunk))})"
                " AND date >= ? AND date <= ? ORDER BY symbol, date",
                (provider, *chunk, start.isoformat(), end.isoformat()),
            )
            records.extend(tuple(r) for r in rows)
        frame = pd.DataFrame.from_records(records, columns=["symbol", "date", *_FIELDS])
        frame["symbol"] = frame["symbol"].astype(str)
        frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d").astype("datetime64[ns]")
        for column in _FIELDS:
            frame[column] = frame[column].astype(np.float64)
        return frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)

    async def coverage(
        self, provider: str, symbols: Sequence[str]
    ) -> dict[str, tuple[dt.date, dt.date]]:
        """(first, last) cached date per symbol; symbols with nothing cached are absent."""
        out: dict[str, tuple[dt.date, dt.date]] = {}
        for chunk in _chunks(list(dict.fromkeys(symbols))):
            rows = await self.store.fetchall(
                "SELECT symbol, MIN(date), MAX(date) FROM bars"  # noqa: S608
                f" WHERE provider = ? AND symbol IN ({_marks(len(chunk))}) GROUP BY symbol",
                (provider, *chunk),
            )
            for symbol, first, last in rows:
                out[str(symbol)] = (dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        return out

    async def clear(self, provider: str, symbols: Sequence[str] | None = None) -> None:
        """Forget a provider's bars (all, or only those of ``symbols``)."""
        if symbols is None:
            await self.store.execute("DELETE FROM bars WHERE provider = ?", (provider,))
            return
        for chunk in _chunks(list(dict.fromkeys(symbols))):
            await self.store.execute(
                f"DELETE FROM bars WHERE provider = ? AND symbol IN ({_marks(len(chunk))})",  # noqa: S608
                (provider, *chunk),
            )
