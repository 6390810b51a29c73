"""Daily bars from CSV files: one file, or a folder of ``*.csv``.

Layout: either files with a ``symbol`` column (any number of symbols per
file), or per-symbol files without one, named after the symbol (``AAPL.csv``,
``BRK.B.csv``). Headers are case-insensitive, spaces count as underscores, and
the columns are ``date, open, high, low, close, volume`` (+ ``symbol``).
Dates are ISO 8601 (``2024-01-02``); a time part is dropped.

Adjustment: when an ``adj_close`` (or ``adjusted_close``) column is present,
open/high/low/close are all multiplied by ``adj_close / close`` so the bar is
split- and dividend-adjusted like the remote providers' bars; volume is left
as traded (the ratio mixes splits with dividends, so it cannot adjust volume).

The volatility index is read from the rows of the volatility symbol (``VIX``
rows, or a ``VIX.csv`` file); those rows are never returned as bars.

Any problem raises ``DataError`` naming the file, the 1-based line number as
in the file (the header is line 1) and the column. Parsed files are cached in
memory and re-read when their modification time or size changes.
"""

from __future__ import annotations

import csv
import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np
import pandas as pd

from actors.data_feed.providers import clip_range, empty_bars, normalize_bars
from daemon.errors import DataError

REQUIRED = ("date", "open", "high", "low", "close", "volume")
NUMERIC = ("open", "high", "low", "close", "volume")
ADJ_NAMES = ("adj_close", "adjusted_close")


@dataclass(frozen=True, slots=True)
class _Parsed:
    stamp: tuple[int, int]
    frame: pd.DataFrame  # the long frame plus a "line" column
    file: Path


class CsvProvider:
    """Bars from a CSV file or a folder of CSV files (see the module docstring)."""

    name = "csv"

    def __init__(self, path: Path | str, *, volatility_symbol: str = "VIX") -> None:
        self.path = Path(path)
        self.volatility_symbol = volatility_symbol
        self._lock = threading.Lock()
        self._files: dict[Path, _Parsed] = {}

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``symbols`` (the volatility symbol excluded) in ``[start, end]``."""
        wanted = {s for s in symbols if s != self.volatility_symbol}
        frame = await anyio.to_thread.run_sync(self.load)
        frame = frame.loc[frame["symbol"].isin(wanted)]
        return clip_range(frame, start, end)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        """The volatility symbol's closes in ``[start, end]``, or None when the files have none."""
        frame = await anyio.to_thread.run_sync(self.load)
        vix = frame.loc[frame["symbol"] == self.volatility_symbol]
        if vix.empty:
            return None
        vix = clip_range(vix, start, end)
        return pd.Series(
            vix["close"].to_numpy(dtype=np.float64),
            index=pd.DatetimeIndex(vix["date"]),
            name=self.volatility_symbol,
        )

    def load(self) -> pd.DataFrame:
        """Every bar in the files (blocking; re-reads only files that changed)."""
        with self._lock:
            files = self._list_files()
            parsed: list[_Parsed] = []
            for file in files:
                try:
                    stat = file.stat()
                except OSError as exc:
                    raise DataError(f"{file}: cannot read: {exc.strerror}") from exc
                stamp = (stat.st_mtime_ns, stat.st_size)
                cached = self._files.get(file)
                if cached is None or cached.stamp != stamp:
                    cached = _Parsed(stamp, _parse_file(file), file)
                    self._files[file] = cached
                parsed.append(cached)
            for gone in set(self._files) - set(files):
                del self._files[gone]
            return _combine(parsed)

    def _list_files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(p for p in self.path.iterdir() if p.suffix.lower() == ".csv")
        if self.path.is_file():
            return [self.path]
        raise DataError(f"{self.path}: no such CSV file or folder")


def _combine(parsed: list[_Parsed]) -> pd.DataFrame:
    if not parsed:
        return empty_bars()
    frames = [p.frame.assign(file=str(p.file)) for p in parsed]
    frame = pd.concat(frames, ignore_index=True)
    dup = frame.duplicated(subset=["symbol", "date"], keep="first")
    if dup.any():
        row = frame.loc[dup].iloc[0]
        first = frame.loc[(frame["symbol"] == row["symbol"]) & (frame["date"] == row["date"])].iloc[
            0
        ]
        raise DataError(
            f"{row['file']}: line {row['line']}: column date: duplicate bar for"
            f" {row['symbol']} on {row['date'].date()} (first at {first['file']}"
            f" line {first['line']})"
        )
    return normalize_bars(frame)


def _header_key(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def _parse_file(file: Path) -> pd.DataFrame:
    try:
        with file.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header: list[str] | None = None
            header_line = 1
            rows: list[list[str]] = []
            lines: list[int] = []
            for record in reader:
                if not record or all(not cell.strip() for cell in record):
                    continue
                if header is None:
                    header = [_header_key(c) for c in record]
                    header_line = reader.line_num
                    continue
                rows.append(record)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{file}: cannot read: {exc}") from exc
    if header is None:
        raise DataError(f"{file}: line 1: the file is empty (no header)")
    for column in REQUIRED:
        if column not in header:
            raise DataError(
                f"{file}: line {header_line}: column {column}: missing"
                f" (header has {', '.join(header)})"
            )
    col = {name: i for i, name in reversed(list(enumerate(header)))}
    width = len(header)
    for record, line in zip(rows, lines, strict=True):
        if len(record) < width:
            missing = header[len(record)]
            raise DataError(f"{file}: line {line}: column {missing}: missing value")
    line_arr = np.asarray(lines, dtype=np.int64)

    def cells(name: str) -> pd.Series:
        return pd.Series([r[col[name]].strip() for r in rows], dtype=object)

    dates = pd.to_datetime(cells("date"), format="ISO8601", errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{file}: line {line_arr[i]}: column date: cannot parse {rows[i][col['date']]!r}"
        )
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_convert("America/New_York").dt.tz_localize(None)
    out = pd.DataFrame({"date": dates.dt.normalize(), "line": line_arr})
    adj_name = next((n for n in ADJ_NAMES if n in col), None)
    for name in (*NUMERIC, *([adj_name] if adj_name else [])):
        raw = cells(name)
        values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values.to_numpy()))
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{file}: line {line_arr[i]}: column {name}: not a number: {raw.iloc[i]!r}"
            )
        out[name] = values.to_numpy()
    if "symbol" in col:
        out["symbol"] = cells("symbol").to_numpy()
        blank = np.flatnonzero(out["symbol"].to_numpy() == "")
        if len(blank):
            raise DataError(f"{file}: line {line_arr[int(blank[0])]}: column symbol: empty")
    else:
        out["symbol"] = file.stem
    if adj_name is not None:
        ratio = np.where(out["close"] != 0, out[adj_name] / out["close"], 1.0)
        for name in ("open", "high", "low", "close"):
            out[name] = out[name] * ratio
        out = out.drop(columns=[adj_name])
    dup = out.duplicated(subset=["symbol", "date"], keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(
            f"{file}: line {line_arr[i]}: column date: duplicate bar for"
            f" {out['symbol'].iloc[i]} on {out['date'].iloc[i].date()}"
        )
    return out
