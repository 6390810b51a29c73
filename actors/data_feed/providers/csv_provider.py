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

A problem in a file costs that file's symbols, not the market: the file is
left out and ``problems()`` maps each of its symbols to the ``DataError``
message naming the file, the 1-based line number as in the file (the header is
line 1) and the column; the data feed rejects them as ``bad_file``. A file's
symbols are its stem for a per-symbol file; for a file with a ``symbol``
column, every symbol named in that column (in any row, parseable or not: no
bar of a file that does not parse is trusted), or the stem when none can be
read (an unreadable file). The same (symbol, date) in two files is a problem
of that symbol: all its rows are left out. A symbol in a bad file is left out
even where another file has it. Only a path that does not exist raises
``DataError`` (every symbol would be missing: a market-wide failure). Parsed
files -- and failed ones -- are cached in memory and re-read when their
modification time or size changes.
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

from actors.data_feed.providers.base import clip_range, empty_bars, normalize_bars
from daemon.errors import DataError

REQUIRED = ("date", "open", "high", "low", "close", "volume")
NUMERIC = ("open", "high", "low", "close", "volume")
ADJ_NAMES = ("adj_close", "adjusted_close")


@dataclass(frozen=True, slots=True)
class _Parsed:
    stamp: tuple[int, int]
    frame: pd.DataFrame | None  # the long frame plus a "line" column; None: did not parse
    file: Path
    error: str | None = None  # why it did not parse (the DataError's message)
    symbols: tuple[str, ...] = ()  # the symbols a file that did not parse would have given


class CsvProvider:
    """Bars from a CSV file or a folder of CSV files (see the module docstring)."""

    name = "csv"

    def __init__(self, path: Path | str, *, volatility_symbol: str = "VIX") -> None:
        self.path = Path(path)
        self.volatility_symbol = volatility_symbol
        self._lock = threading.Lock()
        self._files: dict[Path, _Parsed] = {}
        self._combined: (
            tuple[tuple[tuple[Path, tuple[int, int]], ...], pd.DataFrame, dict[str, str]] | None
        ) = None
        self._problems: dict[str, str] = {}

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
        """Every bar of the files that parse (blocking; re-reads only files that changed).

        What could not be read is in ``problems()`` afterwards.
        """
        with self._lock:
            files = self._list_files()
            parsed = [self._parsed(file) for file in files]
            for gone in set(self._files) - set(files):
                del self._files[gone]
            key = tuple((p.file, p.stamp) for p in parsed)
            if self._combined is None or self._combined[0] != key:
                # combining every file costs ~50 ms a read; a cycle reads 3-4 times
                self._combined = (key, *_combine(parsed))
            _, frame, problems = self._combined
            self._problems = problems
            return frame

    def problems(self) -> dict[str, str]:
        """Symbol -> why its bars were left out, for the last ``load``."""
        with self._lock:
            return dict(self._problems)

    def _parsed(self, file: Path) -> _Parsed:
        try:
            stat = file.stat()
        except OSError as exc:
            self._files.pop(file, None)
            return _failed(file, (0, 0), f"{file}: cannot read: {exc.strerror}")
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(file)
        if cached is None or cached.stamp != stamp:
            try:
                cached = _Parsed(stamp, _parse_file(file), file)
            except DataError as exc:
                cached = _failed(file, stamp, str(exc))
            self._files[file] = cached
        return cached

    def _list_files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(p for p in self.path.iterdir() if p.suffix.lower() == ".csv")
        if self.path.is_file():
            return [self.path]
        raise DataError(f"{self.path}: no such CSV file or folder")


def _failed(file: Path, stamp: tuple[int, int], error: str) -> _Parsed:
    return _Parsed(stamp, None, file, error=error, symbols=_file_symbols(file))


def _file_symbols(file: Path) -> tuple[str, ...]:
    """The symbols a file names (best effort, for a file that does not parse)."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as fh:
            records = [r for r in csv.reader(fh) if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return (file.stem,)
    if not records:
        return (file.stem,)
    header = [_header_key(c) for c in records[0]]
    if "symbol" not in header:
        return (file.stem,)
    i = header.index("symbol")
    named = dict.fromkeys(r[i].strip() for r in records[1:] if len(r) > i and r[i].strip())
    return tuple(named) or (file.stem,)


def _combine(parsed: list[_Parsed]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The bars of the files that parsed, and symbol -> problem for the symbols left out."""
    problems: dict[str, str] = {}
    for bad in parsed:
        if bad.error is not None:
            for symbol in bad.symbols:
                problems.setdefault(symbol, bad.error)
    frames = [p.frame.assign(file=str(p.file)) for p in parsed if p.frame is not None]
    if not frames:
        return empty_bars(), problems
    frame = pd.concat(frames, ignore_index=True)
    dup = frame.duplicated(subset=["symbol", "date"], keep="first")
    for _, row in frame.loc[dup].drop_duplicates(subset=["symbol"]).iterrows():
        same = (frame["symbol"] == row["symbol"]) & (frame["date"] == row["date"])
        first = frame.loc[same].iloc[0]
        problems.setdefault(
            str(row["symbol"]),
            f"{row['file']}: line {row['line']}: column date: duplicate bar for"
            f" {row['symbol']} on {row['date'].date()} (first at {first['file']}"
            f" line {first['line']})",
        )
    frame = frame.loc[~frame["symbol"].isin(list(problems))]
    return normalize_bars(frame), problems


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
