"""The CSV provider's corporate actions: splits.csv, dividends.csv, symbol_changes.csv."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest
from structlog.testing import capture_logs

from actors.data_feed.providers import provider_actions
from actors.data_feed.providers.csv_provider import CsvProvider
from actors.market.corporate_actions import ActionKind, adjust_history

D = dt.date
DAYS = [D(2024, 1, d) for d in (2, 3, 4, 5, 8, 9, 10)]
WIDE = (D(2024, 1, 1), D(2024, 1, 31))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def bars_file(folder: Path, symbol: str, close: float = 100.0, adj: bool = False) -> Path:
    """A per-symbol file: every bar at ``close`` (high +1, low -1), volume 1000."""
    header = "date,open,high,low,close,volume" + (",adj_close" if adj else "") + "\n"
    rows = "".join(
        f"{d},{close},{close + 1},{close - 1},{close},1000"
        + (f",{close / 2}" if adj else "")
        + "\n"
        for d in DAYS
    )
    return write(folder / f"{symbol}.csv", header + rows)


def market(folder: Path, *symbols: str) -> CsvProvider:
    for symbol in symbols:
        bars_file(folder, symbol)
    return CsvProvider(folder)


def by_date(frame: pd.DataFrame, symbol: str, column: str) -> dict[dt.date, float]:
    rows = frame.loc[frame["symbol"] == symbol]
    return {d.date(): float(v) for d, v in zip(rows["date"], rows[column], strict=True)}


SPLITS = (
    "symbol,ex_date,new_rate,old_rate\n"
    "AAA,2024-01-05,2,1\n"  # 2:1
    "BBB,2024-01-08,3,2\n"  # 3:2
    "CCC,2024-01-04,1,10\n"  # 1:10 reverse
)


async def test_splits_adjust_history_as_of_end(tmp_path: Path) -> None:
    """2:1, 3:2 and 1:10: bars before the ex date are divided, bars from it on untouched."""
    provider = market(tmp_path, "AAA", "BBB", "CCC", "DDD")
    write(tmp_path / "splits.csv", SPLITS)
    frame = await provider.fetch(["AAA", "BBB", "CCC", "DDD"], D(2024, 1, 1), D(2024, 1, 10))
    ratios = {"AAA": (D(2024, 1, 5), 2.0), "BBB": (D(2024, 1, 8), 1.5), "CCC": (D(2024, 1, 4), 0.1)}
    for symbol, (ex, ratio) in ratios.items():
        close, volume = by_date(frame, symbol, "close"), by_date(frame, symbol, "volume")
        high = by_date(frame, symbol, "high")
        for day in DAYS:
            factor = ratio if day < ex else 1.0
            assert close[day] == pytest.approx(100.0 / factor), (symbol, day)
            assert high[day] == pytest.approx(101.0 / factor), (symbol, day)
            assert volume[day] == pytest.approx(1000.0 * factor), (symbol, day)
    assert set(by_date(frame, "DDD", "close").values()) == {100.0}
    assert provider.problems() == {}


async def test_adjusted_as_of_the_end_of_each_fetch(tmp_path: Path) -> None:
    """A fetch ending before the ex date sees the raw bars; one ending on it, adjusted ones."""
    provider = market(tmp_path, "AAA")
    write(tmp_path / "splits.csv", SPLITS)
    before = await provider.fetch(["AAA"], D(2024, 1, 1), D(2024, 1, 4))
    assert list(before["close"]) == [100.0, 100.0, 100.0]
    on = await provider.fetch(["AAA"], D(2024, 1, 1), D(2024, 1, 5))
    assert list(on["close"]) == [50.0, 50.0, 50.0, 100.0]
    raw = provider.load()
    raw = raw.loc[raw["symbol"] == "AAA"].reset_index(drop=True)
    actions = await provider.corporate_actions(["AAA"], D(2024, 1, 1), D(2024, 1, 10))
    pd.testing.assert_frame_equal(
        await provider.fetch(["AAA"], D(2024, 1, 1), D(2024, 1, 10)),
        adjust_history(raw, actions, D(2024, 1, 10)),
    )


async def test_dividends_and_renames_are_read_and_leave_prices_alone(tmp_path: Path) -> None:
    """Cash per share, a pay date (empty: none), a rename: reported, no price is touched."""
    provider = market(tmp_path, "AAA", "OLD")
    write(
        tmp_path / "dividends.csv",
        "Symbol,Ex Date,Cash,Pay Date\nAAA,2024-01-04,0.25,2024-01-20\nAAA,2024-01-09,0.5,\n",
    )
    write(tmp_path / "symbol_changes.csv", "old_symbol,new_symbol,date\nOLD,NEW,2024-01-08\n")
    actions = await provider.corporate_actions(["AAA", "OLD"], *WIDE)
    assert [(a.kind, a.symbol, a.ex_date) for a in actions] == [
        (ActionKind.CASH_DIVIDEND, "AAA", D(2024, 1, 4)),
        (ActionKind.RENAME, "OLD", D(2024, 1, 8)),
        (ActionKind.CASH_DIVIDEND, "AAA", D(2024, 1, 9)),
    ]
    first, rename, second = actions
    assert (first.cash_per_share, first.pay_date) == (0.25, D(2024, 1, 20))
    assert (second.cash_per_share, second.pay_date) == (0.5, None)
    assert rename.new_symbol == "NEW"
    assert {a.source for a in actions} == {"csv"}
    frame = await provider.fetch(["AAA", "OLD"], *WIDE)
    assert set(frame["close"]) == {100.0}
    assert set(frame["volume"]) == {1000.0}


async def test_actions_are_filtered_by_symbol_and_date_range(tmp_path: Path) -> None:
    """Only the asked symbols (a rename: its old one), only ex dates in [start, end]."""
    provider = market(tmp_path, "AAA")
    write(tmp_path / "splits.csv", SPLITS)
    write(tmp_path / "symbol_changes.csv", "old_symbol,new_symbol,date\nOLD,NEW,2024-01-08\n")
    got = await provider.corporate_actions(["AAA", "CCC"], *WIDE)
    assert [a.symbol for a in got] == ["CCC", "AAA"]  # by ex date
    assert await provider.corporate_actions(["AAA"], D(2024, 1, 6), D(2024, 1, 31)) == []
    inclusive = await provider.corporate_actions(["AAA"], D(2024, 1, 5), D(2024, 1, 5))
    assert [a.ex_date for a in inclusive] == [D(2024, 1, 5)]
    assert [a.kind for a in await provider.corporate_actions(["OLD"], *WIDE)] == ["rename"]
    assert await provider.corporate_actions(["NEW"], *WIDE) == []
    assert await provider_actions(provider, ["BBB"], *WIDE) != []


BAD_ROWS = [
    ("splits.csv", "symbol,ex_date,new_rate,old_rate\nAAA,2024-13-01,2,1\n", "column ex_date"),
    ("splits.csv", "symbol,ex_date,new_rate,old_rate\nAAA,2024-01-05,0,1\n", "column new_rate"),
    ("splits.csv", "symbol,ex_date,new_rate,old_rate\nAAA,2024-01-05,2,-1\n", "column old_rate"),
    ("splits.csv", "symbol,ex_date,new_rate,old_rate\nAAA,2024-01-05,two,1\n", "column new_rate"),
    ("splits.csv", "symbol,ex_date,new_rate,old_rate\nAAA,2024-01-05,1,1\n", "column new_rate"),
    ("splits.csv", "symbol,ex_date,new_rate,old_rate\nAAA,2024-01-05,2\n", "column old_rate"),
    ("dividends.csv", "symbol,ex_date,cash\nAAA,2024-01-05,0\n", "column cash"),
    ("dividends.csv", "symbol,ex_date,cash,pay_date\nAAA,2024-01-05,1,Jan 9\n", "column pay_date"),
    (
        "dividends.csv",
        "symbol,ex_date,cash,pay_date\nAAA,2024-01-05,1,2024-01-02\n",
        "column pay_date",
    ),
    ("symbol_changes.csv", "old_symbol,new_symbol,date\nAAA,,2024-01-05\n", "column new_symbol"),
    ("symbol_changes.csv", "old_symbol,new_symbol,date\nAAA,AAA,2024-01-05\n", "column new_symbol"),
    ("symbol_changes.csv", "old_symbol,new_symbol,date\nAAA,ZZZ,soon\n", "column date"),
]


@pytest.mark.parametrize(("name", "body", "column"), BAD_ROWS)
async def test_a_bad_row_names_file_line_and_column_and_keeps_the_bars(
    tmp_path: Path, name: str, body: str, column: str
) -> None:
    """The row is skipped and reported under its symbol; every bar is still served."""
    provider = market(tmp_path, "AAA", "BBB")
    write(tmp_path / name, body)
    frame = await provider.fetch(["AAA", "BBB"], *WIDE)
    assert len(frame) == 2 * len(DAYS)
    assert set(frame["close"]) == {100.0}
    problems = provider.problems()
    assert list(problems) == ["AAA"]
    assert problems["AAA"].startswith(f"{tmp_path / name}: line 2: {column}: ")
    assert await provider.corporate_actions(["AAA", "BBB"], *WIDE) == []


async def test_good_rows_beside_a_bad_one_still_apply(tmp_path: Path) -> None:
    """One bad row costs only itself; a duplicate row is a problem naming the first."""
    provider = market(tmp_path, "AAA", "BBB")
    write(
        tmp_path / "splits.csv",
        "symbol,ex_date,new_rate,old_rate\n"
        "BBB,2024-01-05,2,1\n"
        "\n"
        "AAA,someday,2,1\n"
        "BBB,2024-01-05,3,1\n",
    )
    frame = await provider.fetch(["AAA", "BBB"], *WIDE)
    assert by_date(frame, "BBB", "close")[D(2024, 1, 4)] == 50.0
    problems = provider.problems()
    assert problems["AAA"] == (
        f"{tmp_path / 'splits.csv'}: line 4: column ex_date:"
        " cannot parse 'someday' as a date (YYYY-MM-DD)"
    )
    assert problems["BBB"] == (
        f"{tmp_path / 'splits.csv'}: line 5: column ex_date: duplicate forward_split"
        " for BBB on 2024-01-05 (first at line 2)"
    )


async def test_an_unknown_column_set_costs_the_file_not_the_bars(tmp_path: Path) -> None:
    """A header without a needed column: the file is skipped, its symbols reported."""
    provider = market(tmp_path, "AAA", "BBB")
    write(tmp_path / "splits.csv", "symbol,ex_date,ratio\nAAA,2024-01-05,2\nBBB,2024-01-08,2\n")
    frame = await provider.fetch(["AAA", "BBB"], *WIDE)
    assert len(frame) == 2 * len(DAYS)
    problems = provider.problems()
    assert sorted(problems) == ["AAA", "BBB"]
    assert problems["AAA"].startswith(f"{tmp_path / 'splits.csv'}: line 1: column new_rate:")
    assert "symbol, ex_date, new_rate, old_rate" in problems["AAA"]


async def test_a_problem_without_a_symbol_is_logged(tmp_path: Path) -> None:
    """An empty symbol cell (or a header naming no symbols) is logged, not a symbol's problem."""
    provider = market(tmp_path, "AAA")
    write(tmp_path / "splits.csv", "symbol,ex_date,new_rate,old_rate\n,2024-01-05,2,1\n")
    write(tmp_path / "dividends.csv", "ticker,when,amount\nAAA,2024-01-05,1\n")
    with capture_logs() as logs:
        frame = await provider.fetch(["AAA"], *WIDE)
    assert len(frame) == len(DAYS)
    assert provider.problems() == {}
    skipped = sorted(e["problem"] for e in logs if e["event"] == "csv_corporate_action_skipped")
    assert len(skipped) == 2
    assert skipped[0].startswith(f"{tmp_path / 'dividends.csv'}: line 1: column symbol: missing")
    assert skipped[1] == f"{tmp_path / 'splits.csv'}: line 2: column symbol: empty"
    with capture_logs() as again:
        await provider.fetch(["AAA"], *WIDE)
    assert again == []  # logged when the file is read, not on every fetch


async def test_single_file_layout_reads_the_files_beside_it(tmp_path: Path) -> None:
    """Beside one bars file with a symbol column; adj_close is ignored: the bars are raw."""
    bars = tmp_path / "bars.csv"
    write(
        bars,
        "symbol,date,open,high,low,close,volume,adj_close\n"
        + "".join(f"AAA,{d},10,11,9,10,500,5\n" for d in DAYS),
    )
    write(tmp_path / "SPLITS.CSV", "symbol,ex_date,new_rate,old_rate\nAAA,2024-01-08,2,1\n")
    frame = await CsvProvider(bars).fetch(["AAA"], *WIDE)
    close = by_date(frame, "AAA", "close")
    assert close[D(2024, 1, 5)] == 5.0
    assert close[D(2024, 1, 8)] == 10.0
    assert by_date(frame, "AAA", "volume")[D(2024, 1, 5)] == 1000.0


async def test_actions_files_are_not_bars_and_without_them_nothing_changes(
    tmp_path: Path,
) -> None:
    """No 'splits' symbol is ever read; without actions files adj_close still adjusts."""
    bars_file(tmp_path, "AAA", adj=True)
    provider = CsvProvider(tmp_path)
    assert await provider.corporate_actions(["AAA"], *WIDE) == []
    assert set((await provider.fetch(["AAA"], *WIDE))["close"]) == {50.0}
    write(tmp_path / "dividends.csv", "symbol,ex_date,cash\nAAA,2024-01-05,1\n")
    assert set((await provider.fetch(["AAA"], *WIDE))["close"]) == {100.0}  # raw now
    assert provider.problems() == {}
    assert "dividends" not in set(provider.load()["symbol"])


async def test_a_changed_actions_file_is_read_again(tmp_path: Path) -> None:
    """Fixing a bad row clears its problem and applies the split."""
    provider = market(tmp_path, "AAA")
    splits = write(tmp_path / "splits.csv", "symbol,ex_date,new_rate,old_rate\nAAA,x,2,1\n")
    await provider.fetch(["AAA"], *WIDE)
    assert "AAA" in provider.problems()
    write(splits, "symbol,ex_date,new_rate,old_rate\nAAA,2024-01-05,2,1\n")
    os.utime(splits, ns=(10**18, 10**18))
    frame = await provider.fetch(["AAA"], *WIDE)
    assert provider.problems() == {}
    assert by_date(frame, "AAA", "close")[D(2024, 1, 4)] == 50.0
    splits.unlink()
    frame = await provider.fetch(["AAA"], *WIDE)
    assert set(frame["close"]) == {100.0}
    assert await provider.corporate_actions(["AAA"], *WIDE) == []
