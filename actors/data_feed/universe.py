"""The trading universe: the reference system's static 36 symbols, or a CSV file.

Symbols are stripped and upper-cased, then must look like a US ticker
(``BRK.B`` and ``BF-B`` included). Bad or repeated entries are dropped and
reported in ``Universe.problems``, each naming the file and row, so one typo
does not stop the daemon; an unreadable file, a missing ``symbol`` column or an
empty result raises ``UniverseError``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from actors.data_feed.params import UniverseParams

SYMBOL_PATTERN: Final = re.compile(r"[A-Z][A-Z0-9.\-]{0,9}")
SYMBOL_COLUMN: Final = "symbol"


class UniverseError(ValueError):
    """The universe cannot be loaded; the message names the file (and row)."""


@dataclass(frozen=True, slots=True)
class Universe:
    """The symbols to trade, where they came from, and the entries that were dropped."""

    symbols: tuple[str, ...]
    source: str
    problems: tuple[str, ...] = ()


def normalise_symbol(raw: str) -> str:
    """Strip and upper-case a ticker as written in a config or file."""
    return raw.strip().upper()


def is_valid_symbol(symbol: str) -> bool:
    """True for a normalised ticker: a letter, then up to 9 of A-Z, 0-9, '.', '-'."""
    return SYMBOL_PATTERN.fullmatch(symbol) is not None


def _collect(entries: Iterable[tuple[str, str]], *, where: str, source: str) -> Universe:
    """Build a universe from (location, raw symbol) pairs, reporting what is dropped."""
    symbols: list[str] = []
    first_seen: dict[str, str] = {}
    problems: list[str] = []
    for location, raw in entries:
        symbol = normalise_symbol(raw)
        if not symbol:
            problems.append(f"{location}: empty symbol")
        elif not is_valid_symbol(symbol):
            problems.append(
                f"{location}: invalid symbol {raw.strip()!r} (expected a letter then up to "
                "9 of A-Z, 0-9, '.', '-')"
            )
        elif symbol in first_seen:
            problems.append(
                f"{location}: duplicate symbol {symbol} (first at {first_seen[symbol]})"
            )
        else:
            first_seen[symbol] = location
            symbols.append(symbol)
    if not symbols:
        detail = f"; {len(problems)} entries dropped, first: {problems[0]}" if problems else ""
        raise UniverseError(f"{where}: no valid symbols{detail}")
    return Universe(symbols=tuple(symbols), source=source, problems=tuple(problems))


def _csv_entries(path: Path) -> list[tuple[str, str]]:
    name = path.name
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise UniverseError(f"{name}: empty file, expected a header with a 'symbol' column")
            columns = [cell.strip().lower() for cell in header]
            if SYMBOL_COLUMN not in columns:
                found = ", ".join(repr(c) for c in columns)
                raise UniverseError(f"{name}: no 'symbol' column in the header (found {found})")
            index = columns.index(SYMBOL_COLUMN)
            entries: list[tuple[str, str]] = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                raw = row[index] if index < len(row) else ""
                entries.append((f"{name} row {reader.line_num}", raw))
    except FileNotFoundError as exc:
        raise UniverseError(f"{path}: universe file not found") from exc
    except csv.Error as exc:
        raise UniverseError(f"{name} row {reader.line_num}: malformed CSV: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UniverseError(f"{path}: cannot read universe file: {exc}") from exc
    return entries


def load_universe(params: UniverseParams) -> Universe:
    """The universe ``params`` describe: ``params.symbols`` (static) or ``params.file`` (csv).

    Rows are numbered as lines in the file, the header being row 1.
    """
    if params.mode == "static":
        entries = [(f"static symbol {i + 1}", s) for i, s in enumerate(params.symbols)]
        return _collect(entries, where="static universe", source="static")
    if params.file is None:
        raise UniverseError("universe mode 'csv' needs universe.file")
    return _collect(_csv_entries(params.file), where=params.file.name, source=f"csv:{params.file}")
