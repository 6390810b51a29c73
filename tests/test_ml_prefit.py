"""A backtest's ML fits made ahead in a worker process give the same backtest, bit for bit.

Through ``run_backtest`` on the synthetic market (the embedded default, corporate
actions included): once with the ML fits made ahead (``PREFIT_MIN_ROWS`` lowered so
a small universe qualifies) and once inline; the trades and the equity curve are
byte-identical and every fit came from the pool. Then the pool's own rules: a key it
was not asked to fit is a miss that re-plans, a model from another process is the
model this process fits, and a changed row is another key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import anyio
import numpy as np
import pytest
from structlog.testing import capture_logs

import actors.system.backtest as backtest_mod
from actors.data_feed.market import PrecomputedMarket
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.strategies.ml_fit import fit_key, fit_pipeline, training_rows
from actors.system import ml_prefit
from actors.system.backtest import run_backtest
from actors.system.config import Settings, load_settings
from actors.system.ml_prefit import PlanInputs, PrefitPool, planned_fits

START, END = dt.date(2025, 6, 2), dt.date(2026, 3, 31)
CAL = ExchangeCalendar("XNYS")


def settings() -> Settings:
    return load_settings(None, {"TRADINGD_STRATEGIES__ML_MOMENTUM__RETRAIN_EVERY_DAYS": "10"})


def run(out: Path) -> None:
    anyio.run(lambda: run_backtest(settings(), start=START, end=END, out=out))


def test_fits_made_ahead_give_the_same_backtest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[PrefitPool] = []
    real = PrefitPool.__init__

    def track(self: PrefitPool, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)  # type: ignore[arg-type]
        pools.append(self)

    monkeypatch.setattr(backtest_mod, "PREFIT_MIN_ROWS", 10**12)
    run(tmp_path / "inline")
    assert pools == []
    monkeypatch.setattr(backtest_mod, "PREFIT_MIN_ROWS", 0)
    monkeypatch.setattr(PrefitPool, "__init__", track)
    run(tmp_path / "ahead")
    (pool,) = pools
    assert pool.used >= 15, (pool.used, pool.missed)  # ~200 sessions, a fit every 10
    assert pool.missed == 0
    for name in ("trades.csv", "equity.csv"):
        assert (tmp_path / "ahead" / name).read_bytes() == (tmp_path / "inline" / name).read_bytes()


@pytest.fixture(scope="module")
def inputs() -> PlanInputs:
    cfg = settings()
    sessions = CAL.sessions_between(START, dt.date(2025, 9, 30))
    first = CAL.sessions_back(CAL.previous_session(sessions[0]), cfg.data.history_days)[0]
    symbols = list(cfg.data.universe.symbols)
    market = anyio.run(
        lambda: PrecomputedMarket.load(
            SyntheticProvider(cfg.data.synthetic),
            symbols,
            first,
            sessions[-1],
            validation=cfg.data.validation,
        )
    )
    return PlanInputs(
        market=market,
        calendar=CAL,
        sessions=sessions,
        symbols=symbols,
        history_days=cfg.data.history_days,
        params=cfg.strategies.ml_momentum,
    )


def test_the_plan_fits_on_the_cadence(inputs: PlanInputs) -> None:
    planned = [i for i, _ in planned_fits(inputs)]
    assert planned[0] == 0  # no model yet: the first session fits
    assert set(np.diff(planned)) == {10}  # then every retrain_every_days sessions


def test_a_key_never_planned_is_a_miss_that_replans(
    inputs: PlanInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ml_prefit, "AHEAD", 1)
    pool = PrefitPool(inputs)
    try:
        assert pool.fitted(b"not a planned key", inputs.sessions[3]) is None
        assert pool.missed == 1
        # Planned again after session 3, whose inline fit the strategy now holds.
        ((session, _),) = pool._pending.values()
        assert session == 3 + inputs.params.retrain_every_days
    finally:
        pool.close()


def test_a_model_from_another_process_is_the_same_model(inputs: PlanInputs) -> None:
    rows = next(planned_fits(inputs))[1]
    c = inputs.params.regularization_c
    here = fit_pipeline(rows.x, rows.y, c)
    with ProcessPoolExecutor(1, mp_context=get_context("forkserver")) as pool:
        there = pool.submit(fit_pipeline, rows.x, rows.y, c).result()
    for step, attrs in (("scale", ("mean_", "var_", "scale_")), ("logit", ("coef_", "intercept_"))):
        for attr in attrs:
            a = getattr(there.named_steps[step], attr)
            b = getattr(here.named_steps[step], attr)
            assert a.tobytes() == b.tobytes(), (step, attr)
    assert there.named_steps["logit"].n_iter_.tolist() == here.named_steps["logit"].n_iter_.tolist()
    x = rows.x[:50]
    assert there.predict_proba(x).tobytes() == here.predict_proba(x).tobytes()


def test_the_key_names_every_row_and_the_parameters() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (60, 4)), axis=0))
    features = [rng.normal(size=(60, 4)) for _ in range(3)]
    rows = training_rows(close, features, 5, 40)
    assert rows is not None
    key = fit_key(rows.x, rows.y, 1.0)
    assert fit_key(rows.x.copy(), rows.y.copy(), 1.0) == key
    assert fit_key(rows.x, rows.y, 0.5) != key
    changed = rows.x.copy()
    changed[7, 1] = np.nextafter(changed[7, 1], np.inf)
    assert fit_key(changed, rows.y, 1.0) != key
    assert fit_key(rows.x, ~rows.y, 1.0) != key


def test_a_worker_killed_mid_backtest_leaves_the_fits_inline(inputs: PlanInputs) -> None:
    """SIGKILL of the fitting process (the OOM killer's way): the pool breaks once, logs
    it, and every later ``fitted`` is a miss (the strategy fits inline), never an error."""
    pool = PrefitPool(inputs)
    try:
        ((_, future),) = list(pool._pending.values())[:1]
        workers = list(pool._executor._processes.values())
        assert workers
        for proc in workers:
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(BrokenExecutor):
            future.result(timeout=60)
        key = next(iter(pool._pending))
        with capture_logs() as logs:
            assert pool.fitted(key, inputs.sessions[0]) is None
            assert pool.fitted(b"any other key", inputs.sessions[1]) is None
        assert pool.broken
        assert pool.missed == 2
        assert [e["event"] for e in logs] == ["ml_prefit_broken"]
    finally:
        pool.close()
