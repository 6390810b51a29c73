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

A cycle measures each pair once: ``CorrelationTable`` holds the session's
candidates against its held symbols (and each other, for an entry accepted
earlier the same day) over the last ``long_window + 1`` closes, and every
strategy reads its decisions from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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
    Every sum of a pair runs along that pair's own contiguous window (numpy's
    pairwise summation), so a pair's number is the same whichever other
    columns it is computed with: one pair alone, a row of them, a whole table.
    """
    xs = np.ascontiguousarray(x.T)[:, np.newaxis, :]  # (C, 1, W)
    ys = np.ascontiguousarray(y.T)[np.newaxis, :, :]  # (1, H, W)
    both: BoolArray = np.isfinite(xs) & np.isfinite(ys)
    n = both.sum(axis=-1)
    xv, yv = np.where(both, xs, 0.0), np.where(both, ys, 0.0)
    safe_n = np.maximum(n, 1)[..., np.newaxis]
    dx = np.where(both, xv - xv.sum(axis=-1)[..., np.newaxis] / safe_n, 0.0)
    dy = np.where(both, yv - yv.sum(axis=-1)[..., np.newaxis] / safe_n, 0.0)
    cov = (dx * dy).sum(axis=-1)
    scale = np.sqrt((dx * dx).sum(axis=-1) * (dy * dy).sum(axis=-1))
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
    table = CorrelationTable(close, symbols, params, candidates=candidates, held=held)
    return [table.decide(c, held) for c in candidates]


class CorrelationTable:
    """The correlations one session's filters need, each pair measured once.

    Rows are candidates, columns the symbols held beside them. Built for a
    session's candidates and its held symbols, it serves every strategy: a
    candidate asked about a column the table lacks (an entry accepted earlier in
    the session) adds that column for every row, and an unforeseen candidate
    adds its row. A pair's number does not depend on what it is measured with
    (``pairwise_correlation``), so every decision is the one ``decide`` would
    give from a table built for that candidate and those held symbols alone.
    Only the last ``long_window + 1`` closes are read, and only when the first
    decision is asked for: a day whose entries all stop at the regime costs nothing.
    """

    def __init__(
        self,
        close: FloatArray,
        symbols: Sequence[str],
        params: CorrelationParams,
        *,
        candidates: Iterable[str],
        held: Iterable[str],
    ) -> None:
        if close.ndim != 2 or close.shape[1] != len(symbols):
            raise ValueError(f"close has shape {close.shape}, expected (T, {len(symbols)})")
        self._params = params
        self._windows = (params.long_window, params.short_window)
        self._index = {s: i for i, s in enumerate(symbols)}
        self._measurable = close.shape[0] >= 2
        self._recent = close[-(max(self._windows) + 1) :]
        self._rows = self._known(candidates)
        # A candidate becomes a column only once it is held (accepted earlier in
        # the session): most of a day's candidates never are.
        self._cols = self._known(held)
        self._corr: FloatArray | None = None  # measured when first asked

    @property
    def candidates(self) -> tuple[str, ...]:
        """The candidates the table has rows for, in the order they were measured."""
        return tuple(self._rows)

    def decide(self, candidate: str, held: Sequence[str]) -> CorrelationDecision:
        """The candidate's decision against ``held`` (itself excluded; unknown symbols skipped)."""
        held_known = [s for s in dict.fromkeys(held) if s in self._index]
        if candidate not in self._index or not held_known or not self._measurable:
            return _unmeasured(candidate, held_known)
        corr = self._extend(candidate, held_known)
        cols = [self._cols[s] for s in held_known]
        return _decision(
            candidate,
            held_known,
            corr[:, self._rows[candidate], cols],
            self._windows,
            self._params,
        )

    def _known(self, names: Iterable[str]) -> dict[str, int]:
        """Position of each distinct name that the panel knows, in first-seen order."""
        known = [s for s in dict.fromkeys(names) if s in self._index]
        return {s: k for k, s in enumerate(known)}

    def _extend(self, candidate: str, held: Sequence[str]) -> FloatArray:
        """The table, measured, with the row of ``candidate`` and the columns of ``held``."""
        corr = self._corr
        if corr is None:
            corr = self._measure(list(self._rows), list(self._cols))
        if candidate not in self._rows:
            block = self._measure([candidate], list(self._cols))
            self._rows[candidate] = len(self._rows)
            corr = np.concatenate([corr, block], axis=1)
        missing = [s for s in held if s not in self._cols]
        if missing:
            block = self._measure(list(self._rows), missing)
            for s in missing:
                self._cols[s] = len(self._cols)
            corr = np.concatenate([corr, block], axis=2)
        self._corr = corr
        return corr

    def _measure(self, rows: Sequence[str], cols: Sequence[str]) -> FloatArray:
        """(windows, rows, cols) correlations; a symbol with itself is NaN."""
        out = np.full((len(self._windows), len(rows), len(cols)), np.nan)
        if not rows or not cols or not self._measurable:
            return out
        panel = list(dict.fromkeys(self._index[s] for s in (*rows, *cols)))
        at = {p: k for k, p in enumerate(panel)}
        r_idx = np.array([at[self._index[s]] for s in rows])
        c_idx = np.array([at[self._index[s]] for s in cols])
        returns = simple_returns(np.asarray(self._recent[:, panel], dtype=np.float64))
        same = r_idx[:, np.newaxis] == c_idx[np.newaxis, :]
        # Rows in chunks: a chunk's (rows, cols, window) arrays stay near 8 MB.
        step = max(1, _CHUNK_CELLS // (len(cols) * max(self._windows)))
        for w, window in enumerate(self._windows):
            tail = returns[-window:]
            for lo in range(0, len(rows), step):
                chunk = r_idx[lo : lo + step]
                out[w, lo : lo + step] = pairwise_correlation(
                    tail[:, chunk], tail[:, c_idx], _min_rows(window)
                )
        out[:, same] = np.nan
        return out


_CHUNK_CELLS = 1 << 20
"""Most pair-days a ``CorrelationTable`` measures in one numpy pass."""


def _decision(
    candidate: str,
    held: Sequence[str],
    corr: FloatArray,
    windows: tuple[int, int],
    params: CorrelationParams,
) -> CorrelationDecision:
    """The decision from ``corr`` (windows, held): the highest measured pair decides.

    On a tie the long window (index 0) and the first held symbol are reported.
    """
    filled = np.where(np.isnan(corr), -np.inf, corr)
    best_window = filled.argmax(axis=0)
    best = filled.max(axis=0)
    h = int(best.argmax())
    value = float(best[h])
    if not math.isfinite(value):
        return _unmeasured(candidate, held)
    window = windows[int(best_window[h])]
    multiplier, why = size_multiplier(value, params)
    other = held[h]
    return CorrelationDecision(
        symbol=candidate,
        max_corr=value,
        with_symbol=other,
        window=window,
        multiplier=multiplier,
        rejected=multiplier == 0.0,
        reason=f"{why} (with {other} over {window} days)",
    )


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
