"""Technical indicators over (T, N) bar arrays, vectorised across symbols.

Every function takes and returns float64 arrays shaped (T dates, N symbols) and
works column by column; a 1-D input is treated as one symbol and gives a 1-D
output. NaN marks warm-up and missing data.

Missing bars are skipped, not propagated. A symbol's missing rows (a missing
session, or a bar the validator removed) are left out: every indicator is
computed on each column's available bars only, so the value at a row equals the
indicator computed on the series with the missing rows deleted, and the missing
row itself is NaN. "Previous" means the previous *available* bar (``ret1``,
``sma20_prev``, ``rsi_slope``, the true range's previous close), so a crossover
across a missing day is still seen. A row is available to a function when all
of its inputs are finite there (``compute_indicators``: high, low, close and
volume). This is done by right-aligning each column's available rows into a
compacted array (a column with fewer rows gets leading NaN, handled like a late
listing), computing once, vectorised, and scattering the results back; columns
without a gap are not moved.

Inside the compacted arrays NaN can still arise from values (the log return of
a non-positive price, a zero-volume VWAP window): rolling windows are NaN when
any value in them is NaN, and Wilder recursions re-seed after one.

Conventions follow TA-Lib so the numbers can be checked against it:
    * RSI and ATR are Wilder averages seeded with the simple mean of their first
      ``n`` inputs; RSI is 100 when the average loss is 0 and (TA-Lib's
      convention) 0 when both averages are 0, i.e. for perfectly flat prices.
    * ADX follows TA-Lib's algorithm step by step (Wilder sums of +DM/-DM/TR
      seeded with ``n - 1`` values, ADX seeded with the mean of the next ``n``
      DX values), so it matches TA-Lib from its first output. When DX is
      undefined (no directional movement) TA-Lib counts it as 0 while seeding
      and otherwise carries ADX forward unchanged; so does this module.

``vwap20`` is a rolling 20-session VWAP of the typical price (h+l+c)/3: daily
bars carry no intraday trades, so a true session VWAP cannot be computed.

Wilder recursions loop over time (T iterations, each vectorised over all N
symbols); rolling windows use prefix sums of values centred on each column's
first valid value, which keeps them exact for constant series. Their absolute
rounding error grows with the sum of |price - first price| over the history, so
the relative error at a row is about 1e-16 x rows x (typical distance from the
first price / price): below 1e-9 unless a column's prices span more than about
six orders of magnitude.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import numpy as np
import numpy.typing as npt

from actors.data_feed.panel import BarPanel, FloatArray

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
Indicators = dict[str, FloatArray]

INDICATOR_KEYS: Final[tuple[str, ...]] = (
    "sma20",
    "sma100",
    "rsi14",
    "rsi_slope",
    "atr14",
    "adx14",
    "vwap20",
    "momentum20",
    "volume_ratio",
    "ret1",
    "ret5",
    "ret20",
    "volatility20",
    "price_sma20_ratio",
    "price_sma100_ratio",
    "sma20_prev",
    "sma100_prev",
)

# TA-Lib's TA_IS_ZERO: sums below this are treated as exactly zero.
_TA_ZERO: Final = 1e-8
# Below this many cells a second thread costs more than it saves.
_THREADED_MIN_CELLS: Final = 200_000


# ---------------------------------------------------------------------------
# shape helpers


def _as_2d(x: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        return arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"expected a 1-D or 2-D array, got {arr.ndim}-D")
    return arr


def _inputs(*arrays: npt.ArrayLike) -> tuple[list[FloatArray], bool]:
    """Promote every input to 2-D and check the shapes agree."""
    first = np.asarray(arrays[0])
    one_d = first.ndim == 1
    out = [_as_2d(a) for a in arrays]
    shape = out[0].shape
    for a in out[1:]:
        if a.shape != shape:
            raise ValueError(f"input shapes differ: {a.shape} vs {shape}")
    return out, one_d


def _output(x: FloatArray, one_d: bool) -> FloatArray:
    return x[:, 0] if one_d else x


def _check_period(n: int, minimum: int = 1) -> None:
    if n < minimum:
        raise ValueError(f"period must be >= {minimum}, got {n}")


def _lag(x: FloatArray, k: int) -> FloatArray:
    """``x`` shifted down ``k`` rows (row t holds x[t-k]); the first k rows are NaN."""
    out = np.full_like(x, np.nan)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def _first_valid(x: FloatArray) -> FloatArray:
    """Each column's first non-NaN value (0 for an all-NaN column)."""
    if x.shape[0] == 0:
        return np.zeros(x.shape[1])
    if not np.isnan(x[0]).any():
        first_row: FloatArray = x[0].copy()
        return first_row
    valid = ~np.isnan(x)
    rows = valid.argmax(axis=0)
    cols = np.arange(x.shape[1])
    ref: FloatArray = np.where(valid[rows, cols], x[rows, cols], 0.0)
    return ref


def _leading_gaps(valid: BoolArray) -> tuple[IntArray, BoolArray]:
    """Per column: the count of valid entries, and whether they form one trailing block.

    For such "clean" columns (data from some row to the end, the usual shape of a
    short history) the first valid row is ``T - count``.
    """
    n_valid: IntArray = np.count_nonzero(valid, axis=0)
    ends_run = valid[:-1] & ~valid[1:]  # a valid entry followed by a gap
    clean: BoolArray = ~np.logical_or.reduce(ends_run, axis=0)
    return n_valid, clean


class _Compaction:
    """Right-aligns each column's available rows (and scatters results back).

    Only columns with a gap before their last available row move, and of those only
    the cells above their last gap (a column's rows after its last gap stay put).
    Indices are flat, into the whole (T, N) array, so each direction is one gather,
    one scatter and one fill.
    """

    __slots__ = ("_from", "_holes", "_lead", "_to")

    def __init__(self, src: IntArray, dst: IntArray, holes: IntArray, lead: IntArray) -> None:
        self._from = src  # the moving available cells, where they are
        self._to = dst  # where they go when right-aligned
        self._holes = holes  # the moving columns' missing cells (NaN once scattered back)
        self._lead = lead  # the moving columns' leading rows once right-aligned (NaN)

    @classmethod
    def of(cls, available: BoolArray) -> _Compaction | None:
        """The compaction for ``available`` (T, N), or None when no column has a gap."""
        if available.shape[0] < 2 or available.all():
            return None
        n_valid, clean = _leading_gaps(available)
        cols = np.flatnonzero(~clean)
        if not cols.size:
            return None
        t_len, n_cols = available.shape
        block = available[:, cols]
        # each available cell's rank in its column, shifted so the last lands on row T-1
        dest = np.cumsum(block, axis=0, dtype=np.intp)
        dest += (t_len - 1) - n_valid[cols]
        rows, sub = np.nonzero(block)
        to_rows = dest[rows, sub]
        moving = to_rows != rows
        col = cols[sub[moving]]
        hole_rows, hole_sub = np.nonzero(~block)
        lead = np.arange(t_len)[:, None] < (t_len - n_valid[cols])[None, :]
        lead_rows, lead_sub = np.nonzero(lead)
        return cls(
            src=rows[moving] * n_cols + col,
            dst=to_rows[moving] * n_cols + col,
            holes=hole_rows * n_cols + cols[hole_sub],
            lead=lead_rows * n_cols + cols[lead_sub],
        )

    def pack(self, x: FloatArray) -> FloatArray:
        """A copy of ``x`` with the moving columns' available values right-aligned."""
        out = x.copy()
        np.put(out, self._to, np.take(x, self._from))
        np.put(out, self._lead, np.nan)
        return out

    def unpack(self, y: FloatArray) -> None:
        """Move ``y``'s moving columns back to their original rows (in place; gaps NaN)."""
        np.put(y, self._from, np.take(y, self._to))
        np.put(y, self._holes, np.nan)


def _available(arrays: list[FloatArray]) -> BoolArray:
    """Rows where every one of ``arrays`` is finite."""
    ok: BoolArray = np.isfinite(arrays[0])
    for a in arrays[1:]:
        ok &= np.isfinite(a)
    return ok


def _skipping_gaps(
    fn: Callable[..., FloatArray], arrays: list[FloatArray], one_d: bool
) -> FloatArray:
    """``fn(*arrays)`` computed on each column's available rows only (see the module doc)."""
    compaction = _Compaction.of(_available(arrays))
    if compaction is None:
        return _output(fn(*arrays), one_d)
    out = fn(*(compaction.pack(a) for a in arrays))
    compaction.unpack(out)
    return _output(out, one_d)


# ---------------------------------------------------------------------------
# rolling windows via prefix sums


class _Windows:
    """O(1) rolling-window sums of a (T, N) array from its prefix sums; NaN = missing.

    Takes ownership of ``x``: its NaNs are zeroed and it is turned into its own prefix
    sums in place (one vectorised add per row; ``np.cumsum(axis=0)`` strides across
    rows and is several times slower). Callers centre values near 0 so the sums stay
    small, and exact for constant input.
    """

    __slots__ = ("_bad", "_first", "_sums")

    def __init__(self, x: FloatArray) -> None:
        t_len = x.shape[0]
        self._bad: npt.NDArray[np.int32] | None = None
        self._first: IntArray | None = None
        missing = np.isnan(x)
        if missing.any():
            x[missing] = 0.0
            n_valid, clean = _leading_gaps(~missing)
            if clean.all():
                # Only leading NaN (short histories): a window is whole once past them.
                self._first = t_len - n_valid
            else:
                self._bad = missing.astype(np.int32)
                for t in range(1, t_len):
                    np.add(self._bad[t - 1], self._bad[t], out=self._bad[t])
        for t in range(1, t_len):
            np.add(x[t - 1], x[t], out=x[t])
        self._sums = x

    def sum(self, n: int) -> FloatArray:
        """Sum over the last ``n`` rows; NaN if the window is short or has a missing value."""
        sums = self._sums
        t_len = sums.shape[0]
        out = np.full_like(sums, np.nan)
        if n <= t_len:
            out[n - 1] = sums[n - 1]
            np.subtract(sums[n:], sums[:-n], out=out[n:])
            if self._bad is not None:
                bad = self._bad
                out[n - 1][bad[n - 1] != 0] = np.nan
                out[n:][bad[n:] != bad[:-n]] = np.nan
            elif self._first is not None:
                out[np.arange(t_len)[:, None] < self._first + (n - 1)] = np.nan
        return out


def _rolling_mean(x: FloatArray, windows: tuple[int, ...]) -> list[FloatArray]:
    ref = _first_valid(x)
    sums = _Windows(x - ref)
    out = []
    for n in windows:
        mean = sums.sum(n)
        mean /= n
        mean += ref
        out.append(mean)
    return out


def sma(x: npt.ArrayLike, n: int) -> FloatArray:
    """Simple moving average over ``n`` rows (TA-Lib ``SMA``); NaN if the window has a gap."""
    _check_period(n)
    (arr,), one_d = _inputs(x)
    return _skipping_gaps(lambda x: _rolling_mean(x, (n,))[0], [arr], one_d)


# ---------------------------------------------------------------------------
# Wilder recursion


def _seed_points(valid: BoolArray, count: int) -> tuple[IntArray, IntArray]:
    """(rows, cols), sorted by row, where a run of valid entries reaches length ``count``."""
    t_len, n_cols = valid.shape
    if t_len == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    n_valid, clean = _leading_gaps(valid)
    cols = np.flatnonzero(clean & (n_valid >= count))
    rows = (t_len - n_valid[cols]) + (count - 1)
    dirty = np.flatnonzero(~clean)
    if dirty.size:
        sub = valid[:, dirty]
        idx = np.arange(t_len)[:, None]
        last_gap = np.maximum.accumulate(np.where(sub, -1, idx), axis=0)
        d_rows, d_cols = np.nonzero((idx - last_gap == count) & sub)
        rows = np.concatenate([rows, d_rows])
        cols = np.concatenate([cols, dirty[d_cols]])
    order = np.argsort(rows * n_cols + cols, kind="stable")
    return rows[order], cols[order]


def _wilder_sums(
    xs: tuple[FloatArray, ...], *, seed_count: int, beta: float, hold: BoolArray | None = None
) -> list[FloatArray]:
    """Wilder's running sums ``s[t] = beta * s[t-1] + x[t]``, per column, for each of ``xs``.

    The arrays in ``xs`` share one NaN pattern (taken from the first). A column is
    seeded with the plain sum of ``seed_count`` values on the row where a run of valid
    values reaches that length; NaN makes the output NaN until the next seeding. Where
    ``hold`` is True the previous value is carried forward (the value there still
    counts toward a seed). With ``beta = (n-1)/n`` and ``n`` seed values, ``s / n`` is
    Wilder's average seeded with an SMA.
    """
    t_len, n_cols = xs[0].shape
    seed_t, seed_c = _seed_points(~np.isnan(xs[0]), seed_count)
    gather = (seed_t[:, None] - np.arange(seed_count)[None, ::-1], seed_c[:, None])
    seeds = [x[gather].sum(axis=1) for x in xs]
    bounds = np.searchsorted(seed_t, np.arange(t_len + 1)).tolist()
    hold_rows: list[bool] = [False] * t_len
    if hold is not None:
        hold_rows = np.logical_or.reduce(hold, axis=1).tolist()

    outs = [np.empty_like(x) for x in xs]
    prevs = [np.full(n_cols, np.nan) for _ in xs]
    for t in range(t_len):
        lo, hi = bounds[t], bounds[t + 1]
        for k, (x, out) in enumerate(zip(xs, outs, strict=True)):
            cur, prev = out[t], prevs[k]
            np.multiply(prev, beta, out=cur)
            cur += x[t]
            if hold is not None and hold_rows[t]:
                np.copyto(cur, prev, where=hold[t])
            if lo != hi:
                cur[seed_c[lo:hi]] = seeds[k][lo:hi]
            prevs[k] = cur
    return outs


def _wilder_mean(x: FloatArray, n: int) -> FloatArray:
    """Wilder's average: seeded with the SMA of the first ``n`` values, alpha = 1/n."""
    (out,) = _wilder_sums((x,), seed_count=n, beta=(n - 1) / n)
    out /= n
    return out


def _rsi(close: FloatArray, n: int) -> FloatArray:
    up = np.empty_like(close)
    up[:1] = np.nan
    np.subtract(close[1:], close[:-1], out=up[1:])
    down = np.negative(up)
    np.maximum(up, 0.0, out=up)
    np.maximum(down, 0.0, out=down)
    # RSI is a ratio, so Wilder sums serve as well as averages (n times larger).
    gains, total = _wilder_sums((up, down), seed_count=n, beta=(n - 1) / n)
    total += gains
    missing = np.isnan(total)
    with np.errstate(invalid="ignore"):
        flat = total < _TA_ZERO * n
    total[flat] = 1.0  # TA-Lib: RSI 0 when both averages are 0
    gains[flat] = 0.0
    gains /= total
    gains *= 100.0
    gains[missing] = np.nan
    return gains


def wilder_rsi(close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's RSI seeded with the mean of the first ``n`` gains/losses (TA-Lib ``RSI``)."""
    _check_period(n)
    (c,), one_d = _inputs(close)
    return _skipping_gaps(lambda x: _rsi(x, n), [c], one_d)


def _true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    tr = np.empty_like(high)
    tr[:1] = np.nan
    prev_close = close[:-1]
    h, lo = high[1:], low[1:]
    body = tr[1:]
    scratch = np.empty_like(body)
    np.subtract(h, lo, out=body)
    np.subtract(h, prev_close, out=scratch)
    np.abs(scratch, out=scratch)
    np.maximum(body, scratch, out=body)
    np.subtract(lo, prev_close, out=scratch)
    np.abs(scratch, out=scratch)
    np.maximum(body, scratch, out=body)
    return tr


def true_range(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> FloatArray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on the first row."""
    (h, lo, c), one_d = _inputs(high, low, close)
    return _skipping_gaps(_true_range, [h, lo, c], one_d)


def wilder_atr(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 14
) -> FloatArray:
    """Wilder's ATR seeded with the mean of the first ``n`` true ranges (TA-Lib ``ATR``)."""
    _check_period(n)
    (h, lo, c), one_d = _inputs(high, low, close)
    return _skipping_gaps(lambda *x: _wilder_mean(_true_range(*x), n), [h, lo, c], one_d)


def _adx(high: FloatArray, low: FloatArray, tr: FloatArray, n: int) -> FloatArray:
    plus = np.empty_like(high)
    minus = np.empty_like(high)
    plus[:1] = np.nan
    minus[:1] = np.nan
    np.subtract(high[1:], high[:-1], out=plus[1:])
    np.subtract(low[:-1], low[1:], out=minus[1:])
    with np.errstate(invalid="ignore"):
        plus_wins = plus > minus
        minus_wins = minus > plus
        plus_wins &= plus > 0.0
        minus_wins &= minus > 0.0
    plus *= plus_wins  # NaN stays NaN
    minus *= minus_wins
    del plus_wins, minus_wins
    tr = tr.copy()
    # One missing input voids all three so they re-seed together.
    gap = np.isnan(plus + minus + tr)
    if gap.any():
        for block in (plus, minus, tr):
            block[gap] = np.nan
    del gap

    # TA-Lib smooths Wilder *sums* seeded with n-1 values: S = S - S/n + x.
    plus_s, minus_s, tr_s = _wilder_sums((plus, minus, tr), seed_count=n - 1, beta=(n - 1) / n)
    del plus, minus, tr
    # DX = 100 |+DI - -DI| / (+DI + -DI); the true range cancels out of the ratio.
    dx = np.subtract(plus_s, minus_s)
    np.abs(dx, out=dx)
    di_sum = plus_s
    di_sum += minus_s
    del minus_s
    missing = np.isnan(tr_s)
    with np.errstate(invalid="ignore"):
        undefined = tr_s < _TA_ZERO
        tr_s *= _TA_ZERO / 100.0
        undefined |= di_sum < tr_s  # +DI + -DI below TA-Lib's zero
    di_sum[undefined] = 1.0
    dx[undefined] = 0.0
    dx /= di_sum
    dx *= 100.0
    # TA-Lib's first DX comes one bar after the sums are seeded.
    seeded_now = ~missing
    seeded_now[1:] &= missing[:-1]
    missing |= seeded_now
    dx[missing] = np.nan
    undefined &= ~missing
    (out,) = _wilder_sums((dx,), seed_count=n, beta=(n - 1) / n, hold=undefined)
    out /= n
    return out


def adx(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's ADX computed as TA-Lib ``ADX`` does; first value at row ``2n - 1``."""
    _check_period(n, minimum=2)
    (h, lo, c), one_d = _inputs(high, low, close)
    return _skipping_gaps(lambda h, lo, c: _adx(h, lo, _true_range(h, lo, c), n), [h, lo, c], one_d)


# ---------------------------------------------------------------------------
# volume and price windows


def _vwap_and_mean_volume(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, n: int
) -> tuple[FloatArray, FloatArray]:
    """Rolling VWAP of the typical price, and the rolling mean volume, over ``n`` rows."""
    typical = np.add(high, low)
    typical += close
    typical /= 3.0
    ref = _first_valid(typical)
    typical -= ref
    typical *= volume
    weighted_sum = _Windows(typical).sum(n)
    volume_sum = _Windows(volume.copy()).sum(n)
    vwap = np.full_like(volume_sum, np.nan)
    with np.errstate(invalid="ignore"):
        np.divide(weighted_sum, volume_sum, out=vwap, where=volume_sum > 0.0)
    vwap += ref
    volume_sum /= n
    return vwap, volume_sum


def rolling_vwap(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    n: int = 20,
) -> FloatArray:
    """Volume-weighted mean of the typical price (h+l+c)/3 over the last ``n`` sessions.

    Daily bars carry no intraday trades, so this is a rolling multi-day VWAP proxy,
    not the session VWAP an intraday feed would give. NaN when the window's volume is 0.
    """
    _check_period(n)
    (h, lo, c, v), one_d = _inputs(high, low, close, volume)

    def vwap(h: FloatArray, lo: FloatArray, c: FloatArray, v: FloatArray) -> FloatArray:
        return _vwap_and_mean_volume(h, lo, c, v, n)[0]

    return _skipping_gaps(vwap, [h, lo, c, v], one_d)


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den where den > 0, else NaN."""
    out = np.full_like(num, np.nan)
    with np.errstate(invalid="ignore"):
        np.divide(num, den, out=out, where=den > 0.0)
    return out


def _simple_return(close: FloatArray, k: int) -> FloatArray:
    out = np.full_like(close, np.nan)
    if k < close.shape[0]:
        body = out[k:]
        prev = close[:-k]
        with np.errstate(invalid="ignore"):
            np.divide(close[k:], prev, out=body, where=prev > 0.0)
        body -= 1.0
    return out


def simple_return(close: npt.ArrayLike, k: int = 1) -> FloatArray:
    """close[t] / close[t-k] - 1 (TA-Lib ``ROCR`` minus 1); NaN if either close is missing."""
    _check_period(k)
    (c,), one_d = _inputs(close)
    return _skipping_gaps(lambda x: _simple_return(x, k), [c], one_d)


def momentum(close: npt.ArrayLike, n: int = 20) -> FloatArray:
    """Rate of change over ``n`` sessions as a fraction: close[t] / close[t-n] - 1."""
    return simple_return(close, n)


def _log_returns(close: FloatArray) -> FloatArray:
    out = np.full_like(close, np.nan)
    body = out[1:]
    with np.errstate(invalid="ignore"):
        positive = close > 0.0
    np.divide(close[1:], close[:-1], out=body, where=positive[1:] & positive[:-1])
    np.log(body, out=body)  # log(NaN) is a quiet NaN
    return out


def log_returns(close: npt.ArrayLike) -> FloatArray:
    """log(close[t] / close[t-1]); NaN on the first row and for missing or non-positive closes."""
    (c,), one_d = _inputs(close)
    return _skipping_gaps(_log_returns, [c], one_d)


def _rolling_std(x: FloatArray, n: int) -> FloatArray:
    centred = x - _first_valid(x)
    squares = np.multiply(centred, centred)
    first = _Windows(centred).sum(n)
    var = _Windows(squares).sum(n)
    first *= first
    first /= n
    var -= first
    var /= n - 1
    np.maximum(var, 0.0, out=var)  # rounding can leave -1e-20 for constant input
    return np.sqrt(var, out=var)


def rolling_volatility(close: npt.ArrayLike, n: int = 20) -> FloatArray:
    """Sample std (ddof=1) of the last ``n`` daily log returns; daily, not annualised."""
    _check_period(n, minimum=2)
    (c,), one_d = _inputs(close)
    return _skipping_gaps(lambda x: _rolling_std(_log_returns(x), n), [c], one_d)


def _volume_ratio(volume: FloatArray, mean_volume: FloatArray) -> FloatArray:
    return _ratio(volume, _lag(mean_volume, 1))


def volume_ratio(volume: npt.ArrayLike, n: int = 20) -> FloatArray:
    """volume[t] / mean(volume[t-n .. t-1]): today against the *prior* ``n`` sessions."""
    _check_period(n)
    (v,), one_d = _inputs(volume)
    return _skipping_gaps(lambda x: _volume_ratio(x, _rolling_mean(x, (n,))[0]), [v], one_d)


# ---------------------------------------------------------------------------
# the full set


def _wilder_group(h: FloatArray, lo: FloatArray, c: FloatArray) -> Indicators:
    rsi14 = _rsi(c, 14)
    tr = _true_range(h, lo, c)
    return {
        "rsi14": rsi14,
        "rsi_slope": rsi14 - _lag(rsi14, 1),
        "atr14": _wilder_mean(tr, 14),
        "adx14": _adx(h, lo, tr, 14),
    }


def _window_group(h: FloatArray, lo: FloatArray, c: FloatArray, v: FloatArray) -> Indicators:
    sma20, sma100 = _rolling_mean(c, (20, 100))
    vwap20, mean_volume20 = _vwap_and_mean_volume(h, lo, c, v, 20)
    ret20 = _simple_return(c, 20)
    return {
        "sma20": sma20,
        "sma100": sma100,
        "vwap20": vwap20,
        "momentum20": ret20,
        "volume_ratio": _volume_ratio(v, mean_volume20),
        "ret1": _simple_return(c, 1),
        "ret5": _simple_return(c, 5),
        "ret20": ret20,
        "volatility20": _rolling_std(_log_returns(c), 20),
        "price_sma20_ratio": _ratio(c, sma20),
        "price_sma100_ratio": _ratio(c, sma100),
        "sma20_prev": _lag(sma20, 1),
        "sma100_prev": _lag(sma100, 1),
    }


def compute_indicators(panel: BarPanel) -> Indicators:
    """Every indicator in ``INDICATOR_KEYS`` for ``panel``, each (T, N) and read-only.

    A bar is available when its high, low, close and volume are all finite; the
    others are skipped (see the module docstring). ``momentum20`` and ``ret20`` are
    the same quantity (and the same array). Large panels split the work over two
    threads (numpy releases the GIL in its loops).
    """
    inputs = [panel.high, panel.low, panel.close, panel.volume]
    compaction = _Compaction.of(_available(inputs))
    if compaction is not None:
        inputs = [compaction.pack(a) for a in inputs]
    h, lo, c, v = inputs
    if c.size >= _THREADED_MIN_CELLS:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="indicators") as pool:
            wilder = pool.submit(_wilder_group, h, lo, c)
            windows = _window_group(h, lo, c, v)
            merged = {**windows, **wilder.result()}
    else:
        merged = {**_window_group(h, lo, c, v), **_wilder_group(h, lo, c)}
    out = {key: merged[key] for key in INDICATOR_KEYS}
    if compaction is not None:
        for arr in {id(a): a for a in out.values()}.values():  # momentum20 is ret20
            compaction.unpack(arr)
    for arr in out.values():
        arr.flags.writeable = False
    return out
