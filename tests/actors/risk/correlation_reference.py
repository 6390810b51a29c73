"""The correlation filter as it was before ``CorrelationTable``, frozen as the reference.

``tests/actors/risk/test_correlation_table.py`` holds the table to this code
bit for bit. The pipeline called it once per entry on the candidate's and the
held symbols' columns of the whole history (``pipeline_decision``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from actors.data_feed.panel import FloatArray
from actors.risk.correlation import CorrelationDecision, simple_returns, size_multiplier
from actors.risk.params import CorrelationParams


def pairwise_correlation(x: FloatArray, y: FloatArray, min_rows: int) -> FloatArray:
    """Pearson correlation of each column of ``x`` (W, C) with each of ``y`` (W, H), (C, H)."""
    xs, ys = x[:, :, np.newaxis], y[:, np.newaxis, :]
    both = np.isfinite(xs) & np.isfinite(ys)
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
    out: FloatArray = np.clip(corr, -1.0, 1.0)
    return out


def correlation_matrices(
    close: FloatArray,
    symbols: Sequence[str],
    candidates: Sequence[str],
    held: Sequence[str],
    params: CorrelationParams,
) -> FloatArray:
    """The (2, C, H) matrices of known candidates x known held symbols the filter measured."""
    index = {s: i for i, s in enumerate(symbols)}
    held_known = [s for s in dict.fromkeys(held) if s in index]
    known = list(dict.fromkeys(i for i in (index.get(c, -1) for c in candidates) if i >= 0))
    returns = simple_returns(np.asarray(close, dtype=np.float64))
    h_idx = np.array([index[s] for s in held_known])
    c_idx = np.array(known)
    per_window = []
    for window in (params.long_window, params.short_window):
        tail = returns[-window:]
        matrix = pairwise_correlation(tail[:, c_idx], tail[:, h_idx], max(10, window // 2))
        matrix[c_idx[:, np.newaxis] == h_idx[np.newaxis, :]] = np.nan
        per_window.append(matrix)
    return np.stack(per_window)


def correlation_filter(
    close: FloatArray,
    symbols: Sequence[str],
    candidates: Sequence[str],
    held: Sequence[str],
    params: CorrelationParams,
) -> list[CorrelationDecision]:
    """One decision per candidate (in order) against the held symbols."""
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
    windows = (params.long_window, params.short_window)
    stacked = correlation_matrices(close, symbols, candidates, held, params)
    filled = np.where(np.isnan(stacked), -np.inf, stacked)
    best_window = filled.argmax(axis=0)
    best = filled.max(axis=0)
    best_held = best.argmax(axis=1)
    rows = {int(i): k for k, i in enumerate(known)}
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


def pipeline_decision(
    close: FloatArray,
    symbols: Sequence[str],
    candidate: str,
    held: Sequence[str],
    params: CorrelationParams,
) -> CorrelationDecision:
    """The decision the pipeline took for one entry: the filter on its own columns."""
    index = {s: i for i, s in enumerate(symbols)}
    held = sorted(set(held) - {candidate})
    wanted = [candidate, *held]
    cols = [index[s] for s in wanted if s in index]
    names = [s for s in wanted if s in index]
    return correlation_filter(close[:, cols], names, [candidate], held, params)[0]


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
