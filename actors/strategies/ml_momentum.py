"""ML momentum: a pooled logistic regression of P(return over ``horizon_days`` > 0).

Model: ``Pipeline([StandardScaler(), LogisticRegression(C=regularization_c)])``
(lbfgs; on standardised features it converges in a few dozen iterations, far
below ``MAX_ITER``), fitted on every (session, symbol) row of the training
window pooled across symbols.

Features at row t (the reference's list), read from the indicators:
``ret1, ret5, ret20, price_sma20_ratio, price_sma100_ratio, rsi14,
volatility20, volume_ratio``. Label at row t: ``close[t + h] / close[t] - 1 > 0``.

No look-ahead: a row is trainable only when its label is known inside the
panel (``t + h <= T - 1``), and the panel itself ends before ``asof``. The
training window is the last ``train_window_days`` labelled rows (so the window
is ``[T-1-h-W+1, T-1-h]`` and the newest close a label reads is row T-1); rows
with any non-finite feature or label are dropped; fewer than ``min_train_rows``
rows, or labels of one class only, mean no model: no entries and no
model-reversal exits (time exits still run), with the reason in
``last_diagnostic``.

Walk-forward cadence: the fitted model is kept with the panel date it was
trained through (the last close it saw) and reused until
``retrain_every_days`` sessions have passed since then. A model trained
through a date after the panel's last (a rewound backtest, a newer saved
state) is never used: it is refitted on what the panel allows.

Signals: entry when ``P > probability_entry`` for the strongest
``max_entries`` symbols not held (confidence = P); exit after ``hold_days``
sessions held, or when the model reverses (``P < 0.5`` for a held symbol).

The training rows and the fit are the plain functions of ``actors.strategies.ml_fit``.
Given a ``FitSource`` (a backtest's models fitted ahead in other processes), a due
fit first asks it for the model fitted on exactly these rows (by digest) and fits
inline only when it has none: the model is the same either way.
"""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from actors.data_feed.panel import FloatArray
from actors.messages import Signal
from actors.strategies.base import Strategy, StrategyContext
from actors.strategies.ml_fit import FitSource, fit_key, fit_pipeline, training_rows
from actors.strategies.params import MlMomentumParams

if TYPE_CHECKING:  # sklearn costs ~1.2 s to import: loaded on the first fit or load
    from sklearn.pipeline import Pipeline

FEATURES: tuple[str, ...] = (
    "ret1",
    "ret5",
    "ret20",
    "price_sma20_ratio",
    "price_sma100_ratio",
    "rsi14",
    "volatility20",
    "volume_ratio",
)
REVERSAL_PROBABILITY = 0.5


class FitStatus(StrEnum):
    """What happened to the model in the last ``generate``."""

    FITTED = "fitted"
    REUSED = "reused"
    NO_HISTORY = "no_history"  # no row has a known label yet
    INSUFFICIENT_ROWS = "insufficient_rows"
    SINGLE_CLASS = "single_class"


@dataclass(frozen=True, slots=True)
class ModelState:
    """A fitted model and its provenance, to persist (``models`` table) and reload."""

    trained_through: dt.date  # the last panel session the fit saw (the newest label close)
    train_from: dt.date  # the first feature session of the training window
    n_rows: int
    features: tuple[str, ...]
    horizon_days: int
    coefficients: tuple[tuple[str, float], ...]  # per standardised feature
    intercept: float
    positive_rate: float  # share of training labels that were positive
    pickled: bytes  # pickle.dumps(pipeline)

    def summary(self) -> dict[str, Any]:
        """JSON-able description without the pickled model."""
        return {
            "trained_through": self.trained_through.isoformat(),
            "train_from": self.train_from.isoformat(),
            "n_rows": self.n_rows,
            "features": list(self.features),
            "horizon_days": self.horizon_days,
            "coefficients": dict(self.coefficients),
            "intercept": self.intercept,
            "positive_rate": self.positive_rate,
        }


@dataclass(frozen=True, slots=True)
class MlDiagnostic:
    """Why the last ``generate`` had (or had no) model, and what it saw."""

    asof: dt.date
    status: FitStatus
    detail: str
    panel_rows: int  # T
    n_train_rows: int  # rows in the fit (0 when no fit happened this cycle)
    max_label_index: int | None  # highest panel row a training label read; always < T
    n_scored: int  # symbols with a probability this cycle
    n_iter: int | None = None  # lbfgs iterations of this cycle's fit


class MlMomentum(Strategy):
    """The reference system's ``strategy_ml_momentum``, walk-forward and restartable."""

    name: ClassVar[str] = "ml_momentum"
    params: MlMomentumParams

    def __init__(
        self, params: MlMomentumParams | None = None, *, fits: FitSource | None = None
    ) -> None:
        super().__init__(params if params is not None else MlMomentumParams())
        self._fits = fits  # models fitted ahead of time (a backtest's); None: fit inline
        self._pipeline: Pipeline | None = None
        self._state: ModelState | None = None
        self._proba: FloatArray | None = None
        self.fit_count = 0
        self.last_diagnostic: MlDiagnostic | None = None

    # ------------------------------------------------------------ persistence

    def model_state(self) -> ModelState | None:
        """The current model with its provenance, or None before the first successful fit."""
        return self._state

    def load_model_state(self, state: ModelState) -> None:
        """Adopt a persisted model (from our own ``models`` table); refit rules still apply.

        Raises ValueError when the bytes do not unpickle to a fitted Pipeline
        (corrupt blob, or a scikit-learn version that cannot read it).
        """
        try:
            # The bytes were written by model_state() into our own database, never
            # received from outside: unpickling them is loading our own artefact.
            pipeline = pickle.loads(state.pickled)  # noqa: S301
        except Exception as exc:  # any unpickling failure means "no usable model"
            raise ValueError(f"model state does not unpickle: {type(exc).__name__}: {exc}") from exc
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline) or not hasattr(pipeline, "predict_proba"):
            raise ValueError(f"model state holds a {type(pipeline).__name__}, not a Pipeline")
        self._pipeline = pipeline
        self._state = state

    def last_probabilities(self) -> FloatArray | None:
        """P(up) per panel column from the last ``generate`` (NaN where unscored)."""
        return None if self._proba is None else self._proba.copy()

    # ------------------------------------------------------------ signals

    def generate(self, ctx: StrategyContext) -> list[Signal]:
        """Refit when due, score the last row, then time/reversal exits and top-P entries."""
        p = self.params
        features = [ctx.indicator(k) for k in FEATURES]
        fit = self._ensure_model(ctx, features)
        n_symbols = len(ctx.panel.symbols)
        proba = np.full(n_symbols, np.nan)
        if self._pipeline is not None and len(ctx.panel.dates):
            x_last = np.column_stack([f[-1] for f in features])
            scorable = np.isfinite(x_last).all(axis=1)
            if scorable.any():
                proba[scorable] = self._pipeline.predict_proba(x_last[scorable])[:, 1]
        self._proba = proba
        n_scored = int(np.isfinite(proba).sum())
        self.last_diagnostic = MlDiagnostic(
            asof=ctx.asof,
            status=fit.status,
            detail=fit.detail,
            panel_rows=len(ctx.panel.dates),
            n_train_rows=fit.n_rows,
            max_label_index=fit.max_label_index,
            n_scored=n_scored,
            n_iter=fit.n_iter,
        )

        signals: list[Signal] = []
        for position, col in ctx.held_columns():
            reasons: list[str] = []
            days = self.held_days(position, ctx)
            if days >= p.hold_days:
                reasons.append(f"held {days} sessions >= {p.hold_days}")
            if col is not None and proba[col] < REVERSAL_PROBABILITY:
                reasons.append(
                    f"model reversal: P({p.horizon_days}d return > 0) {proba[col]:.3f} "
                    f"< {REVERSAL_PROBABILITY:.2f}"
                )
            if reasons:
                signals.append(self.sell(position, col, ctx, "; ".join(reasons)))
        n_exits = len(signals)

        ok = self.tradable(ctx) & np.isfinite(proba)
        mask = ok & (proba > p.probability_entry)
        candidates = np.flatnonzero(mask)
        candidates = candidates[np.argsort(-proba[candidates], kind="stable")][: p.max_entries]
        ret5, ret20, rsi = (ctx.last(k) for k in ("ret5", "ret20", "rsi14"))
        state = self._state

        def reasoning(col: int) -> str:
            trained = (
                f"; model through {state.trained_through}, {state.n_rows:,} rows"
                if state is not None
                else ""
            )
            return (
                f"P({p.horizon_days}d return > 0) {proba[col]:.3f} > "
                f"{p.probability_entry:.2f}; ret5 {ret5[col]:+.1%}, ret20 {ret20[col]:+.1%}, "
                f"RSI {rsi[col]:.1f}{trained}"
            )

        signals.extend(self.entries(ctx, candidates, proba, reasoning))
        self._diagnostics = {
            "model": fit.status.value,
            "model_detail": fit.detail,
            "screened": n_scored,
            "candidates": int(mask.sum()),
            "entries": len(signals) - n_exits,
            "exits": n_exits,
        }
        return signals

    # ------------------------------------------------------------ model

    def _refit_due(self, ctx: StrategyContext) -> str | None:
        """Why the kept model must be refitted now, or None to reuse it."""
        state = self._state
        if state is None or self._pipeline is None:
            return "no model"
        if state.features != FEATURES or state.horizon_days != self.params.horizon_days:
            return "model was trained on other features or horizon"
        last = ctx.panel.last_date
        if last is None:
            return "empty panel"
        if state.trained_through > last:
            return f"model trained through {state.trained_through}, after the panel's {last}"
        dates = ctx.panel.dates
        since = len(dates) - int(dates.searchsorted(pd.Timestamp(state.trained_through), "right"))
        if since >= self.params.retrain_every_days:
            return f"{since} sessions since the last fit"
        return None

    def _ensure_model(self, ctx: StrategyContext, features: list[FloatArray]) -> _Fit:
        why = self._refit_due(ctx)
        if why is None:
            state = self._state
            assert state is not None
            return _Fit(FitStatus.REUSED, f"trained through {state.trained_through}")
        fit = self._fit(ctx, features)
        if fit.status is not FitStatus.FITTED:
            # A model that is due but cannot be refitted is not trusted any longer.
            self._pipeline = None
            self._state = None
        return fit

    def _fit(self, ctx: StrategyContext, features: list[FloatArray]) -> _Fit:
        p = self.params
        h = p.horizon_days
        t_rows = len(ctx.panel.dates)
        rows = training_rows(ctx.panel.close, features, h, p.train_window_days)
        if rows is None:
            return _Fit(FitStatus.NO_HISTORY, f"{t_rows} sessions, labels need > {h}")
        n, positives = rows.n, rows.positives
        if n < p.min_train_rows:
            return _Fit(
                FitStatus.INSUFFICIENT_ROWS,
                f"{n} finite training rows < {p.min_train_rows}",
                n_rows=n,
                max_label_index=rows.max_label,
            )
        if positives in (0, n):
            return _Fit(
                FitStatus.SINGLE_CLASS,
                f"all {n} training labels are {'up' if positives else 'not up'}",
                n_rows=n,
                max_label_index=rows.max_label,
            )
        pipeline = None
        if self._fits is not None:
            pipeline = self._fits.fitted(fit_key(rows.x, rows.y, p.regularization_c), ctx.asof)
        if pipeline is None:
            pipeline = fit_pipeline(rows.x, rows.y, p.regularization_c, overwrite_x=True)
        logit = pipeline.named_steps["logit"]
        dates = ctx.panel.dates
        first = dates[rows.first_row].date()
        self._pipeline = pipeline
        self._state = ModelState(
            trained_through=dates[t_rows - 1].date(),
            train_from=first,
            n_rows=n,
            features=FEATURES,
            horizon_days=h,
            coefficients=tuple(
                (name, float(c)) for name, c in zip(FEATURES, logit.coef_[0], strict=True)
            ),
            intercept=float(logit.intercept_[0]),
            positive_rate=positives / n,
            pickled=pickle.dumps(pipeline),
        )
        self.fit_count += 1
        n_iter = int(np.max(logit.n_iter_))
        return _Fit(
            FitStatus.FITTED,
            f"fitted on {n:,} rows {first}..{dates[rows.last_row].date()}, "
            f"{positives / n:.1%} up, {n_iter} iterations",
            n_rows=n,
            max_label_index=rows.max_label,
            n_iter=n_iter,
        )


@dataclass(frozen=True, slots=True)
class _Fit:
    status: FitStatus
    detail: str
    n_rows: int = 0
    max_label_index: int | None = None
    n_iter: int | None = None
