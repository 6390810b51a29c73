"""What one Dask task does in its worker: one backtest, its metrics read from ``stats.json``.

The run directory ends as ``tradingd backtest`` leaves one: ``stats.json``,
``report.html`` (unless the spec says not: a walk-forward's training runs),
``equity.csv``, ``trades.csv`` and a self-contained ``backtest.db``.

A task is a ``RunSpec`` (the combination's settings, the dates, the run directory);
``run_spec`` is the function Dask calls, in the worker process. The market (bars
and indicators) is loaded once per worker and kept for the next tasks with the
same data settings and dates within one command (``_MARKETS``, a small
per-process cache keyed by the command's ``session`` token too, so a long-lived
cluster worker never serves a later sweep the bars an earlier one read: a sweep's
tasks share one market; a walk-forward has one per window). ``run_backtest`` is
given that market, so a task costs the replay only.

Nothing a combination does escapes as an exception: a refused setting, a symbol
the data lacks or a crash in the replay is the ``error`` of its ``Outcome``, so a
bad combination is one failed row. A worker that dies is another matter: Dask
gives its tasks to another worker (the run directory is emptied first, so a
half-written run is never read).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import pandas as pd

from actors.reports.backtest_stats import equity_curve
from actors.system.backtest import LoadedMarket, load_market, run_backtest
from actors.system.backtest_report import STATS_FILE, write_report
from actors.system.config import Settings, environment_secrets
from daemon.logging import configure_logging

METRICS: Final = ("sharpe", "sortino", "cagr", "max_drawdown", "trades", "exposure", "fees")
"""The metrics of a results.csv row, in its column order, as ``stats.json`` names them."""
OBJECTIVES: Final = ("sharpe", "sortino", "cagr", "max_drawdown")
"""Metrics a search or a walk-forward may maximise (a drawdown is negative: higher is better)."""
MARKETS_KEPT: Final = 2
"""Markets a worker keeps: a sweep needs one; a walk-forward's windows come in order."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One backtest to run in a worker: settings already carrying the combination.

    The settings travel without secrets; the worker adds its own from its environment
    (``ALPACA_API_KEY`` & co., ``$CREDENTIALS_DIRECTORY``), for a provider that needs them.
    """

    settings: Settings
    start: dt.date
    end: dt.date
    out: Path
    #: The command this task belongs to: its tasks share their markets, no others do.
    session: str = ""
    #: Also return the equity curve and the benchmark (a walk-forward's test window).
    curves: bool = False
    #: Also write the run's report.html, as ``tradingd backtest`` does.
    report: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a task returns: the metrics (``METRICS`` keys) or why there are none."""

    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: With ``RunSpec.curves``: (date, equity) from the starting capital at the session
    #: before the first, then at each session's close; the benchmark held from the same
    #: capital on the same dates (``[backtest] benchmark``).
    equity: list[tuple[str, float]] = field(default_factory=list)
    benchmark: list[tuple[str, float]] = field(default_factory=list)
    initial_equity: float | None = None

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls(error=" ".join(error.split()))


_MARKETS: OrderedDict[str, LoadedMarket] = OrderedDict()
_LOCK = threading.Lock()


def run_spec(spec: RunSpec) -> Outcome:
    """Run one backtest into ``spec.out`` (emptied first); its metrics from its stats.json."""
    _worker_logging()
    shutil.rmtree(spec.out, ignore_errors=True)
    try:
        settings = spec.settings.model_copy(update={"secrets": environment_secrets(os.environ)})
        market = market_for(settings, spec.start, spec.end, spec.session)
        result = anyio.run(
            lambda: run_backtest(
                settings, start=spec.start, end=spec.end, out=spec.out, preloaded=market
            )
        )
        if spec.report:
            anyio.run(lambda: write_report(result))
        stats: dict[str, Any] = json.loads((spec.out / STATS_FILE).read_text())
    except Exception as exc:  # any failure of one combination is its row's error
        return Outcome.failed(f"{type(exc).__name__}: {exc}")
    metrics = {name: stats.get(name) for name in (*METRICS, "total_return")}
    if not spec.curves or result.inputs is None:
        return Outcome(metrics=metrics)
    inputs = result.inputs
    equity = equity_curve(inputs.initial_equity, inputs.base_session, inputs.closes)
    return Outcome(
        metrics=metrics,
        equity=_points(equity),
        benchmark=_points(inputs.benchmark.values),
        initial_equity=inputs.initial_equity,
    )


def market_for(settings: Settings, start: dt.date, end: dt.date, session: str) -> LoadedMarket:
    """This worker's market for the data settings and dates: loaded on first use, then kept."""
    data = settings.data.model_dump(mode="json")
    key = json.dumps([session, data, settings.schedule.calendar, str(start), str(end)])
    with _LOCK:
        if key in _MARKETS:
            _MARKETS.move_to_end(key)
            return _MARKETS[key]
        market = anyio.run(lambda: load_market(settings, start, end))
        _MARKETS[key] = market
        while len(_MARKETS) > MARKETS_KEPT:
            _MARKETS.popitem(last=False)
        return market


@functools.cache
def _worker_logging() -> None:
    """Warnings only, on the worker's stderr, as ``tradingd backtest`` logs (once a process)."""
    configure_logging(level="warning", json=False, stream=sys.stderr)


def _points(series: pd.Series) -> list[tuple[str, float]]:
    """A dated curve as (ISO date, value) pairs: plain data for the trip back to the client."""
    index = pd.DatetimeIndex(series.index)
    return [(d.date().isoformat(), float(v)) for d, v in zip(index, series.to_numpy(), strict=True)]
