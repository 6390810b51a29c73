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

Corporate actions: optional files beside the bars (in the folder, or in the
folder of the single file; names matched case-insensitively, and never read as
bars), with the same header rules:

- ``splits.csv``: ``symbol, ex_date, new_rate, old_rate`` -- new shares per
  ``old_rate`` old ones: a 2:1 split is ``2,1``, a 1:10 reverse split ``1,10``
  (a row with ``new_rate < old_rate`` is a reverse split; ``105,100`` is a 5 %
  stock dividend, read as a forward split of ratio 1.05);
- ``dividends.csv``: ``symbol, ex_date, cash[, pay_date]`` -- cash per share;
  an empty or absent ``pay_date`` means none (credited on the ex date);
- ``symbol_changes.csv``: ``old_symbol, new_symbol, date`` -- a rename, effective
  on ``date``. It changes no bars: each file's bars stay under the symbols it names.

When any of the three files exists, the bars in the CSV files are taken as *raw*
(as traded: an ``adj_close`` column is then ignored) and ``fetch`` returns them
adjusted as of its ``end`` for the splits (``adjust_history``: prices before an
ex date on or before ``end`` divided by the ratio, volume multiplied by it);
dividends and renames never touch prices. ``corporate_actions`` reports the
actions on the asked symbols (a rename: on its old symbol) whose ex date is in
the asked range, by ex date. A bad row (a date that
does not parse, a rate or cash that is not a positive number, a pay date before
the ex date, a duplicate of an earlier row) is skipped; no bar is lost: the
bars are still served, and ``problems()`` maps the row's symbol to the message
naming the file, line and column (so the data feed rejects that symbol as
``bad_file`` until the row is fixed: its adjustment is not known). A file
whose header lacks a column is skipped whole, reported for every symbol its
symbol column names. A problem that names no symbol (an empty symbol cell, an
unreadable file) is logged as ``csv_corporate_action_skipped`` when the file is
read (they are re-read, like the bar files, when they change).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np
import pandas as pd
import structlog

from actors.data_feed.providers.base import clip_range, empty_bars, normalize_bars
from actors.market.corporate_actions import (
    ActionKind,
    BadCorporateAction,
    CorporateAction,
    adjust_history,
)
from daemon.errors import DataError

log = structlog.get_logger(__name__)

REQUIRED = ("date", "open", "high", "low", "close", "volume")
NUMERIC = ("open", "high", "low", "close", "volume")
ADJ_NAMES = ("adj_close", "adjusted_close")
SPLITS_FILE = "splits.csv"
DIVIDENDS_FILE = "dividends.csv"
SYMBOL_CHANGES_FILE = "symbol_changes.csv"
ACTION_FILES = (SPLITS_FILE, DIVIDENDS_FILE, SYMBOL_CHANGES_FILE)
SOURCE = "csv"

Stamp = tuple[int, int]


@dataclass(frozen=True, slots=True)
class _Parsed:
    stamp: Stamp
    frame: pd.DataFrame | None  # the long frame plus a "line" column; None: did not parse
    file: Path
    error: str | None = None  # why it did not parse (the DataError's message)
    symbols: tuple[str, ...] = ()  # the symbols a file that did not parse would have given
    raw: bool = False  # parsed as raw bars (an adj_close column ignored)


@dataclass(frozen=True, slots=True)
class _ParsedActions:
    stamp: Stamp
    actions: tuple[CorporateAction, ...]
    problems: tuple[tuple[str, str], ...] = ()  # (symbol, what is wrong) in file order


class CsvProvider:
    """Bars from a CSV file or a folder of CSV files (see the module docstring)."""

    name = "csv"

    def __init__(self, path: Path | str, *, volatility_symbol: str = "VIX") -> None:
        self.path = Path(path)
        self.volatility_symbol = volatility_symbol
        self._lock = threading.Lock()
        self._files: dict[Path, _Parsed] = {}
        self._action_files: dict[Path, _ParsedActions] = {}
        self._combined: (
            tuple[tuple[bool, tuple[tuple[Path, Stamp], ...]], pd.DataFrame, dict[str, str]] | None
        ) = None
        self._problems: dict[str, str] = {}

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``symbols`` (the volatility symbol excluded) in ``[start, end]``.

        With actions files beside the bars, adjusted as of ``end``.
        """
        wanted = {s for s in symbols if s != self.volatility_symbol}
        return await anyio.to_thread.run_sync(self._fetch, wanted, start, end)

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """The actions files' actions on ``symbols`` with ex date in ``[start, end]``, by date."""
        _, actions = await anyio.to_thread.run_sync(self._load)
        wanted = set(symbols)
        return [a for a in actions if a.symbol in wanted and start <= a.ex_date <= end]

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
        """Every bar of the files that parse, as in the files (blocking; re-reads changes).

        What could not be read is in ``problems()`` afterwards.
        """
        return self._load()[0]

    def _fetch(self, wanted: set[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        frame, actions = self._load()
        frame = clip_range(frame.loc[frame["symbol"].isin(wanted)], start, end)
        return adjust_history(frame, actions, end)

    def _load(self) -> tuple[pd.DataFrame, tuple[CorporateAction, ...]]:
        """The bars as in the files and the actions files' actions (blocking)."""
        with self._lock:
            files = self._list_files()
            action_paths = self._action_paths()
            raw = bool(action_paths)
            parsed = [self._parsed(file, raw) for file in files]
            for gone in set(self._files) - set(files):
                del self._files[gone]
            key = (raw, tuple((p.file, p.stamp) for p in parsed))
            if self._combined is None or self._combined[0] != key:
                # combining every file costs ~50 ms a read; a cycle reads 3-4 times
                self._combined = (key, *_combine(parsed))
            _, frame, problems = self._combined
            actions, action_problems = self._actions(action_paths)
            merged = dict(problems)
            for symbol, why in action_problems:
                merged.setdefault(symbol, why)
            self._problems = merged
            return frame, actions

    def problems(self) -> dict[str, str]:
        """Symbol -> why its bars were left out, for the last ``load``."""
        with self._lock:
            return dict(self._problems)

    def _parsed(self, file: Path, raw: bool) -> _Parsed:
        try:
            stat = file.stat()
        except OSError as exc:
            self._files.pop(file, None)
            return _failed(file, (0, 0), f"{file}: cannot read: {exc.strerror}", raw)
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(file)
        if cached is None or cached.stamp != stamp or cached.raw != raw:
            try:
                cached = _Parsed(stamp, _parse_file(file, unadjusted=raw), file, raw=raw)
            except DataError as exc:
                cached = _failed(file, stamp, str(exc), raw)
            self._files[file] = cached
        return cached

    def _actions(
        self, paths: list[Path]
    ) -> tuple[tuple[CorporateAction, ...], list[tuple[str, str]]]:
        """Every action the actions files give, by ex date, and (symbol, problem) pairs."""
        actions: list[CorporateAction] = []
        problems: list[tuple[str, str]] = []
        for path in paths:
            try:
                stat = path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                stamp = (0, 0)
            cached = self._action_files.get(path)
            if cached is None or cached.stamp != stamp:
                cached = _parse_actions(path, stamp)
                self._action_files[path] = cached
            actions.extend(cached.actions)
            problems.extend(cached.problems)
        for gone in set(self._action_files) - set(paths):
            del self._action_files[gone]
        actions.sort(key=lambda a: (a.ex_date, a.symbol, a.kind))
        return tuple(actions), problems

    def _action_paths(self) -> list[Path]:
        """The actions files beside the bars (names matched case-insensitively), by kind."""
        folder = self.path if self.path.is_dir() else self.path.parent
        try:
            found = {p.name.lower(): p for p in folder.iterdir() if p.name.lower() in ACTION_FILES}
        except OSError:
            return []
        return [found[name] for name in ACTION_FILES if name in found and found[name].is_file()]

    def _list_files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(
                p
                for p in self.path.iterdir()
                if p.suffix.lower() == ".csv" and p.name.lower() not in ACTION_FILES
            )
        if self.path.is_file():
            return [self.path]
        raise DataError(f"{self.path}: no such CSV file or folder")


def _failed(file: Path, stamp: Stamp, error: str, raw: bool = False) -> _Parsed:
    return _Parsed(stamp, None, file, error=error, symbols=_file_symbols(file), raw=raw)


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


def _read_records(file: Path) -> tuple[list[str] | None, int, list[list[str]], list[int]]:
    """The header (normalised keys), its line, and the non-blank rows with their lines."""
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
    return header, header_line, rows, lines


def _parse_file(file: Path, *, unadjusted: bool = False) -> pd.DataFrame:
    """One bar file as a long frame plus ``line``; ``unadjusted``: ``adj_close`` is ignored."""
    header, header_line, rows, lines = _read_records(file)
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
    adj_name = None if unadjusted else next((n for n in ADJ_NAMES if n in col), None)
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


# --- the corporate actions files ------------------------------------------------------------

Cell = Callable[[str], str]
"""A row's stripped value of a column (``""`` for an optional column the row lacks)."""


class _RowError(Exception):
    """A bad cell in a row of an actions file: which column, and what is wrong."""

    def __init__(self, column: str, what: str) -> None:
        super().__init__(f"column {column}: {what}")
        self.column = column
        self.what = what


@dataclass(frozen=True, slots=True)
class _ActionSpec:
    """One actions file: its columns, the ones naming the symbol and the date, a row's action."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    symbol_column: str
    date_column: str
    build: Callable[[Cell], CorporateAction]


def _symbol(cell: Cell, column: str) -> str:
    value = cell(column)
    if not value:
        raise _RowError(column, "empty")
    return value


def _date(cell: Cell, column: str) -> dt.date:
    text = cell(column)
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise _RowError(column, f"cannot parse {text!r} as a date (YYYY-MM-DD)") from None


def _positive(cell: Cell, column: str) -> float:
    text = cell(column)
    try:
        value = float(text)
    except ValueError:
        raise _RowError(column, f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise _RowError(column, f"must be a positive number, got {text!r}")
    return value


def _action(column: str, make: Callable[[], CorporateAction]) -> CorporateAction:
    """``make()``, or a ``_RowError`` on ``column`` when its terms cannot be applied."""
    try:
        return make()
    except BadCorporateAction as exc:
        raise _RowError(column, str(exc)) from None


def _split_row(cell: Cell) -> CorporateAction:
    symbol, ex_date = _symbol(cell, "symbol"), _date(cell, "ex_date")
    new, old = _positive(cell, "new_rate"), _positive(cell, "old_rate")
    if new == old:
        raise _RowError("new_rate", f"equals old_rate ({cell('new_rate')!r}): not a split")
    kind = ActionKind.FORWARD_SPLIT if new > old else ActionKind.REVERSE_SPLIT
    return _action("new_rate", lambda: CorporateAction(kind, symbol, ex_date, SOURCE, new / old))


def _dividend_row(cell: Cell) -> CorporateAction:
    symbol, ex_date = _symbol(cell, "symbol"), _date(cell, "ex_date")
    cash = _positive(cell, "cash")
    pay_date = _date(cell, "pay_date") if cell("pay_date") else None
    if pay_date is not None and pay_date < ex_date:
        raise _RowError("pay_date", f"{pay_date} is before the ex date {ex_date}")
    return _action(
        "cash",
        lambda: CorporateAction(
            ActionKind.CASH_DIVIDEND,
            symbol,
            ex_date,
            SOURCE,
            cash_per_share=cash,
            pay_date=pay_date,
        ),
    )


def _rename_row(cell: Cell) -> CorporateAction:
    old, new = _symbol(cell, "old_symbol"), _symbol(cell, "new_symbol")
    date = _date(cell, "date")
    if new == old:
        raise _RowError("new_symbol", f"the same as old_symbol ({old!r})")
    return _action(
        "new_symbol",
        lambda: CorporateAction(ActionKind.RENAME, old, date, SOURCE, new_symbol=new),
    )


_SPECS = {
    SPLITS_FILE: _ActionSpec(
        ("symbol", "ex_date", "new_rate", "old_rate"), (), "symbol", "ex_date", _split_row
    ),
    DIVIDENDS_FILE: _ActionSpec(
        ("symbol", "ex_date", "cash"), ("pay_date",), "symbol", "ex_date", _dividend_row
    ),
    SYMBOL_CHANGES_FILE: _ActionSpec(
        ("old_symbol", "new_symbol", "date"), (), "old_symbol", "date", _rename_row
    ),
}


def _row_cells(col: dict[str, int], record: list[str], required: tuple[str, ...]) -> Cell:
    def cell(name: str) -> str:
        i = col.get(name)
        if i is None:
            return ""  # an optional column the file does not have
        if i >= len(record):
            if name in required:
                raise _RowError(name, "missing value")
            return ""
        return record[i].strip()

    return cell


def _row_symbol(cell: Cell, column: str) -> str:
    try:
        return cell(column)
    except _RowError:
        return ""


def _parse_actions(path: Path, stamp: Stamp) -> _ParsedActions:
    """One actions file: its good rows' actions and, per bad row, (symbol, problem)."""
    spec = _SPECS[path.name.lower()]
    try:
        header, header_line, rows, lines = _read_records(path)
    except DataError as exc:
        return _actions_failed(stamp, str(exc), ())
    if header is None:
        return _ParsedActions(stamp, ())  # an empty file: no actions
    missing = [c for c in spec.required if c not in header]
    if missing:
        error = (
            f"{path}: line {header_line}: column {missing[0]}: missing (header has"
            f" {', '.join(header)}; the columns are {', '.join(spec.required + spec.optional)})"
        )
        return _actions_failed(stamp, error, _column_values(header, rows, spec.symbol_column))
    col = {name: i for i, name in reversed(list(enumerate(header)))}
    actions: list[CorporateAction] = []
    problems: list[tuple[str, str]] = []
    first: dict[tuple[ActionKind, str, dt.date], int] = {}
    for record, line in zip(rows, lines, strict=True):
        cell = _row_cells(col, record, spec.required)
        try:
            action = spec.build(cell)
        except _RowError as exc:
            problem = f"{path}: line {line}: column {exc.column}: {exc.what}"
            problems.append((_row_symbol(cell, spec.symbol_column), problem))
            continue
        key = (action.kind, action.symbol, action.ex_date)
        if key in first:
            problem = (
                f"{path}: line {line}: column {spec.date_column}: duplicate {action.kind} for"
                f" {action.symbol} on {action.ex_date} (first at line {first[key]})"
            )
            problems.append((action.symbol, problem))
            continue
        first[key] = line
        actions.append(action)
    return _ParsedActions(stamp, tuple(actions), _keyed(problems))


def _column_values(header: list[str], rows: list[list[str]], column: str) -> tuple[str, ...]:
    """The distinct non-empty values of ``column`` (best effort, for a file that failed)."""
    if column not in header:
        return ()
    i = header.index(column)
    return tuple(dict.fromkeys(r[i].strip() for r in rows if len(r) > i and r[i].strip()))


def _actions_failed(stamp: Stamp, error: str, symbols: tuple[str, ...]) -> _ParsedActions:
    return _ParsedActions(stamp, (), _keyed([(s, error) for s in symbols] or [("", error)]))


def _keyed(problems: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The problems naming a symbol; the others are logged (once, when the file is read)."""
    for symbol, problem in problems:
        if not symbol:
            log.error("csv_corporate_action_skipped", problem=problem)
    return tuple((symbol, problem) for symbol, problem in problems if symbol)
