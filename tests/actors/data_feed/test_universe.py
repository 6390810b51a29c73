"""Universe loading: the static default and CSV files, with their problems and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.data_feed.params import DEFAULT_UNIVERSE, UniverseParams
from actors.data_feed.universe import (
    Universe,
    UniverseError,
    is_valid_symbol,
    load_universe,
)


def write_csv(tmp_path: Path, text: str, name: str = "universe.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def from_csv(path: Path) -> Universe:
    return load_universe(UniverseParams(mode="csv", file=path))


def test_static_default_has_the_reference_36_symbols() -> None:
    """The default universe is the reference system's 36 static symbols."""
    universe = load_universe(UniverseParams())
    assert len(universe.symbols) == 36
    assert universe.symbols == DEFAULT_UNIVERSE
    assert universe.source == "static"
    assert universe.problems == ()


def test_static_symbols_are_normalised_and_checked() -> None:
    """Static symbols are upper-cased; invalid and repeated ones are reported and dropped."""
    universe = load_universe(UniverseParams(symbols=(" aapl", "MSFT", "Aapl", "9XYZ", "")))
    assert universe.symbols == ("AAPL", "MSFT")
    assert universe.problems == (
        "static symbol 3: duplicate symbol AAPL (first at static symbol 1)",
        "static symbol 4: invalid symbol '9XYZ' (expected a letter then up to 9 of A-Z, "
        "0-9, '.', '-')",
        "static symbol 5: empty symbol",
    )


def test_static_universe_with_nothing_valid_is_an_error() -> None:
    """A static list with no usable symbol raises."""
    with pytest.raises(UniverseError, match="static universe: no valid symbols"):
        load_universe(UniverseParams(symbols=("", "  ")))


def test_csv_with_many_symbols_and_extra_columns(tmp_path: Path) -> None:
    """A 160-row CSV with name and sector columns loads every symbol in file order."""
    symbols = [f"T{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(160)]
    lines = ["symbol,name,sector"] + [
        f"{s},Company {s},Sector {i % 11}" for i, s in enumerate(symbols)
    ]
    path = write_csv(tmp_path, "\n".join(lines) + "\n")
    universe = from_csv(path)
    assert universe.symbols == tuple(symbols)
    assert universe.source == f"csv:{path}"
    assert universe.problems == ()


def test_csv_symbol_column_need_not_be_first(tmp_path: Path) -> None:
    """The symbol column is found by name, case-insensitively, anywhere in the header."""
    path = write_csv(tmp_path, "Name, Symbol ,Sector\nApple,aapl ,Tech\nBerkshire,brk.b,Fin\n")
    assert from_csv(path).symbols == ("AAPL", "BRK.B")


def test_csv_problems_name_file_and_row(tmp_path: Path) -> None:
    """Duplicate, empty and invalid rows are dropped and reported with their row number."""
    text = (
        "symbol,name\n"  # row 1
        "AAPL,Apple\n"  # row 2
        "MSFT,Microsoft\n"  # row 3
        "aapl,Apple again\n"  # row 4
        ",No symbol\n"  # row 5
        "BAD SYMBOL,Spaces\n"  # row 6
        "WAYTOOLONGSYM,Long\n"  # row 7
        "BF-B,Brown-Forman\n"  # row 8
    )
    universe = from_csv(write_csv(tmp_path, text))
    assert universe.symbols == ("AAPL", "MSFT", "BF-B")
    assert len(universe.problems) == 4
    assert universe.problems[0] == (
        "universe.csv row 4: duplicate symbol AAPL (first at universe.csv row 2)"
    )
    assert universe.problems[1] == "universe.csv row 5: empty symbol"
    assert universe.problems[2].startswith("universe.csv row 6: invalid symbol 'BAD SYMBOL'")
    assert universe.problems[3].startswith("universe.csv row 7: invalid symbol 'WAYTOOLONGSYM'")


def test_csv_blank_lines_are_skipped_silently(tmp_path: Path) -> None:
    """Blank lines are formatting, not problems."""
    universe = from_csv(write_csv(tmp_path, "symbol\nAAPL\n\n\nMSFT\n"))
    assert universe.symbols == ("AAPL", "MSFT")
    assert universe.problems == ()


def test_csv_short_row_is_an_empty_symbol(tmp_path: Path) -> None:
    """A row without a cell under the symbol column is reported as an empty symbol."""
    universe = from_csv(write_csv(tmp_path, "name,symbol\nApple,AAPL\nOrphan\n"))
    assert universe.symbols == ("AAPL",)
    assert universe.problems == ("universe.csv row 3: empty symbol",)


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 byte-order mark does not hide the symbol column."""
    path = tmp_path / "universe.csv"
    path.write_bytes("symbol,name\nAAPL,Apple\n".encode("utf-8-sig"))
    assert from_csv(path).symbols == ("AAPL",)


def test_csv_missing_symbol_column_names_the_file(tmp_path: Path) -> None:
    """A header without 'symbol' raises an error naming the file and the columns found."""
    path = write_csv(tmp_path, "ticker,name\nAAPL,Apple\n", name="mine.csv")
    with pytest.raises(UniverseError, match=r"mine\.csv: no 'symbol' column .*'ticker', 'name'"):
        from_csv(path)


def test_csv_missing_file_names_the_file(tmp_path: Path) -> None:
    """A missing file raises an error naming its path."""
    path = tmp_path / "nowhere.csv"
    with pytest.raises(UniverseError, match=r"nowhere\.csv: universe file not found"):
        from_csv(path)


def test_csv_empty_file_is_an_error(tmp_path: Path) -> None:
    """A file without even a header raises."""
    with pytest.raises(UniverseError, match=r"universe\.csv: empty file"):
        from_csv(write_csv(tmp_path, ""))


def test_csv_without_valid_symbols_is_an_error(tmp_path: Path) -> None:
    """A header with only bad rows gives an empty universe, which is an error."""
    with pytest.raises(UniverseError, match=r"universe\.csv: no valid symbols; 1 entries"):
        from_csv(write_csv(tmp_path, "symbol\n123\n"))


def test_csv_mode_without_a_file_is_an_error() -> None:
    """csv mode needs universe.file."""
    with pytest.raises(UniverseError, match=r"needs universe\.file"):
        load_universe(UniverseParams(mode="csv"))


def test_undecodable_file_is_an_error(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 raise an error naming the file."""
    path = tmp_path / "latin.csv"
    path.write_bytes(b"symbol\n\xff\xfe\n")
    with pytest.raises(UniverseError, match=r"latin\.csv: cannot read"):
        from_csv(path)


@pytest.mark.parametrize(
    ("symbol", "valid"),
    [
        ("A", True),
        ("BRK.B", True),
        ("BF-B", True),
        ("GOOGL", True),
        ("ABCDEFGHIJ", True),
        ("ABCDEFGHIJK", False),
        ("1A", False),
        ("aapl", False),
        ("A B", False),
        ("", False),
    ],
)
def test_symbol_pattern(symbol: str, valid: bool) -> None:
    """Tickers are a letter then up to nine of A-Z, 0-9, '.', '-'."""
    assert is_valid_symbol(symbol) is valid
