"""``tradingd sweep`` on real Dask processes: cluster = local = single runs, failures, Optuna.

One scheduler and two workers (``dask scheduler`` / ``dask worker`` processes on
127.0.0.1) serve the whole module; ``--workers 2`` starts its own LocalCluster.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.system.cli import main
from actors.system.research.results import read_results
from actors.system.research.tasks import METRICS
from tests.fakes.dask_cluster import DaskCluster, dask_cluster
from tests.test_backtest import synthetic_csv

BASE = ["--universe", "AAPL,MSFT,XOM", "--strategies", "ma_crossover", "--capital", "100000"]
QUARTER = ["--from", "2025-01-02", "--to", "2025-03-31"]
GRID = [
    "--param", "strategies.ma_crossover.fast=5,10",
    "--param", "strategies.ma_crossover.slow=20,40",
]  # fmt: skip
FAST, SLOW = "strategies.ma_crossover.fast", "strategies.ma_crossover.slow"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


def exact(value: object) -> str:
    """A stats.json figure as results.csv writes it."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def test_cluster_local_cluster_and_single_backtests_agree(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    """A 2x2 sweep on the scheduler's workers = --workers 2 = four ``tradingd backtest`` runs."""
    remote, local = tmp_path / "remote", tmp_path / "local"
    args = ["sweep", *QUARTER, *BASE, *GRID]
    assert main([*args, "--scheduler", cluster.address, "--out", str(remote)]) == 0
    assert main([*args, "--workers", "2", "--out", str(local)]) == 0
    rows = read_results(remote / "results.csv")
    assert rows == read_results(local / "results.csv")
    assert [(r[FAST], r[SLOW]) for r in rows] == [
        ("5", "20"), ("5", "40"), ("10", "20"), ("10", "40"),
    ]  # fmt: skip
    assert sum(int(r["trades"]) for r in rows) > 0
    for row in rows:
        fast, slow = row[FAST], row[SLOW]
        config = tmp_path / f"{fast}-{slow}.toml"
        config.write_text(f"[strategies.ma_crossover]\nfast = {fast}\nslow = {slow}\n")
        out = tmp_path / f"single-{fast}-{slow}"
        args = ["backtest", *QUARTER, *BASE, "--config", str(config), "--out", str(out)]
        assert main(args) == 0
        stats = json.loads((out / "stats.json").read_text())
        assert [row[m] for m in METRICS] == [exact(stats[m]) for m in METRICS]
        assert row["error"] == ""
    for run in sorted((remote / "runs").iterdir()):  # each a whole backtest's output
        assert sorted(p.name for p in run.iterdir()) == [
            "backtest.db", "equity.csv", "report.html", "stats.json", "trades.csv",
        ]  # fmt: skip
    assert (remote / "heatmap.png").read_bytes().startswith(PNG)
    page = (remote / "report.html").read_text()
    assert "Best by sharpe" in page
    assert "data:image/png;base64," in page


def test_a_failing_combination_is_its_row_and_the_rest_complete(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    """fast >= slow (refused by the settings) and an empty data folder (fails in the worker)."""
    good, empty = tmp_path / "bars", tmp_path / "empty"
    synthetic_csv(good, ["AAPL", "MSFT", "XOM"], dt.date(2023, 6, 1), dt.date(2025, 3, 31))
    empty.mkdir()
    out = tmp_path / "out"
    args = [
        "sweep", *QUARTER, *BASE, "--provider", "csv", "--csv", str(good),
        "--param", "strategies.ma_crossover.fast=10,40",
        "--param", "strategies.ma_crossover.slow=30",
        "--param", f"data.csv.path={good},{empty}",
        "--scheduler", cluster.address, "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    rows = read_results(out / "results.csv")
    assert [(r["strategies.ma_crossover.fast"], r["data.csv.path"]) for r in rows] == [
        ("10", str(good)), ("10", str(empty)), ("40", str(good)), ("40", str(empty)),
    ]  # fmt: skip
    assert rows[0]["error"] == ""
    assert rows[0]["trades"] != ""
    assert "MissingSymbols" in rows[1]["error"]
    assert "AAPL" in rows[1]["error"]
    for refused in rows[2:]:
        assert "strategies.ma_crossover.fast" in refused["error"]
        assert "40 >= 30" in refused["error"]
        assert all(refused[m] == "" for m in METRICS)
    assert (out / "heatmap.png").read_bytes().startswith(PNG)  # three parameters: three panels


def test_optuna_search_resumes_to_the_trials_asked(cluster: DaskCluster, tmp_path: Path) -> None:
    """Two trials, then a rerun asking for four: four trials, four rows, as one 4-trial search."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    args = [
        "sweep", *QUARTER, *BASE, "--search", "optuna", "--seed", "7",
        "--param", "strategies.ma_crossover.fast=4:12:2",
        "--param", "strategies.ma_crossover.slow=20,30,40",
        "--scheduler", cluster.address,
    ]  # fmt: skip
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    assert main([*args, "--trials", "2", "--out", str(resumed)]) == 0
    assert len(read_results(resumed / "results.csv")) == 2
    assert main([*args, "--trials", "4", "--out", str(resumed)]) == 0
    assert main([*args, "--trials", "4", "--out", str(whole)]) == 0
    rows = read_results(resumed / "results.csv")
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"]
    assert rows == read_results(whole / "results.csv")
    storage = JournalStorage(JournalFileBackend(str(resumed / "study.journal")))
    study = optuna.load_study(study_name="tradingd", storage=storage)
    assert len(study.trials) == 4
    for r in rows:
        assert int(r["strategies.ma_crossover.fast"]) in (4, 6, 8, 10, 12)
        assert r["strategies.ma_crossover.slow"] in ("20", "30", "40")
    other = [*args, "--trials", "4", "--objective", "cagr", "--out", str(resumed)]
    assert main(other) == 78  # the directory holds a search of another objective


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--param", "strategies.ma_crossover.fastest=1,2"], "strategies.ma_crossover.fastest"),
        (["--param", "strategies.ma_crossover.fast=2.5,3"], "2.5"),
        (["--param", "strategies.ma_crossover.fast=10:5:1"], "stop is below start"),
        (["--param", "strategies.ma_crossover.fast=5:10:0"], "step"),
        (["--param", "nonsense"], "KEY=VALUES"),
        (["--param", "strategies.ma_crossover.fast=5", "--objective", "luck"], "--objective"),
        (["--param", f"{FAST}=5", "--workers", "2", "--scheduler", "tcp://x:1"], "--workers"),
        (["--param", "strategies.ma_crossover.fast=5", "--search", "optuna"], "--trials"),
        (
            ["--param", f"{FAST}=5", "--scheduler", "tcp://x:1", "--connect-timeout", "0"],
            "--connect-timeout",
        ),
    ],
)
def test_bad_options_exit_78_naming_what_is_wrong(
    extra: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad --param, range, objective or cluster choice: exit 78, one line naming it."""
    assert main(["sweep", *QUARTER, *BASE, *extra, "--out", str(tmp_path / "o")]) == 78
    assert named in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.csv").exists()


def test_an_unreachable_scheduler_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens at the address: exit 78 after --connect-timeout, naming the address."""
    address = f"tcp://127.0.0.1:{free_port()}"
    args = [
        "sweep", *QUARTER, *BASE, "--param", f"{FAST}=5",
        "--scheduler", address, "--connect-timeout", "1", "--out", str(tmp_path / "o"),
    ]  # fmt: skip
    assert main(args) == 78
    err = capsys.readouterr().err
    assert address in err
    assert "--scheduler" in err


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
