"""The CSV provider: layouts, adjustment, the volatility index, and precise errors."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from actors.data_feed.providers.csv_provider import CsvProvider
from daemon.errors import DataError

D = dt.date
HEADER = "symbol,date,open,high,low,close,volume\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_single_file_with_symbol_column(tmp_path: Path) -> None:
    """One file holding several symbols gives each its bars, sorted."""
    f = write(
        tmp_path / "bars.csv",
        HEADER
        + "MSFT,2024-01-02,10,11,9,10.5,100\n"
        + "AAPL,2024-01-03,20,21,19,20.5,200\n"
        + "AAPL,2024-01-02,19,20,18,19.5,150\n",
    )
    frame = await CsvProvider(f).fetch(["AAPL", "MSFT"], D(2024, 1, 1), D(2024, 1, 31))
    assert list(frame["symbol"]) == ["AAPL", "AAPL", "MSFT"]
    assert list(frame["date"].dt.date) == [D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 2)]
    assert list(frame["close"]) == [19.5, 20.5, 10.5]
    assert str(frame["date"].dtype) == "datetime64[ns]"


async def test_folder_of_per_symbol_files_and_mixed_case_headers(tmp_path: Path) -> None:
    """Per-symbol files are named after the symbol; headers are case-insensitive."""
    write(tmp_path / "AAPL.csv", "Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n")
    write(tmp_path / "BRK.B.csv", "DATE,OPEN,HIGH,LOW,CLOSE,VOLUME\n2024-01-02,3,4,2,3.5,30\n")
    frame = await CsvProvider(tmp_path).fetch(
        ["AAPL", "BRK.B", "NOPE"], D(2024, 1, 1), D(2024, 1, 2)
    )
    assert list(frame["symbol"]) == ["AAPL", "BRK.B"]


async def test_only_the_asked_range_and_symbols(tmp_path: Path) -> None:
    """Rows outside [start, end] or of other symbols are not returned."""
    f = write(
        tmp_path / "b.csv",
        HEADER
        + "A,2024-01-02,1,1,1,1,1\nA,2024-01-03,1,1,1,1,1\n"
        + "A,2024-01-04,1,1,1,1,1\nB,2024-01-03,1,1,1,1,1\n",
    )
    frame = await CsvProvider(f).fetch(["A"], D(2024, 1, 3), D(2024, 1, 3))
    assert list(zip(frame["symbol"], frame["date"].dt.date, strict=True)) == [("A", D(2024, 1, 3))]


async def test_adjusted_close_scales_the_whole_bar(tmp_path: Path) -> None:
    """With adj_close, OHLC are multiplied by adj_close/close; volume is unchanged."""
    f = write(
        tmp_path / "b.csv",
        "symbol,date,open,high,low,close,Adj Close,volume\nA,2024-01-02,10,12,8,10,5,100\n",
    )
    frame = await CsvProvider(f).fetch(["A"], D(2024, 1, 1), D(2024, 1, 31))
    row = frame.iloc[0]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (5, 6, 4, 5, 100)


async def test_vix_rows_serve_the_volatility_index(tmp_path: Path) -> None:
    """VIX.csv feeds volatility_index and is never a bar."""
    write(tmp_path / "AAPL.csv", "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n")
    write(tmp_path / "VIX.csv", "date,open,high,low,close,volume\n2024-01-02,14,15,13,14.5,0\n")
    provider = CsvProvider(tmp_path)
    frame = await provider.fetch(["AAPL", "VIX"], D(2024, 1, 1), D(2024, 1, 31))
    assert set(frame["symbol"]) == {"AAPL"}
    vix = await provider.volatility_index(D(2024, 1, 1), D(2024, 1, 31))
    assert vix is not None
    assert vix.to_dict() == {pd.Timestamp("2024-01-02"): 14.5}


async def test_no_vix_means_none(tmp_path: Path) -> None:
    """Without VIX rows there is no volatility index."""
    f = write(tmp_path / "b.csv", HEADER + "A,2024-01-02,1,1,1,1,1\n")
    assert await CsvProvider(f).volatility_index(D(2024, 1, 1), D(2024, 1, 31)) is None


async def test_changed_file_is_reread(tmp_path: Path) -> None:
    """A file whose modification time changed is parsed again; an unchanged one is not."""
    f = write(tmp_path / "b.csv", HEADER + "A,2024-01-02,1,1,1,1,1\n")
    provider = CsvProvider(f)
    assert len(provider.load()) == 1
    write(f, HEADER + "A,2024-01-02,1,1,1,1,1\nA,2024-01-03,2,2,2,2,2\n")
    stat = f.stat()
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    frame = await provider.fetch(["A"], D(2024, 1, 1), D(2024, 1, 31))
    assert len(frame) == 2


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (HEADER + "A,2024-01-02,1,1,1,1,1\n\nA,2024-13-45,1,1,1,1,1\n", "line 4: column date"),
        (HEADER + "A,2024-01-02,1,1,1,1,1\nA,2024-01-03,1,x,1,1,1\n", "line 3: column high"),
        (HEADER + "A,2024-01-02,1,1,1,1,\n", "line 2: column volume"),
        (HEADER + "A,2024-01-02,1,1,1\n", "line 2: column close"),
        ("symbol,date,open,high,low,volume\nA,2024-01-02,1,1,1,1\n", "line 1: column close"),
        (
            HEADER + "A,2024-01-02,1,1,1,1,1\nB,2024-01-02,1,1,1,1,1\nA,2024-01-02,1,1,1,1,1\n",
            "line 4: column date: duplicate",
        ),
    ],
    ids=["bad-date", "non-numeric", "empty-value", "short-row", "missing-column", "duplicate"],
)
async def test_errors_name_file_line_and_column(tmp_path: Path, body: str, where: str) -> None:
    """A file that does not parse is left out; problems() names the file, line and column."""
    f = write(tmp_path / "bad.csv", body)
    provider = CsvProvider(f)
    frame = await provider.fetch(["A"], D(2024, 1, 1), D(2024, 1, 31))
    assert frame.empty
    problem = provider.problems()["A"]
    assert str(f) in problem
    assert where in problem


async def test_bad_per_symbol_file_costs_that_symbol_only(tmp_path: Path) -> None:
    """In a folder, a per-symbol file that does not parse drops its stem; the others load."""
    write(tmp_path / "AAPL.csv", "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n")
    bad = write(tmp_path / "MSFT.csv", "date,open,high,low,close,volume\n2024-01-02,1,x,1,1,1\n")
    provider = CsvProvider(tmp_path)
    frame = await provider.fetch(["AAPL", "MSFT"], D(2024, 1, 1), D(2024, 1, 31))
    assert list(frame["symbol"]) == ["AAPL"]
    assert provider.problems() == {"MSFT": f"{bad}: line 2: column high: not a number: 'x'"}


async def test_bad_multi_symbol_file_drops_every_symbol_it_names(tmp_path: Path) -> None:
    """A multi-symbol file with one bad row drops all the symbols named in it, none of its bars."""
    write(tmp_path / "good.csv", HEADER + "C,2024-01-02,1,1,1,1,1\n")
    write(
        tmp_path / "bad.csv",
        HEADER + "A,2024-01-02,1,1,1,1,1\nB,2024-01-02,1,1,1,1,1\nB,2024-01-03,1,1,1,oops,1\n",
    )
    provider = CsvProvider(tmp_path)
    frame = await provider.fetch(["A", "B", "C"], D(2024, 1, 1), D(2024, 1, 31))
    assert list(frame["symbol"]) == ["C"]
    problems = provider.problems()
    assert set(problems) == {"A", "B"}
    assert "bad.csv: line 4: column close: not a number: 'oops'" in problems["A"]


async def test_unreadable_file_is_reported_under_its_stem(tmp_path: Path) -> None:
    """A file that cannot even be decoded is reported under its file stem."""
    (tmp_path / "KO.csv").write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    provider = CsvProvider(tmp_path)
    assert (await provider.fetch(["KO"], D(2024, 1, 1), D(2024, 1, 31))).empty
    assert "cannot read" in provider.problems()["KO"]


async def test_fixed_file_is_read_again_and_its_problem_clears(tmp_path: Path) -> None:
    """Once the bad file is repaired, its symbol loads and problems() is empty."""
    f = write(tmp_path / "A.csv", "date,open,high,low,close,volume\n2024-01-02,1,1,1,?,1\n")
    provider = CsvProvider(tmp_path)
    assert (await provider.fetch(["A"], D(2024, 1, 1), D(2024, 1, 31))).empty
    assert set(provider.problems()) == {"A"}
    write(f, "date,open,high,low,close,volume\n2024-01-02,1,1,1,1,1\n")
    stat = f.stat()
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    frame = await provider.fetch(["A"], D(2024, 1, 1), D(2024, 1, 31))
    assert len(frame) == 1
    assert provider.problems() == {}


async def test_duplicate_across_files_names_both(tmp_path: Path) -> None:
    """The same (symbol, date) in two files drops that symbol, naming the second and the first."""
    write(tmp_path / "a.csv", HEADER + "A,2024-01-02,1,1,1,1,1\n")
    write(tmp_path / "b.csv", HEADER + "B,2024-01-02,1,1,1,1,1\nA,2024-01-02,1,1,1,1,1\n")
    provider = CsvProvider(tmp_path)
    frame = await provider.fetch(["A", "B"], D(2024, 1, 1), D(2024, 1, 31))
    assert list(frame["symbol"]) == ["B"]
    assert re.search(
        r"b\.csv: line 3: column date: duplicate .*a\.csv line 2", provider.problems()["A"]
    )


async def test_missing_path_is_a_data_error(tmp_path: Path) -> None:
    """A path that does not exist raises DataError naming it."""
    with pytest.raises(DataError, match="no such CSV"):
        await CsvProvider(tmp_path / "nope.csv").fetch(["A"], D(2024, 1, 1), D(2024, 1, 2))
