"""Correlation filter: attenuate or reject a candidate that moves with what is already held.

Rules (defaults in brackets), on the *signed* Pearson correlation of daily
simple returns:

* ``corr <= full_size_below`` [0.5]: full size (1.0);
* ``full_size_below < corr <= reject_above`` [0.5 .. 0.8]: linear from 1.0 down
  to ``min_multiplier`` [0.25] at ``reject_above``;
* ``corr > reject_above`` [> 0.8]: rejected (0.0).

The sign matters: a strongly *negative* correlation is a hedge, not
concentration, so it gets full size like no correlation at all.

Each candidate is compared with every held symbol (itself excluded) over the
last ``long_window`` [60] and the last ``short_window`` [20] returns; the
higher of the two decides, so a pair that decoupled long ago but moves
together lately is caught (dual-window). The highest over the held symbols
decides the candidate. Correlations are pairwise-complete (only days where
both returns are finite) and a window counts only with at least
``max(10, window // 2)`` such days; with nothing measurable the candidate gets
full size, and the decision says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from actors.data_feed.panel import FloatArray
from actors.risk.params import CorrelationParams

HIGH_CORRELATION = "high_correlation"
"""Reason code of a candidate rejected by the correlation filter."""

MIN_OVERLAP = 10
"""Fewest overlapping returns for any window's correlation to count."""

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class CorrelationDecision:
    """Sizing of one candidate; ``max_corr`` is NaN and ``with_symbol`` None when unmeasured."""

    symbol: str
    max_corr: float
    with_symbol: str | None
    window: int | None
    multiplier: float
    rejected: bool
    reason: str

    @property
    def code(self) -> str | None:
        """``HIGH_CORRELATION`` when rejected, else None."""
        return HIGH_CORRELATION if self.rejected else None


def size_multiplier(corr: float, params: CorrelationParams) -> tuple[float, str]:
    """The size multiplier for a correlation: 1.0, linear down to ``min_multiplier``, or 0.0.

    A NaN correlation (not measurable) gets full size.
    """
    full, reject, floor = params.full_size_below, params.reject_above, params.min_multiplier
    if math.isnan(corr):
        return 1.0, "correlation not measurable: full size"
    if corr <= full:
        return 1.0, f"corr {corr:.3f} <= {full:g}: full size"
    if corr > reject:
        return 0.0, f"corr {corr:.3f} > {reject:g}: rejected"
    share = (corr - full) / (reject - full)
    multiplier = min(1.0, max(floor, 1.0 - share * (1.0 - floor)))
    return multiplier, f"corr {corr:.3f} in ({full:g}, {reject:g}]: size {multiplier:.1%}"


def simple_returns(close: FloatArray) -> FloatArray:
    """Daily simple returns (T-1, N) of (T, N) closes; NaN unless both closes are finite, > 0."""
    prev, cur = close[:-1], close[1:]
    valid = np.isfinite(prev) & np.isfinite(cur) & (prev > 0) & (cur > 0)
    out = np.full(cur.shape, np.nan)
    np.divide(cur, prev, out=out, where=valid)
    return out - 1.0


def pairwise_correlation(x: FloatArray, y: FloatArray, min_rows: int) -> FloatArray:
    """Pearson correlation of each column of ``x`` (W, C) with each of ``y`` (W, H), (C, H).

    Pairwise-complete: each pair uses only the rows where both are finite; a
    pair with fewer than ``min_rows`` such rows or a constant series is NaN.
    """
    xs, ys = x[:, :, np.newaxis], y[:, np.newaxis, :]
    both: BoolArray = np.isfinite(xs) & np.isfinite(ys)
    n = both.sum(axis=0)
    xv, yv = np.where(both, xs, 0.0), np.where(both, ys, 0.0)
    safe_n = np.maximum(n, 1)
    dx = np.where(both, xv - xv.sum(axis=0) / safe_n, 0.0)
    dy = np.where(both, yv - yv.sum(axis=0) / safe_n, 0.0)
    cov = (dx * dy).sum(axis=0)
    scale = np.sqrt((dx * dx).sum(axis=0) * (dy * dy).sum(axis=0))
    ok = (n >= min_rows) & (scale > 0)
    corr = np.full(cov.shape, np.nan)
    np.divide(cov, scale, out=corr, where=ok)
    return np.clip(corr, -1.0, 1.0)


def _min_rows(window: int) -> int:
    return max(MIN_OVERLAP, window // 2)


def correlation_filter(
    close: FloatArray,
    symbols: Sequence[str],
    candidates: Sequence[str],
    held: Sequence[str],
    params: CorrelationParams,
) -> list[CorrelationDecision]:
    """One decision per candidate (in order) against the held symbols; see the module docstring.

    ``close`` is (T, N) over ``symbols``. Candidates or held symbols missing
    from ``symbols`` have no history: they are never measured.
    """
    if close.ndim != 2 or close.shape[1] != len(symbols):
        raise ValueError(f"close has shape {close.shape}, expected (T, {len(symbols)})")
    index = {s: i for i, s in enumerate(symbols)}
    held_known = [s for s in dict.fromkeys(held) if s in index]
    cand_idx = [index.get(c, -1) for c in candidates]
    known = list(dict.fromkeys(i for i in cand_idx if i >= 0))
    if not candidates:
        return []
    if not held_known or not known or close.shape[0] < 2:
        return [_unmeasured(c, held_known) for c in candidates]

    returns = simple_returns(np.asarray(close, dtype=np.float64))
    h_idx = np.array([index[s] for s in held_known])
    c_idx = np.array(known)
    windows = (params.long_window, params.short_window)
    per_window = []
    for window in windows:
        tail = returns[-window:]
        matrix = pairwise_correlation(tail[:, c_idx], tail[:, h_idx], _min_rows(window))
        matrix[c_idx[:, np.newaxis] == h_idx[np.newaxis, :]] = np.nan  # never with itself
        per_window.append(matrix)
    stacked = np.stack(per_window)  # (2, C, H)
    filled = np.where(np.isnan(stacked), -np.inf, stacked)
    # On a tie the long window (index 0) is reported.
    best_window = filled.argmax(axis=0)  # (C, H)
    best = filled.max(axis=0)
    best_held = best.argmax(axis=1)  # (C,)

    rows = {int(i): k for k, i in enumerate(c_idx)}
    out: list[CorrelationDecision] = []
    for cand, i in zip(candidates, cand_idx, strict=True):
        if i < 0:
            out.append(_unmeasured(cand, held_known))
            continue
        k = rows[i]
        h = int(best_held[k])
        corr = float(best[k, h])
        if not math.isfinite(corr):
            out.append(_unmeasured(cand, held_known))
            continue
        window = windows[int(best_window[k, h])]
        multiplier, why = size_multiplier(corr, params)
        other = held_known[h]
        out.append(
            CorrelationDecision(
                symbol=cand,
                max_corr=corr,
                with_symbol=other,
                window=window,
                multiplier=multiplier,
                rejected=multiplier == 0.0,
                reason=f"{why} (with {other} over {window} days)",
            )
        )
    return out


def _unmeasured(symbol: str, held: Sequence[str]) -> CorrelationDecision:
    if not any(h != symbol for h in held):
        reason = "no other held positions with history: full size"
    else:
        reason = "not enough overlapping history with held positions: full size"
    return CorrelationDecision(
        symbol=symbol,
        max_corr=math.nan,
        with_symbol=None,
        window=None,
        multiplier=1.0,
        rejected=False,
        reason=reason,
    )
