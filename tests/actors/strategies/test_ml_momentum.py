"""ML momentum: walk-forward logistic regression without look-ahead."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

from actors.data_feed.panel import BarPanel, FloatArray
from actors.messages import HeldPosition, SignalAction
from actors.strategies.base import StrategyContext
from actors.strategies.ml_momentum import FEATURES, FitStatus, MlMomentum, ModelState
from actors.strategies.params import MlMomentumParams

H = 5
PARAMS = MlMomentumParams(
    horizon_days=H,
    hold_days=5,
    train_window_days=60,
    retrain_every_days=5,
    min_train_rows=200,
    max_entries=5,
)
STRONG = 5  # columns 0..4 get a strongly bullish last-row signal


def random_panel(t: int, n: int, seed: int) -> BarPanel:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (t, n)), axis=0))
    high, low = close * 1.01, close * 0.99
    volume = rng.uniform(1e5, 2e5, (t, n))
    dates = pd.bdate_range("2023-01-02", periods=t)
    return BarPanel(dates, tuple(f"S{i:02d}" for i in range(n)), close, high, low, close, volume)


def planted(t: int = 120, n: int = 30, seed: int = 7) -> tuple[BarPanel, dict[str, FloatArray]]:
    """A panel whose ``ret20`` feature is (noisily) the future label: a learnable signal."""
    panel = random_panel(t, n, seed)
    rng = np.random.default_rng(seed + 1)
    indicators = {k: rng.normal(0.0, 1.0, (t, n)) for k in FEATURES}
    forward = panel.close[H:] / panel.close[:-H] - 1.0
    indicators["ret20"][:-H] = forward / forward.std() + rng.normal(0.0, 0.3, forward.shape)
    indicators["ret20"][-1, :STRONG] = 3.0
    indicators["ret20"][-1, STRONG:] = -3.0
    indicators["atr14"] = np.full((t, n), 1.0)
    return panel, indicators


def ctx_at(
    panel: BarPanel,
    indicators: dict[str, FloatArray],
    k: int,
    positions: dict[str, HeldPosition] | None = None,
) -> StrategyContext:
    """The context for session ``dates[k]``: rows 0..k-1 of the panel and indicators."""
    asof = panel.dates[k].date() if k < len(panel.dates) else None
    if asof is None:
        asof = (panel.dates[-1] + pd.offsets.BDay(1)).date()
    cut = panel.before(asof)
    rows = {key: v[: len(cut.dates)] for key, v in indicators.items()}
    return StrategyContext(asof, cut, rows, positions or {}, 100_000.0)


def features_from_panel(panel: BarPanel) -> dict[str, FloatArray]:
    """Causal features computed locally from the bars (a stand-in for the data feed's)."""
    close = pd.DataFrame(panel.close)
    volume = pd.DataFrame(panel.volume)
    delta = close.diff()
    gain = delta.clip(lower=0).rolling(14).mean()
    loss = (-delta).clip(lower=0).rolling(14).mean()
    out = {
        "ret1": close / close.shift(1) - 1,
        "ret5": close / close.shift(5) - 1,
        "ret20": close / close.shift(20) - 1,
        "price_sma20_ratio": close / close.rolling(20).mean(),
        "price_sma100_ratio": close / close.rolling(100).mean(),
        "rsi14": 100 - 100 / (1 + gain / loss),
        "volatility20": pd.DataFrame(np.log(panel.close)).diff().rolling(20).std(),
        "volume_ratio": volume / volume.shift(1).rolling(20).mean(),
        "atr14": pd.DataFrame(panel.high - panel.low).rolling(14).mean(),
    }
    return {k: v.to_numpy(dtype=np.float64) for k, v in out.items()}


def test_learns_planted_signal() -> None:
    """A feature that predicts the label yields entries with P > 0.6 for the bullish symbols."""
    panel, ind = planted()
    strategy = MlMomentum(PARAMS)
    signals = strategy.generate(ctx_at(panel, ind, len(panel.dates)))
    assert {s.symbol for s in signals} == {f"S{i:02d}" for i in range(STRONG)}
    for s in signals:
        assert s.action is SignalAction.BUY
        assert s.confidence > 0.6
        assert f"P(5d return > 0) {s.confidence:.3f} > 0.60" in s.reasoning
    proba = strategy.last_probabilities()
    assert proba is not None
    assert np.all(proba[STRONG:] < 0.5)
    state = strategy.model_state()
    assert state is not None
    assert dict(state.coefficients)["ret20"] > 1.0
    assert strategy.last_diagnostic is not None
    assert strategy.last_diagnostic.status is FitStatus.FITTED


def test_no_look_ahead() -> None:
    """Rewriting every bar from asof on changes nothing: signals and probabilities are identical."""
    full = random_panel(220, 12, seed=3)
    k = 180
    params = PARAMS.model_copy(update={"probability_entry": 0.51, "max_entries": 12})
    first = MlMomentum(params)
    before = first.generate(ctx_at(full, features_from_panel(full), k))
    rng = np.random.default_rng(99)
    changed = {}
    for name in ("open", "high", "low", "close", "volume"):
        arr = getattr(full, name).copy()
        arr[k:] = arr[k:] * rng.uniform(0.2, 5.0, arr[k:].shape)
        changed[name] = arr
    altered = BarPanel(full.dates, full.symbols, **changed)
    second = MlMomentum(params)
    after = second.generate(ctx_at(altered, features_from_panel(altered), k))
    assert before == after
    p1, p2 = first.last_probabilities(), second.last_probabilities()
    assert p1 is not None
    assert p2 is not None
    assert np.isfinite(p1).all()
    np.testing.assert_array_equal(p1, p2)
    diag = first.last_diagnostic
    assert diag is not None
    assert diag.status is FitStatus.FITTED
    assert diag.max_label_index is not None
    assert diag.max_label_index < diag.panel_rows == k


def test_training_labels_end_at_last_panel_row() -> None:
    """The newest label read is the panel's last close; the window is train_window_days rows."""
    panel, ind = planted()
    strategy = MlMomentum(PARAMS)
    ctx = ctx_at(panel, ind, 100)
    strategy.generate(ctx)
    state, diag = strategy.model_state(), strategy.last_diagnostic
    assert state is not None
    assert diag is not None
    assert diag.max_label_index == 99
    assert state.trained_through == panel.dates[99].date()
    assert state.train_from == panel.dates[99 - H - 60 + 1].date()
    assert state.n_rows == 60 * 30


def test_retrain_cadence() -> None:
    """The model is refitted every retrain_every_days sessions and reused in between."""
    panel, ind = planted()
    strategy = MlMomentum(PARAMS)
    statuses, through = [], []
    for k in range(100, 111):
        strategy.generate(ctx_at(panel, ind, k))
        assert strategy.last_diagnostic is not None
        statuses.append(strategy.last_diagnostic.status)
        state = strategy.model_state()
        assert state is not None
        through.append(state.trained_through)
    assert strategy.fit_count == 3
    fitted = [i for i, s in enumerate(statuses) if s is FitStatus.FITTED]
    assert fitted == [0, 5, 10]
    assert through[4] == panel.dates[99].date()
    assert through[5] == panel.dates[104].date()


def test_model_trained_past_the_panel_is_refitted() -> None:
    """Rewinding (a backtest) refits rather than use a model that saw the future."""
    panel, ind = planted()
    strategy = MlMomentum(PARAMS)
    strategy.generate(ctx_at(panel, ind, 110))
    strategy.generate(ctx_at(panel, ind, 100))
    state = strategy.model_state()
    assert state is not None
    assert state.trained_through == panel.dates[99].date()
    assert strategy.fit_count == 2


def test_model_state_round_trip() -> None:
    """A reloaded model state gives identical probabilities and signals without refitting."""
    panel, ind = planted()
    ctx = ctx_at(panel, ind, len(panel.dates))
    original = MlMomentum(PARAMS)
    signals = original.generate(ctx)
    state = original.model_state()
    assert state is not None
    restored_state = pickle.loads(pickle.dumps(state))
    assert isinstance(restored_state, ModelState)
    restored = MlMomentum(PARAMS)
    restored.load_model_state(restored_state)
    assert restored.generate(ctx) == signals
    assert restored.fit_count == 0
    assert restored.last_diagnostic is not None
    assert restored.last_diagnostic.status is FitStatus.REUSED
    p1, p2 = original.last_probabilities(), restored.last_probabilities()
    assert p1 is not None
    assert p2 is not None
    np.testing.assert_array_equal(p1, p2)
    assert state.summary()["n_rows"] == state.n_rows


def test_single_class_labels_give_no_entries() -> None:
    """Prices that only rise give one label class: no fit, no entries, a diagnostic, no error."""
    panel, ind = planted()
    rising = np.cumsum(np.ones(panel.close.shape), axis=0) + 50.0
    up = BarPanel(panel.dates, panel.symbols, rising, rising, rising, rising, panel.volume)
    held = HeldPosition("S01", 10, up.dates[-3].date(), 100.0)
    strategy = MlMomentum(PARAMS)
    signals = strategy.generate(ctx_at(up, ind, len(up.dates), {"S01": held}))
    assert signals == []
    assert strategy.model_state() is None
    assert strategy.fit_count == 0
    diag = strategy.last_diagnostic
    assert diag is not None
    assert diag.status is FitStatus.SINGLE_CLASS
    assert "up" in diag.detail
    assert strategy.diagnostics()["model"] == "single_class"


def test_too_few_rows_give_no_entries() -> None:
    """Fewer finite training rows than min_train_rows: no model, no entries."""
    panel, ind = planted()
    params = PARAMS.model_copy(update={"min_train_rows": 60 * 30 + 1})
    strategy = MlMomentum(params)
    assert strategy.generate(ctx_at(panel, ind, len(panel.dates))) == []
    assert strategy.last_diagnostic is not None
    assert strategy.last_diagnostic.status is FitStatus.INSUFFICIENT_ROWS


def test_nan_feature_skips_symbol() -> None:
    """A NaN feature on the last row leaves that symbol unscored and unbought."""
    panel, ind = planted()
    ind["volatility20"][-1, 0] = np.nan
    strategy = MlMomentum(PARAMS)
    signals = strategy.generate(ctx_at(panel, ind, len(panel.dates)))
    assert {s.symbol for s in signals} == {f"S{i:02d}" for i in range(1, STRONG)}
    proba = strategy.last_probabilities()
    assert proba is not None
    assert np.isnan(proba[0])


def test_exits_on_hold_days_and_model_reversal() -> None:
    """Held 5 sessions or P < 0.5 sells; a held bullish symbol is neither sold nor bought."""
    panel, ind = planted()
    dates = panel.dates
    positions = {
        "S00": HeldPosition("S00", 11, dates[-2].date(), 100.0),  # bullish, held 2: keep
        "S01": HeldPosition("S01", 12, dates[-5].date(), 100.0),  # held 5: time exit
        "S10": HeldPosition("S10", 13, dates[-2].date(), 100.0),  # bearish: reversal exit
    }
    strategy = MlMomentum(PARAMS)
    signals = strategy.generate(ctx_at(panel, ind, len(dates), positions))
    sells = {s.symbol: s for s in signals if s.action is SignalAction.SELL}
    buys = {s.symbol for s in signals if s.action is SignalAction.BUY}
    assert set(sells) == {"S01", "S10"}
    assert sells["S01"].shares == 12
    assert "held 5 sessions >= 5" in sells["S01"].reasoning
    assert "model reversal" in sells["S10"].reasoning
    assert buys == {"S02", "S03", "S04"}


def test_deterministic() -> None:
    """Two fresh strategies on the same context produce the same signals."""
    panel, ind = planted()
    ctx = ctx_at(panel, ind, len(panel.dates))
    assert MlMomentum(PARAMS).generate(ctx) == MlMomentum(PARAMS).generate(ctx)


def test_short_history_has_no_model() -> None:
    """A panel shorter than the label horizon fits nothing and emits nothing."""
    panel, ind = planted()
    strategy = MlMomentum(PARAMS)
    assert strategy.generate(ctx_at(panel, ind, 3)) == []
    assert strategy.last_diagnostic is not None
    assert strategy.last_diagnostic.status is FitStatus.NO_HISTORY


def test_corrupt_model_state_raises_value_error() -> None:
    """Bytes that do not unpickle to a Pipeline are refused with ValueError."""
    panel, ind = planted()
    strategy = MlMomentum(PARAMS)
    strategy.generate(ctx_at(panel, ind, len(panel.dates)))
    state = strategy.model_state()
    assert state is not None
    fresh = MlMomentum(PARAMS)
    for blob in (b"not a pickle", pickle.dumps({"a": 1})):
        with pytest.raises(ValueError, match="model state"):
            fresh.load_model_state(dataclasses.replace(state, pickled=blob))
    assert fresh.model_state() is None
