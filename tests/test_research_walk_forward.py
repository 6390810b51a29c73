"""``tradingd walk-forward`` over three years on real Dask processes, and its look-ahead test.

The market is the synthetic one written to CSV files (three symbols, SPY for the
benchmark, VIX for the regime), so the second run can rewrite the future: every
bar from window k's first test session on is scaled wildly. Window k's training
loads bars up to the session before, so its chosen parameters and in-sample
metrics stay as they were; the windows before it are unchanged out of sample too.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import anyio
import pandas as pd
import pytest

from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.system.cli import main
from actors.system.research.results import read_results
from actors.system.research.tasks import METRICS
from tests.fakes.dask_cluster import DaskCluster, dask_cluster

SYMBOLS = ["AAPL", "MSFT", "XOM"]
DATA_FROM, DATA_TO = dt.date(2021, 6, 1), dt.date(2025, 12, 31)
FAST = "strategies.ma_crossover.fast"
K = 2  # the window whose future is rewritten


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


def write_market(folder: Path) -> None:
    """The synthetic bars (and SPY, and VIX as a series of bars) as one CSV per symbol."""
    folder.mkdir(parents=True)
    provider = SyntheticProvider()
    bars = provider.generate([*SYMBOLS, "SPY"], DATA_FROM, DATA_TO)
    for symbol, frame in bars.groupby("symbol"):
        frame.drop(columns="symbol").assign(date=frame["date"].dt.date).to_csv(
            folder / f"{symbol}.csv", index=False
        )
    levels = anyio.run(provider.volatility_index, DATA_FROM, DATA_TO)
    vix = pd.DataFrame({"date": [d.date() for d in levels.index]})
    for column in ("open", "high", "low", "close"):
        vix[column] = levels.to_numpy()
    vix["volume"] = 0.0
    vix.to_csv(folder / "VIX.csv", index=False)


def rewrite_from(folder: Path, day: dt.date) -> None:
    """Every bar on or after ``day`` scaled wildly (VIX and SPY too)."""
    for path in folder.glob("*.csv"):
        frame = pd.read_csv(path)
        later = pd.to_datetime(frame["date"]).dt.date >= day
        for column, factor in (("open", 1.7), ("high", 1.9), ("low", 1.5), ("close", 1.6)):
            frame.loc[later, column] = frame.loc[later, column] * factor
        frame.loc[later, "volume"] = frame.loc[later, "volume"] * 3
        frame.to_csv(path, index=False)


def walk_forward(cluster: DaskCluster, data: Path, out: Path) -> list[dict[str, str]]:
    args = [
        "walk-forward", "--from", "2023-01-01", "--to", "2025-12-31",
        "--train", "1y", "--test", "6m", "--provider", "csv", "--csv", str(data),
        "--universe", ",".join(SYMBOLS), "--strategies", "ma_crossover", "--capital", "100000",
        "--param", f"{FAST}=5,10", "--param", "strategies.ma_crossover.slow=40",
        "--scheduler", cluster.address, "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    return read_results(out / "windows.csv")


def test_walk_forward_chooses_before_each_window_and_never_looks_ahead(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    """>= 3 windows, a stitched curve; bars after window k's start change none of its choices."""
    original, rewritten = tmp_path / "a", tmp_path / "b"
    write_market(original)
    before = walk_forward(cluster, original, tmp_path / "out-a")
    assert len(before) >= 3
    assert all(w["error"] == "" for w in before)
    for w, nxt in itertools.pairwise(before):
        assert w["train_end"] < w["test_start"] <= w["test_end"] < nxt["test_start"]
        assert nxt["train_start"] > w["train_start"]  # rolling by the test length
    with (tmp_path / "out-a" / "equity.csv").open() as fh:
        equity = list(csv.DictReader(fh))
    dates = [e["date"] for e in equity]
    assert dates == sorted(set(dates))
    assert float(equity[0]["equity"]) == 100_000.0
    assert dates[-1] == before[-1]["test_end"]
    assert {int(e["window"]) for e in equity} == set(range(len(before)))
    assert all(e["benchmark"] != "" for e in equity)
    page = (tmp_path / "out-a" / "report.html").read_text()
    assert "buy-and-hold" in page
    assert "data:image/png;base64," in page

    write_market(rewritten)
    rewrite_from(rewritten, dt.date.fromisoformat(before[K]["test_start"]))
    after = walk_forward(cluster, rewritten, tmp_path / "out-b")
    chosen = [FAST, *(f"is_{m}" for m in METRICS)]
    for j in range(K + 1):
        assert [after[j][c] for c in chosen] == [before[j][c] for c in chosen], f"window {j}"
    for j in range(K):
        out_of_sample = [f"oos_{m}" for m in METRICS]
        assert [after[j][c] for c in out_of_sample] == [before[j][c] for c in out_of_sample]
    # The rewrite is seen where it may be: the next window trains on the changed bars.
    assert [after[K + 1][c] for c in chosen[1:]] != [before[K + 1][c] for c in chosen[1:]]
