"""A backtest's ML fits, made ahead of the replay in worker processes.

Live, ``MlMomentum`` fits on its cadence inside the cycle. A backtest knows every
session's market in advance (``PrecomputedMarket``), so it also knows the rows each
due fit will read: ``planned_fits`` walks the sessions with the strategy's own
cadence rule (``retrain_every_days`` sessions after the last fit; a session whose
data halts the cycle runs no strategy) and yields each fit's training rows, built
by the same functions the strategy uses (``market_snapshot``, ``training_rows``).
``PrefitPool`` fits them in a process pool, a few fits ahead of the replay, so the
fits run on another core while the replay goes on.

The strategy asks the pool by ``fit_key`` -- a digest of the rows, labels and
estimator parameters -- and fits inline when the pool has no model for that key. A
plan that guessed wrong (a fit that failed, a cycle that ended early) costs time,
never a different model: the pool then plans again from the session the strategy
really fitted at. No model fitted on bars after a session is ever used on it: a
key names exactly the rows the strategy would read that day.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import structlog

from actors.data_feed.actor import market_snapshot
from actors.data_feed.market import PrecomputedMarket
from actors.market.calendar import ExchangeCalendar
from actors.strategies.ml_fit import TrainingRows, fit_key, fit_pipeline, training_rows
from actors.strategies.ml_momentum import FEATURES
from actors.strategies.params import MlMomentumParams

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = structlog.get_logger()

AHEAD = 3
"""Fits submitted ahead of the replay (each holds its rows: 8 MB per 500 symbols)."""


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What the plan reads: the market, the sessions, and the keys that shape a snapshot."""

    market: PrecomputedMarket
    calendar: ExchangeCalendar
    sessions: Sequence[dt.date]
    symbols: list[str]
    history_days: int
    params: MlMomentumParams


def planned_fits(
    inputs: PlanInputs, start: int = 0, trained_through: dt.date | None = None
) -> Iterator[tuple[int, TrainingRows]]:
    """(session index, training rows) of each fit the strategy will make, from ``start``.

    ``trained_through``: the last panel date of the model the strategy holds before
    ``sessions[start]`` (None: no model, so the first session fits).
    """
    p = inputs.params
    for i in range(start, len(inputs.sessions)):
        asof = inputs.sessions[i]
        dates = _window_dates(inputs.market, asof, inputs.history_days)
        if trained_through is not None and not _due(dates, trained_through, p):
            continue
        rows = _rows_at(inputs, asof)
        if rows is None:
            continue  # the data halts this cycle: no strategy runs, the fit stays due
        if isinstance(rows, str) or rows.n < p.min_train_rows or rows.positives in (0, rows.n):
            trained_through = None  # no model: due again the next session
            continue
        yield i, rows
        trained_through = dates[-1].date()


def _window_dates(market: PrecomputedMarket, asof: dt.date, history_days: int) -> pd.DatetimeIndex:
    """The dates of ``market.window(asof, history_days)``, without building the window."""
    dates = market.panel.dates
    stop = int(dates.searchsorted(pd.Timestamp(asof), side="left"))
    return dates[max(0, stop - history_days) : stop]


def _due(dates: pd.DatetimeIndex, trained_through: dt.date, p: MlMomentumParams) -> bool:
    """``MlMomentum``'s cadence: ``retrain_every_days`` panel sessions after the last fit."""
    if len(dates) == 0 or trained_through > dates[-1].date():
        return True
    since = len(dates) - int(dates.searchsorted(pd.Timestamp(trained_through), "right"))
    return since >= p.retrain_every_days


def _rows_at(inputs: PlanInputs, asof: dt.date) -> TrainingRows | str | None:
    """The rows the strategy would fit on at ``asof``; None when the data halts the cycle,
    a string when there is no history to fit on."""
    calendar = inputs.calendar
    last_session = calendar.previous_session(asof)
    report, indicators = market_snapshot(
        inputs.market,
        symbols=inputs.symbols,
        asof=asof,
        last_session=last_session,
        window=calendar.sessions_back(last_session, inputs.history_days),
        history_days=inputs.history_days,
    )
    if report.halt:
        return None
    if not report.valid_symbols:
        return "no valid symbols"
    features = [indicators[k] for k in FEATURES]
    rows = training_rows(
        report.panel.close, features, inputs.params.horizon_days, inputs.params.train_window_days
    )
    return "no labelled row" if rows is None else rows


class PrefitPool:
    """Fits ``planned_fits`` in worker processes, ``AHEAD`` of the replay; a ``FitSource``.

    ``fitted`` blocks until the model for ``key`` is ready (it was planned) or returns
    None at once (it was not: the caller fits inline, and the plan restarts after that
    session). A pool whose worker died (killed, out of memory) is broken for good: it is
    logged once and every later fit is made inline, so the strategy never fails for it.
    Close it when the backtest ends.
    """

    def __init__(self, inputs: PlanInputs, *, workers: int = 1) -> None:
        self._inputs = inputs
        self._index = {day: i for i, day in enumerate(inputs.sessions)}
        context = multiprocessing.get_context("forkserver")
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        self._plan = planned_fits(inputs)
        self._pending: dict[bytes, tuple[int, Future[Pipeline]]] = {}
        self.used = 0
        self.missed = 0
        self.broken = False
        self._top_up()

    def fitted(self, key: bytes, asof: dt.date) -> Pipeline | None:
        if self.broken:
            self.missed += 1
            return None
        entry = self._pending.pop(key, None)
        if entry is None:
            self.missed += 1
            self._replan(asof)
            return None
        session, future = entry
        # Fits planned before this one can no longer be asked for.
        for stale in [k for k, (i, _) in self._pending.items() if i < session]:
            self._pending.pop(stale)[1].cancel()
        try:
            model = future.result()
        except BrokenExecutor as exc:  # the worker died: inline from now on
            self._break(exc)
            self.missed += 1
            return None
        except Exception as exc:  # a fit failed: the strategy fits this one inline
            log.warning("ml_prefit_failed", error=f"{type(exc).__name__}: {exc}")
            self.missed += 1
            return None
        self.used += 1
        self._top_up()
        return model

    def _replan(self, asof: dt.date) -> None:
        """The strategy fits inline at ``asof``: plan again from the session after it."""
        for _, future in self._pending.values():
            future.cancel()
        self._pending.clear()
        start = self._index.get(asof)
        if start is None:
            self._plan = iter(())
            return
        dates = _window_dates(self._inputs.market, asof, self._inputs.history_days)
        through = dates[-1].date() if len(dates) else None
        self._plan = planned_fits(self._inputs, start + 1, through)
        self._top_up()

    def _break(self, exc: BaseException) -> None:
        """The worker is gone: drop the plan, fit inline from now on (logged once)."""
        self.broken = True
        self._pending.clear()
        self._plan = iter(())
        log.warning("ml_prefit_broken", error=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Stop the workers (fits not started are dropped); log what the pool did."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        log.info("ml_prefit_finished", used=self.used, missed=self.missed)

    def _top_up(self) -> None:
        while len(self._pending) < AHEAD:
            planned = next(self._plan, None)
            if planned is None:
                return
            session, rows = planned
            c = self._inputs.params.regularization_c
            try:
                future = self._executor.submit(fit_pipeline, rows.x, rows.y, c)
            except BrokenExecutor as exc:
                self._break(exc)
                return
            self._pending[fit_key(rows.x, rows.y, c)] = (session, future)
