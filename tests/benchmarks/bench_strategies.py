"""Indicators plus all four strategies on the synthetic market, per universe size.

``python -m tests.benchmarks.bench_strategies --symbols N`` measures one size in
this process and prints one JSON line: generating the bars (the synthetic
provider), the indicators, each strategy's ``generate`` with a reused ML model,
and the ML model fit on its own line (it runs on a cadence, not every cycle).
Each size runs in its own process (see ``tests/benchmarks/run.py``) so peak RSS
belongs to that size alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time
from typing import Any

import numpy as np
import pandas as pd

from actors.data_feed.indicators import compute_indicators
from actors.data_feed.panel import BarPanel
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.reports.charts import equity_chart_png
from actors.strategies.base import StrategyContext
from actors.strategies.ml_momentum import MlMomentum
from actors.strategies.params import StrategiesParams
from actors.strategies.registry import build_strategies

DAYS = 300
ASOF = dt.date(2026, 11, 23)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best_of(n: int, fn: Any) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(symbols: int) -> dict[str, Any]:
    calendar = ExchangeCalendar("XNYS")
    sessions = calendar.sessions_back(calendar.previous_session(ASOF), DAYS)
    names = [f"S{i:05d}" for i in range(symbols)]
    provider = SyntheticProvider()
    t0 = time.perf_counter()
    frame = provider.generate(names, sessions[0], sessions[-1])
    panel = BarPanel.from_long(frame)
    bars_s = time.perf_counter() - t0

    compute_indicators(panel)  # first touch of fresh memory is not the steady state
    indicators_s = best_of(3, lambda: compute_indicators(panel))
    indicators = compute_indicators(panel)
    ctx = StrategyContext(ASOF, panel, indicators, {}, 25_000.0)

    strategies = build_strategies(StrategiesParams())
    ml = strategies["ml_momentum"]
    assert isinstance(ml, MlMomentum)
    t0 = time.perf_counter()
    ml.generate(ctx)  # fits the model
    fit_s = time.perf_counter() - t0
    per_strategy = {name: best_of(3, lambda s=s: s.generate(ctx)) for name, s in strategies.items()}
    equity = pd.Series(
        100_000.0 + np.cumsum(np.random.default_rng(1).normal(0, 500, DAYS)),
        index=pd.bdate_range("2025-09-01", periods=DAYS),
    )
    equity_chart_png(equity)  # the first call pays matplotlib's import
    chart_s = best_of(3, lambda: equity_chart_png(equity))
    return {
        "symbols": symbols,
        "days": DAYS,
        "bars_s": bars_s,
        "indicators_s": indicators_s,
        "strategies_s": sum(per_strategy.values()),
        "per_strategy_s": per_strategy,
        "cycle_compute_s": indicators_s + sum(per_strategy.values()),
        "ml_fit_s": fit_s,
        "digest_chart_s": chart_s,
        "ml_fit_rows": state.n_rows if (state := ml.model_state()) else 0,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(measure(args.symbols)))


if __name__ == "__main__":
    main()
