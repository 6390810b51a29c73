"""Indicators against TA-Lib and pandas, plus property tests on arbitrary valid panels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from actors.data_feed import indicators as ind
from actors.data_feed.panel import BarPanel

TOL = 1e-6
ROWS, SYMBOLS = 400, 6

# First row at which each indicator is defined on a gap-free panel.
WARM_UP = {
    "sma20": 19,
    "sma100": 99,
    "rsi14": 14,
    "rsi_slope": 15,
    "atr14": 14,
    "adx14": 27,
    "vwap20": 19,
    "momentum20": 20,
    "volume_ratio": 20,
    "ret1": 1,
    "ret5": 5,
    "ret20": 20,
    "volatility20": 20,
    "price_sma20_ratio": 19,
    "price_sma100_ratio": 99,
    "sma20_prev": 20,
    "sma100_prev": 100,
}


def random_walk(rows: int, symbols: int, seed: int) -> BarPanel:
    rng = np.random.default_rng(seed)
    start = rng.uniform(10.0, 400.0, symbols)
    close = start * np.exp(np.cumsum(rng.normal(0.0002, 0.02, (rows, symbols)), axis=0))
    open_ = close * np.exp(rng.normal(0.0, 0.008, (rows, symbols)))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, (rows, symbols))))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, (rows, symbols))))
    volume = np.round(rng.lognormal(13.0, 0.6, (rows, symbols)))
    return BarPanel(
        dates=pd.bdate_range("2024-01-02", periods=rows),
        symbols=tuple(f"S{i:04d}" for i in range(symbols)),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


@pytest.fixture(scope="module")
def panel() -> BarPanel:
    return random_walk(ROWS, SYMBOLS, seed=7)


def assert_close(actual: np.ndarray, expected: np.ndarray, tol: float = TOL) -> None:
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=0.0, atol=tol, equal_nan=True)


def per_column(panel: BarPanel, fn: Callable[[int], np.ndarray]) -> np.ndarray:
    return np.column_stack([fn(j) for j in range(len(panel.symbols))])


def test_sma_matches_talib(panel: BarPanel) -> None:
    """SMA(20) and SMA(100) equal talib.SMA per column."""
    for n in (20, 100):
        expected = np.column_stack(
            [talib.SMA(panel.close[:, j], n) for j in range(len(panel.symbols))]
        )
        assert_close(ind.sma(panel.close, n), expected)


def test_rsi_matches_talib(panel: BarPanel) -> None:
    """Wilder RSI(14) equals talib.RSI per column, warm-up included."""
    expected = per_column(panel, lambda j: talib.RSI(panel.close[:, j], 14))
    assert_close(ind.wilder_rsi(panel.close, 14), expected)


def test_atr_matches_talib(panel: BarPanel) -> None:
    """Wilder ATR(14) equals talib.ATR per column."""
    p = panel
    expected = per_column(p, lambda j: talib.ATR(p.high[:, j], p.low[:, j], p.close[:, j], 14))
    assert_close(ind.wilder_atr(p.high, p.low, p.close, 14), expected)


def test_adx_matches_talib_from_first_value(panel: BarPanel) -> None:
    """ADX(14) follows TA-Lib's seeding, so it matches talib.ADX from row 27 on."""
    p = panel
    expected = per_column(p, lambda j: talib.ADX(p.high[:, j], p.low[:, j], p.close[:, j], 14))
    actual = ind.adx(p.high, p.low, p.close, 14)
    assert_close(actual, expected)
    assert_close(actual[150:], expected[150:], tol=1e-9)


def test_momentum_matches_talib_roc(panel: BarPanel) -> None:
    """momentum(20) is talib.ROC(20) / 100 and talib.ROCR(20) - 1."""
    expected = per_column(panel, lambda j: talib.ROC(panel.close[:, j], 20) / 100.0)
    assert_close(ind.momentum(panel.close, 20), expected)
    rocr = per_column(panel, lambda j: talib.ROCR(panel.close[:, j], 20) - 1.0)
    assert_close(ind.momentum(panel.close, 20), rocr)


def test_true_range_matches_talib(panel: BarPanel) -> None:
    """true_range equals talib.TRANGE (NaN on the first row)."""
    p = panel
    expected = per_column(p, lambda j: talib.TRANGE(p.high[:, j], p.low[:, j], p.close[:, j]))
    assert_close(ind.true_range(p.high, p.low, p.close), expected)


def test_returns_match_pandas(panel: BarPanel) -> None:
    """ret1/ret5/ret20 equal pandas pct_change over the same horizon."""
    out = ind.compute_indicators(panel)
    frame = pd.DataFrame(panel.close)
    for k in (1, 5, 20):
        assert_close(out[f"ret{k}"], frame.pct_change(k).to_numpy(), tol=1e-12)


def test_vwap_matches_pandas_rolling(panel: BarPanel) -> None:
    """vwap20 is sum(typical * volume) / sum(volume) over 20 rows, as pandas computes it."""
    p = panel
    typical = pd.DataFrame((p.high + p.low + p.close) / 3.0)
    volume = pd.DataFrame(p.volume)
    expected = (typical * volume).rolling(20).sum() / volume.rolling(20).sum()
    assert_close(ind.rolling_vwap(p.high, p.low, p.close, p.volume, 20), expected.to_numpy())


def test_volume_ratio_uses_prior_twenty_days(panel: BarPanel) -> None:
    """volume_ratio divides today's volume by the mean of the previous 20 sessions."""
    volume = pd.DataFrame(panel.volume)
    expected = volume / volume.rolling(20).mean().shift(1)
    assert_close(ind.volume_ratio(panel.volume, 20), expected.to_numpy(), tol=1e-9)


def test_volume_spike_does_not_dilute_its_baseline() -> None:
    """A 10x volume day reads exactly 10 against a flat prior baseline."""
    volume = np.full(30, 1000.0)
    volume[25] = 10_000.0
    assert ind.volume_ratio(volume, 20)[25] == pytest.approx(10.0)


def test_volatility_matches_pandas(panel: BarPanel) -> None:
    """volatility20 is the ddof=1 std of the last 20 daily log returns, not annualised."""
    log_ret = pd.DataFrame(np.log(panel.close)).diff()
    expected = log_ret.rolling(20).std(ddof=1).to_numpy()
    assert_close(ind.rolling_volatility(panel.close, 20), expected, tol=1e-10)


def test_compute_indicators_keys_shapes_and_warm_up(panel: BarPanel) -> None:
    """The set has exactly the agreed keys, each (T, N) float64, NaN only in warm-up."""
    out = ind.compute_indicators(panel)
    assert tuple(out) == ind.INDICATOR_KEYS
    assert set(out) == set(WARM_UP)
    for key, arr in out.items():
        assert arr.shape == panel.shape, key
        assert arr.dtype == np.float64, key
        assert np.isnan(arr[: WARM_UP[key]]).all(), key
        assert np.isfinite(arr[WARM_UP[key] :]).all(), key


def test_compute_indicators_derived_keys(panel: BarPanel) -> None:
    """Ratios, previous-day SMAs and the RSI slope derive from the base series."""
    out = ind.compute_indicators(panel)
    c = panel.close
    assert_close(out["price_sma20_ratio"], c / out["sma20"], tol=1e-12)
    assert_close(out["price_sma100_ratio"], c / out["sma100"], tol=1e-12)
    assert_close(out["sma20_prev"][1:], out["sma20"][:-1], tol=0.0)
    assert_close(out["sma100_prev"][1:], out["sma100"][:-1], tol=0.0)
    assert_close(out["rsi_slope"][1:], out["rsi14"][1:] - out["rsi14"][:-1], tol=0.0)
    assert_close(out["momentum20"], out["ret20"], tol=0.0)


def test_compute_indicators_outputs_are_read_only(panel: BarPanel) -> None:
    """Indicator arrays are shared by every strategy, so they refuse writes."""
    out = ind.compute_indicators(panel)
    with pytest.raises(ValueError, match="read-only"):
        out["rsi14"][-1, 0] = 0.0


def test_large_panel_threaded_path_matches_talib() -> None:
    """A panel big enough for the two-thread path gives the same numbers as TA-Lib."""
    p = random_walk(300, 800, seed=11)
    out = ind.compute_indicators(p)
    for j in (0, 399, 799):
        h, lo, c = p.high[:, j], p.low[:, j], p.close[:, j]
        assert_close(out["rsi14"][:, j], talib.RSI(c, 14))
        assert_close(out["atr14"][:, j], talib.ATR(h, lo, c, 14))
        assert_close(out["adx14"][:, j], talib.ADX(h, lo, c, 14))
        assert_close(out["sma100"][:, j], talib.SMA(c, 100))


def test_rsi_flat_prices_follow_talib() -> None:
    """Perfectly flat closes give RSI 0 (TA-Lib's convention), rising-only closes 100."""
    flat = np.full(40, 25.0)
    assert_close(ind.wilder_rsi(flat), talib.RSI(flat, 14))
    assert ind.wilder_rsi(flat)[-1] == 0.0
    rising = np.linspace(10.0, 20.0, 40)
    assert_close(ind.wilder_rsi(rising), talib.RSI(rising, 14))
    assert ind.wilder_rsi(rising)[-1] == 100.0


def test_adx_without_directional_movement_follows_talib() -> None:
    """Flat bars (no +DM/-DM) give ADX 0 as in TA-Lib, and a later trend lifts it alike."""
    close = np.r_[np.full(40, 50.0), np.linspace(50.0, 80.0, 40)]
    high, low = close + 0.5, close - 0.5
    assert_close(ind.adx(high, low, close), talib.ADX(high, low, close, 14), tol=1e-9)


def test_constant_prices_give_exact_sma_and_vwap() -> None:
    """Rolling means of a constant series are exactly that constant (no prefix-sum drift)."""
    close = np.full((150, 2), 123.45)
    volume = np.full((150, 2), 1e6)
    assert (ind.sma(close, 20)[19:] == 123.45).all()
    assert (ind.sma(close, 100)[99:] == 123.45).all()
    assert (ind.rolling_vwap(close, close, close, volume, 20)[19:] == 123.45).all()
    assert (ind.rolling_volatility(close, 20)[20:] == 0.0).all()


def without_rows(panel: BarPanel, col: int, rows: list[int]) -> tuple[BarPanel, np.ndarray]:
    """Column ``col`` of ``panel`` with ``rows`` deleted, and the mask of the rows kept."""
    keep = np.ones(len(panel.dates), dtype=np.bool_)
    keep[rows] = False
    fields = {f: getattr(panel, f)[keep][:, [col]] for f in ("open", "high", "low", "close")}
    return (
        BarPanel(
            dates=panel.dates[keep],
            symbols=(panel.symbols[col],),
            volume=panel.volume[keep][:, [col]],
            **fields,
        ),
        keep,
    )


def with_gaps(panel: BarPanel, gaps: dict[int, list[int]]) -> BarPanel:
    """``panel`` with whole bars missing: column -> rows."""
    arrays = {f: getattr(panel, f).copy() for f in ("open", "high", "low", "close", "volume")}
    for col, rows in gaps.items():
        for arr in arrays.values():
            arr[rows, col] = np.nan
    return BarPanel(dates=panel.dates, symbols=panel.symbols, **arrays)


GAPS = {1: [150], 2: [10, 11, 200], 3: [399], 4: [0, 57, 58, 300], 5: [120]}


def test_missing_bars_are_skipped_not_propagated(panel: BarPanel) -> None:
    """With bars missing, every indicator equals the indicator on the series without those rows."""
    holed = with_gaps(panel, GAPS)
    out = ind.compute_indicators(holed)
    for col in range(len(panel.symbols)):
        deleted, keep = without_rows(panel, col, GAPS.get(col, []))
        expected = ind.compute_indicators(deleted)
        for key in ind.INDICATOR_KEYS:
            assert_close(out[key][keep, col], expected[key][:, 0], tol=1e-9)
            assert np.isnan(out[key][~keep, col]).all(), key


def test_one_missing_bar_does_not_blank_sma100(panel: BarPanel) -> None:
    """SMA(100) right after a missing bar is the mean of the 100 bars before it, not NaN."""
    holed = with_gaps(panel, {1: [250]})
    sma100 = ind.compute_indicators(holed)["sma100"][:, 1]
    assert np.isnan(sma100[250])
    assert np.isfinite(sma100[251:]).all()
    available = np.r_[panel.close[151:250, 1], panel.close[251, 1]]
    assert sma100[251] == pytest.approx(available.mean(), rel=1e-12)


def test_previous_sma_is_the_previous_available_bar(panel: BarPanel) -> None:
    """sma20_prev after a gap is SMA(20) at the bar before the gap, so a cross is still seen."""
    holed = with_gaps(panel, {2: [300]})
    out = ind.compute_indicators(holed)
    assert out["sma20_prev"][301, 2] == out["sma20"][299, 2]
    assert out["sma100_prev"][301, 2] == out["sma100"][299, 2]
    assert out["ret1"][301, 2] == pytest.approx(panel.close[301, 2] / panel.close[299, 2] - 1.0)


def test_gap_results_match_talib_on_the_deleted_series(panel: BarPanel) -> None:
    """The public functions skip missing rows too: TA-Lib on the series without them agrees."""
    h, lo, c = panel.high.copy(), panel.low.copy(), panel.close.copy()
    for arr in (h, lo, c):
        arr[[150, 151, 260], 1] = np.nan
    keep = np.isfinite(c[:, 1])
    hk, lk, ck = h[keep, 1], lo[keep, 1], c[keep, 1]
    assert_close(ind.wilder_rsi(c)[keep, 1], talib.RSI(ck, 14))
    assert_close(ind.wilder_atr(h, lo, c)[keep, 1], talib.ATR(hk, lk, ck, 14))
    assert_close(ind.adx(h, lo, c)[keep, 1], talib.ADX(hk, lk, ck, 14))
    assert_close(ind.sma(c, 100)[keep, 1], talib.SMA(ck, 100))
    assert np.isnan(ind.wilder_rsi(c)[~keep, 1]).all()
    # the untouched columns are unaffected
    assert_close(ind.wilder_rsi(c)[:, 0], talib.RSI(c[:, 0], 14))


def test_short_history_matches_talib_on_its_valid_rows(panel: BarPanel) -> None:
    """A symbol listed late (leading NaN) gets the same values as TA-Lib on its own rows."""
    h, lo, c = panel.high.copy(), panel.low.copy(), panel.close.copy()
    for arr in (h, lo, c):
        arr[:120, 2] = np.nan
    rows = slice(120, None)
    assert np.isnan(ind.wilder_rsi(c)[:120, 2]).all()
    assert_close(ind.wilder_rsi(c)[rows, 2], talib.RSI(c[rows, 2], 14))
    assert_close(ind.adx(h, lo, c)[rows, 2], talib.ADX(h[rows, 2], lo[rows, 2], c[rows, 2]))
    assert_close(ind.sma(c, 100)[rows, 2], talib.SMA(c[rows, 2], 100))


def test_stale_symbol_keeps_its_values_up_to_its_last_bar(panel: BarPanel) -> None:
    """Trailing missing rows (a stale symbol) leave the earlier rows as they were."""
    out = ind.compute_indicators(with_gaps(panel, {3: list(range(390, 400))}))
    full = ind.compute_indicators(panel)
    for key in ind.INDICATOR_KEYS:
        assert_close(out[key][:390, 3], full[key][:390, 3], tol=1e-9)
        assert np.isnan(out[key][390:, 3]).all(), key


def test_window_inputs_with_a_bad_value_are_nan(panel: BarPanel) -> None:
    """A non-positive close is a value, not a missing bar: windows touching it are NaN."""
    c = panel.close.copy()
    c[200, 3] = 0.0
    log_ret = pd.DataFrame(np.log(np.where(c > 0, c, np.nan))).diff()
    expected = log_ret.rolling(20).std().to_numpy()
    assert_close(ind.rolling_volatility(c, 20), expected, tol=1e-10)


def test_sma_precision_over_a_thousandfold_fall() -> None:
    """Prefix-sum SMAs stay within 1e-9 relative when a price falls 1000x over 2,500 rows."""
    close = 5000.0 * np.exp(np.linspace(0.0, np.log(1e-3), 2500))[:, None]
    got = ind.sma(close, 20)[19:, 0]
    windows = np.lib.stride_tricks.sliding_window_view(close[:, 0], 20)
    np.testing.assert_allclose(got, windows.mean(axis=1), rtol=1e-9)


def test_one_dimensional_input_gives_one_dimensional_output(panel: BarPanel) -> None:
    """A 1-D series is treated as one symbol and returned 1-D."""
    c = panel.close[:, 0]
    out = ind.wilder_rsi(c)
    assert out.shape == c.shape
    assert_close(out, ind.wilder_rsi(panel.close)[:, 0], tol=0.0)


def test_bad_arguments_raise() -> None:
    """Mismatched shapes, non-positive periods and 3-D input are rejected."""
    with pytest.raises(ValueError, match="shapes differ"):
        ind.wilder_atr(np.ones((5, 2)), np.ones((5, 3)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="period"):
        ind.sma(np.ones(5), 0)
    with pytest.raises(ValueError, match="period"):
        ind.adx(np.ones(5), np.ones(5), np.ones(5), 1)
    with pytest.raises(ValueError, match="3-D"):
        ind.sma(np.ones((2, 2, 2)), 2)


def test_empty_and_short_panels_are_nan_until_warm_up() -> None:
    """Fewer rows than a window (or none at all) give NaN, not errors."""
    for rows in (0, 1, 10, 25):
        out = ind.compute_indicators(random_walk(rows, 3, seed=1))
        for key, arr in out.items():
            assert arr.shape == (rows, 3), key
            assert np.isnan(arr[: WARM_UP[key]]).all(), key
            assert np.isfinite(arr[WARM_UP[key] :]).all(), key


# ---------------------------------------------------------------------------
# properties


@st.composite
def valid_panels(draw: st.DrawFn) -> BarPanel:
    rows = draw(st.integers(min_value=1, max_value=160))
    cols = draw(st.integers(min_value=1, max_value=4))
    shape = (rows, cols)
    moves = st.floats(min_value=-0.3, max_value=0.3)
    wicks = st.floats(min_value=0.0, max_value=0.2)
    log_ret = draw(hnp.arrays(np.float64, shape, elements=moves))
    gap = draw(hnp.arrays(np.float64, shape, elements=moves))
    up = draw(hnp.arrays(np.float64, shape, elements=wicks))
    down = draw(hnp.arrays(np.float64, shape, elements=wicks))
    volume = draw(hnp.arrays(np.float64, shape, elements=st.floats(min_value=1.0, max_value=1e9)))
    start = draw(st.floats(min_value=0.5, max_value=5000.0))
    # Real prices do not span 20 orders of magnitude within 160 sessions (30% a day
    # compounded can), and prefix sums lose relative precision there (see the
    # indicators module): keep the path within 10,000x of its start. Clipping the
    # cumulative log only shortens a day's move, so every bar stays a valid one.
    bound = np.log(1e4)
    close = start * np.exp(np.clip(np.cumsum(log_ret, axis=0), -bound, bound))
    open_ = close * np.exp(gap)
    high = np.maximum(open_, close) * (1.0 + up)
    low = np.minimum(open_, close) * (1.0 - down)
    return BarPanel(
        dates=pd.bdate_range("2024-01-02", periods=rows),
        symbols=tuple(f"S{i}" for i in range(cols)),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


@settings(max_examples=60, deadline=None)
@given(valid_panels())
def test_valid_panels_give_finite_bounded_indicators(panel: BarPanel) -> None:
    """On any valid panel every output is finite after warm-up and within its range."""
    out = ind.compute_indicators(panel)
    for key, arr in out.items():
        assert np.isfinite(arr[WARM_UP[key] :]).all(), key
    rsi = out["rsi14"][14:]
    assert ((rsi >= 0.0) & (rsi <= 100.0)).all()
    adx = out["adx14"][27:]
    assert ((adx >= 0.0) & (adx <= 100.0 + 1e-9)).all()
    assert (out["atr14"][14:] >= 0.0).all()
    assert (out["volatility20"][20:] >= 0.0).all()
    assert (out["volume_ratio"][20:] > 0.0).all()


@settings(max_examples=60, deadline=None)
@given(valid_panels(), st.data())
def test_missing_values_never_raise_or_warn(panel: BarPanel, data: st.DataObject) -> None:
    """NaN anywhere in the inputs gives NaN outputs, never an exception or a warning."""
    t, n = panel.shape
    holes = data.draw(hnp.arrays(np.bool_, (5, t, n), elements=st.booleans()))
    arrays = {}
    for k, name in enumerate(("open", "high", "low", "close", "volume")):
        arr = getattr(panel, name).copy()
        arr[holes[k]] = np.nan
        arrays[name] = arr
    holed = BarPanel(dates=panel.dates, symbols=panel.symbols, **arrays)
    out = ind.compute_indicators(holed)
    rsi = out["rsi14"][np.isfinite(out["rsi14"])]
    assert ((rsi >= 0.0) & (rsi <= 100.0)).all()
    atr = out["atr14"][np.isfinite(out["atr14"])]
    assert (atr >= 0.0).all()
    assert not np.isinf(out["vwap20"]).any()
