"""Bar-level data faults: which single bars to remove, and what a window can judge.

A bad bar costs that bar, not the symbol's window. ``scan_bars`` looks at every
bar of a (T, N) panel once (vectorised across symbols; the one sequential part
loops over rows, and only for the few columns that have an implausible move):

* **defects** -- a partial bar (some field missing), a price <= 0, high < low,
  open or close outside high-low -- are removed outright;
* **moves** are measured from the *previous good close* (the last bar not
  removed, so a gap or an earlier bad bar cannot hide or fake a jump). A close
  beyond ``max_one_day_move`` from it is implausible; the next good bar
  decides: when it comes back within ``max_one_day_move`` of the previous good
  close the bar was a bad print and is removed, otherwise the move persists and
  is a real level shift, kept. With no next bar yet the move is unconfirmed;
* a **probable split**: the open gaps from the previous good close by a common
  split ratio (``SPLIT_RATIOS``) within ``split_tolerance``.

A bar's removal is decided with its next bar only, so the flags computed once
over a whole history are exactly what each later window would compute, with
two edges that ``judge_window`` settles: the window's *first* good bar has no
previous close inside the window (live scans accept it unchecked; where the
history removed it, the window's columns are scanned again), and its *last*
good bar has no next bar (an implausible move there is unconfirmed: removed,
and the symbol held for that cycle).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from actors.data_feed.panel import FIELDS, BarPanel, FloatArray

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
Int32Array = npt.NDArray[np.int32]
Int8Array = npt.NDArray[np.int8]

NAN_VALUES: Final = "nan_values"
NON_POSITIVE_PRICE: Final = "non_positive_price"
HIGH_BELOW_LOW: Final = "high_below_low"
INCONSISTENT_OHLC: Final = "inconsistent_ohlc"

#: Bar defects in order of precedence; ``BarFlags.defect`` holds 1 + the index (0: none).
DEFECTS: Final[tuple[str, ...]] = (
    NAN_VALUES,
    NON_POSITIVE_PRICE,
    HIGH_BELOW_LOW,
    INCONSISTENT_OHLC,
)
DEFECT_TEXT: Final[dict[str, str]] = {
    NAN_VALUES: "a partial bar (a field is missing)",
    NON_POSITIVE_PRICE: "a price <= 0",
    HIGH_BELOW_LOW: "high < low",
    INCONSISTENT_OHLC: "open or close outside high-low",
}

#: Common split ratios as (label, price factor): a 2:1 split halves the price.
SPLIT_RATIOS: Final[tuple[tuple[str, float], ...]] = (
    ("2:1", 1 / 2),
    ("3:2", 2 / 3),
    ("3:1", 1 / 3),
    ("4:1", 1 / 4),
    ("5:1", 1 / 5),
    ("10:1", 1 / 10),
    ("1:2", 2.0),
    ("1:3", 3.0),
    ("1:4", 4.0),
    ("1:5", 5.0),
    ("1:8", 8.0),
    ("1:10", 10.0),
    ("1:20", 20.0),
)
_FORWARD_MAX: Final = max(f for _, f in SPLIT_RATIOS if f < 1.0)
_REVERSE_MIN: Final = min(f for _, f in SPLIT_RATIOS if f > 1.0)

# Float noise allowed when comparing prices (relative) and moves (absolute), so a
# quote printed as high == close, or a move of exactly the limit, is not flagged.
PRICE_TOL: Final = 1e-9
MOVE_TOL: Final = 1e-12


@dataclass(frozen=True, slots=True, eq=False)
class BarFlags:
    """Per-bar outcome of ``scan_bars``, each array (T, N) aligned with the panel scanned.

    Row indices (``prev_row``, ``confirm_row``) are relative to the panel's first row;
    a negative value means none (or, after ``rows``, before the slice).
    """

    present: BoolArray  # any field of the bar is there (a missing session is not a bar)
    defect: Int8Array  # 1 + index into DEFECTS, 0 for none
    prev_row: Int32Array  # the previous good bar of a good bar
    implausible: BoolArray  # a good bar whose close moved beyond the limit
    spike: BoolArray  # an implausible bar the next good bar came back from: a bad print
    split: Int8Array  # index into SPLIT_RATIOS of an open gapping by a split ratio, -1: none
    confirm_row: Int32Array  # the bar that settled a removal (next good bar; next bar for a defect)
    removed: BoolArray  # defects, bad prints, and an unconfirmed move on the last good bar

    @property
    def good(self) -> BoolArray:
        """Bars without a defect (their moves are judged)."""
        ok: BoolArray = self.present & (self.defect == 0)
        return ok

    def rows(self, start: int, stop: int) -> BarFlags:
        """Rows ``[start, stop)``, row indices shifted to the slice."""
        cut = slice(start, stop)
        return BarFlags(
            present=self.present[cut],
            defect=self.defect[cut],
            prev_row=self.prev_row[cut] - np.int32(start),
            implausible=self.implausible[cut],
            spike=self.spike[cut],
            split=self.split[cut],
            confirm_row=self.confirm_row[cut] - np.int32(start),
            removed=self.removed[cut],
        )

    def columns(self, cols: IntArray | list[int] | slice) -> BarFlags:
        """Only the columns ``cols`` (in that order)."""
        return BarFlags(**{name: getattr(self, name)[:, cols] for name in _FLAG_FIELDS})

    def with_columns(self, cols: IntArray, other: BarFlags) -> BarFlags:
        """A copy whose columns ``cols`` are replaced by ``other``'s (same rows)."""
        out: dict[str, Any] = {}
        for name in _FLAG_FIELDS:
            arr = getattr(self, name).copy()
            arr[:, cols] = getattr(other, name)
            out[name] = arr
        return BarFlags(**out)


_FLAG_FIELDS: Final = (
    "present",
    "defect",
    "prev_row",
    "implausible",
    "spike",
    "split",
    "confirm_row",
    "removed",
)


def _defects(panel: BarPanel) -> tuple[BoolArray, Int8Array]:
    """Which bars are present, and each present bar's first defect (1 + DEFECTS index)."""
    o, h, lo, c = panel.open, panel.high, panel.low, panel.close
    finite = [np.isfinite(getattr(panel, name)) for name in FIELDS]
    present = np.logical_or.reduce(finite)
    complete = np.logical_and.reduce(finite)
    defect = np.zeros(panel.shape, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        top = np.maximum(o, c)
        bottom = np.minimum(o, c)
        outside = (h < top * (1.0 - PRICE_TOL)) | (lo > bottom * (1.0 + PRICE_TOL))
        # Assigned from the last rule to the first, so the first rule a bar breaks wins.
        defect[outside] = 4
        defect[h < lo] = 3
        defect[(o <= 0.0) | (h <= 0.0) | (lo <= 0.0) | (c <= 0.0)] = 2
    defect[present & ~complete] = 1
    return present, defect


def _previous_rows(mask: BoolArray) -> Int32Array:
    """Per cell, the last row strictly before it where ``mask`` is True (-1 for none)."""
    t_len = mask.shape[0]
    rows = np.arange(t_len, dtype=np.int32)[:, None]
    last = np.maximum.accumulate(np.where(mask, rows, np.int32(-1)), axis=0)
    out = np.full(mask.shape, -1, dtype=np.int32)
    out[1:] = last[:-1]
    return out


def _next_rows(mask: BoolArray) -> Int32Array:
    """Per cell, the first row strictly after it where ``mask`` is True (-1 for none)."""
    t_len = mask.shape[0]
    rows = np.arange(t_len, dtype=np.int32)[:, None]
    nxt = np.minimum.accumulate(np.where(mask, rows, np.int32(t_len))[::-1], axis=0)[::-1]
    out = np.full(mask.shape, t_len, dtype=np.int32)
    out[:-1] = nxt[1:]
    out[out == t_len] = -1
    return out


def _at_rows(x: FloatArray, rows: Int32Array) -> FloatArray:
    """``x[rows[t, j], j]`` per cell, NaN where ``rows`` is negative."""
    out = np.take_along_axis(x, np.maximum(rows, 0), axis=0)
    out[rows < 0] = np.nan
    return out


def _sequential_moves(
    close: FloatArray, good: BoolArray, next_close: FloatArray, limit: float
) -> tuple[Int32Array, BoolArray, BoolArray]:
    """(prev_row, implausible, spike) with the previous good close updated bar by bar.

    Loops over rows, vectorised across the columns given (only those with an
    implausible move: elsewhere the previous good bar is simply the previous bar).
    """
    t_len, n_cols = close.shape
    prev_row = np.full((t_len, n_cols), -1, dtype=np.int32)
    implausible = np.zeros((t_len, n_cols), dtype=np.bool_)
    spike = np.zeros((t_len, n_cols), dtype=np.bool_)
    p = np.full(n_cols, np.nan)
    p_row = np.full(n_cols, -1, dtype=np.int32)
    any_good: list[bool] = np.logical_or.reduce(good, axis=1).tolist()
    with np.errstate(invalid="ignore", divide="ignore"):
        for t in range(t_len):
            if not any_good[t]:
                continue
            g = good[t]
            prev_row[t] = p_row
            imp = g & (np.abs(close[t] / p - 1.0) > limit)
            back = np.abs(next_close[t] / p - 1.0) <= limit
            spk = imp & back
            keep = g & ~spk & ~(imp & np.isnan(next_close[t]))
            implausible[t] = imp
            spike[t] = spk
            p = np.where(keep, close[t], p)
            p_row = np.where(keep, np.int32(t), p_row)
    return prev_row, implausible, spike


def _splits(
    open_: FloatArray, prev_close: FloatArray, judged: BoolArray, tolerance: float
) -> Int8Array:
    """Index into SPLIT_RATIOS where the open gaps by a split ratio, else -1."""
    split = np.full(open_.shape, -1, dtype=np.int8)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = open_ / prev_close
        far = judged & (
            (gap < _FORWARD_MAX * (1.0 + tolerance)) | (gap > _REVERSE_MIN * (1.0 - tolerance))
        )
    cells = np.flatnonzero(far)
    if not cells.size:
        return split
    gaps = gap.ravel()[cells]
    found = np.full(cells.size, -1, dtype=np.int8)
    for k, (_, factor) in enumerate(SPLIT_RATIOS):
        hit = (np.abs(gaps / factor - 1.0) <= tolerance) & (found < 0)
        found[hit] = k
    split.ravel()[cells] = found
    return split


def scan_bars(panel: BarPanel, *, max_one_day_move: float, split_tolerance: float) -> BarFlags:
    """Flag every bar of ``panel``: defects, implausible moves, bad prints, probable splits."""
    present, defect = _defects(panel)
    good = present & (defect == 0)
    c = panel.close
    limit = max_one_day_move + MOVE_TOL
    prev_row = _previous_rows(good)
    next_good = _next_rows(good)
    next_close = _at_rows(c, next_good)
    prev_close = _at_rows(c, prev_row)
    with np.errstate(invalid="ignore", divide="ignore"):
        naive = good & (np.abs(c / prev_close - 1.0) > limit)
    implausible = np.zeros(panel.shape, dtype=np.bool_)
    spike = np.zeros(panel.shape, dtype=np.bool_)
    seq = np.flatnonzero(naive.any(axis=0))
    if seq.size:
        # Without an implausible move nothing is removed, so the previous good bar is
        # the previous bar; where there is one, removals change what "previous" means.
        rows, imp, spk = _sequential_moves(c[:, seq], good[:, seq], next_close[:, seq], limit)
        prev_row[:, seq] = rows
        prev_close[:, seq] = _at_rows(c[:, seq], rows)
        implausible[:, seq] = imp
        spike[:, seq] = spk
    unconfirmed = implausible & (next_good < 0)
    np.copyto(prev_row, np.int32(-1), where=~good)
    # Bad prints are flagged too: a window ending on one cannot know it is one yet.
    split = _splits(panel.open, prev_close, prev_row >= 0, split_tolerance)
    confirm_row = np.full(panel.shape, -1, dtype=np.int32)
    np.copyto(confirm_row, next_good, where=spike)
    has_defect = defect > 0
    if has_defect.any():
        np.copyto(confirm_row, _next_rows(present), where=has_defect)
    return BarFlags(
        present=present,
        defect=defect,
        prev_row=prev_row,
        implausible=implausible,
        spike=spike,
        split=split,
        confirm_row=confirm_row,
        removed=has_defect | spike | unconfirmed,
    )


# ---------------------------------------------------------------------------
# one window


@dataclass(frozen=True, slots=True, eq=False)
class WindowJudgement:
    """What one window's bars say, per column of the window's panel.

    ``clean`` is the panel with every removed bar blanked (all fields NaN). Per
    column (N,): ``last_row`` the last present bar (-1: none) and ``last_defect`` its
    defect (0: none); ``unconfirmed_row`` the last good bar when its move is
    implausible (-1: none); ``split_row`` / ``split_count`` the first probable split
    and how many there are. ``rescanned`` are the columns whose flags were computed
    again on the window (the history had removed the window's first good bar).
    """

    flags: BarFlags
    clean: BarPanel
    last_row: IntArray
    last_defect: Int8Array
    unconfirmed_row: IntArray
    split_row: IntArray
    split_count: IntArray
    rescanned: IntArray
    notes: tuple[str, ...]


Scan = Callable[[BarPanel], BarFlags]


def first_true(mask: BoolArray) -> IntArray:
    """Per column, the first row where ``mask`` is True (-1 for none)."""
    if not mask.shape[0]:
        return np.full(mask.shape[1], -1, dtype=np.intp)
    rows: IntArray = np.where(mask.any(axis=0), mask.argmax(axis=0), -1)
    return rows


def last_true(mask: BoolArray) -> IntArray:
    """Per column, the last row where ``mask`` is True (-1 for none)."""
    t_len = mask.shape[0]
    if not t_len:
        return np.full(mask.shape[1], -1, dtype=np.intp)
    rows: IntArray = np.where(mask.any(axis=0), t_len - 1 - mask[::-1].argmax(axis=0), -1)
    return rows


def _pick(
    mask: npt.NDArray[np.generic], rows: IntArray, default: bool | int = False
) -> npt.NDArray[np.generic]:
    """``mask[rows[j], j]`` per column, ``default`` where ``rows`` is -1."""
    if not mask.shape[0]:
        return np.full(mask.shape[1], default, dtype=mask.dtype)
    cols = np.arange(mask.shape[1])
    picked: npt.NDArray[np.generic] = np.where(rows >= 0, mask[np.maximum(rows, 0), cols], default)
    return picked


def judge_window(panel: BarPanel, flags: BarFlags, scan: Scan) -> WindowJudgement:
    """Settle the window's edges on ``flags`` (rows of ``panel``) and blank removed bars.

    ``scan`` flags a panel afresh (``scan_bars`` with the window's parameters); it is
    called only for columns whose first good bar the given flags had removed.
    """
    t_len = panel.shape[0]
    first = first_true(flags.good)
    again = np.flatnonzero(_pick(flags.removed, first).astype(np.bool_))
    if again.size:
        flags = flags.with_columns(again, scan(panel.select([panel.symbols[j] for j in again])))
        first = first_true(flags.good)
    rows = np.arange(t_len)[:, None]
    after_first = rows > first[None, :]  # the first good bar has no previous close here
    last_good = last_true(flags.good)
    unconfirmed = _pick(flags.implausible, last_good).astype(np.bool_) & (last_good > first)
    unconfirmed_row = np.where(unconfirmed, last_good, -1)
    removed = flags.removed.copy()
    removed[last_good[unconfirmed], np.flatnonzero(unconfirmed)] = True
    # A bad print is no split, unless the window ends on it and cannot tell yet.
    at_last = rows == last_good[None, :]
    splits = (flags.split >= 0) & after_first & (~flags.spike | at_last)
    last_row = last_true(flags.present)
    last_defect = _pick(flags.defect, last_row, 0)
    clean = blank(panel, removed)
    return WindowJudgement(
        flags=flags,
        clean=clean,
        last_row=last_row,
        last_defect=last_defect.astype(np.int8),
        unconfirmed_row=unconfirmed_row,
        split_row=first_true(splits),
        split_count=np.count_nonzero(splits, axis=0),
        rescanned=again,
        notes=_repair_notes(panel, flags),
    )


def blank(panel: BarPanel, removed: BoolArray) -> BarPanel:
    """``panel`` with the ``removed`` bars' fields NaN (``panel`` itself when none is)."""
    cells = np.flatnonzero(removed)
    if not cells.size:
        return panel
    arrays = {}
    for name in FIELDS:
        arr = getattr(panel, name).copy()
        np.put(arr, cells, np.nan)
        arrays[name] = arr
    return BarPanel(dates=panel.dates, symbols=panel.symbols, **arrays)


def _repair_notes(panel: BarPanel, flags: BarFlags) -> tuple[str, ...]:
    """One line per bar whose removal the window's newest bar settled.

    A removal is reported once, in the cycle whose newest bar decides it (the next
    good bar after a bad print, the next bar after a defect); later windows still
    remove the bar without repeating the note.
    """
    t_len = panel.shape[0]
    if not t_len:
        return ()
    settled = (flags.spike | (flags.defect > 0)) & (flags.confirm_row == t_len - 1)
    out: list[str] = []
    for t, j in zip(*np.nonzero(settled), strict=True):
        out.append(removal_note(panel, flags, int(t), int(j)))
    return tuple(out)


def removal_note(panel: BarPanel, flags: BarFlags, t: int, j: int) -> str:
    """The note for the removal of bar ``t`` of column ``j`` (a defect or a bad print)."""
    symbol, day = panel.symbols[j], day_of(panel, t)
    code = int(flags.defect[t, j])
    if code:
        values = ", ".join(f"{name}={getattr(panel, name)[t, j]:g}" for name in FIELDS)
        return f"{symbol}: bar {day} removed: {DEFECT_TEXT[DEFECTS[code - 1]]} ({values})"
    c = panel.close[:, j]
    prev, nxt = c[flags.prev_row[t, j]], c[flags.confirm_row[t, j]]
    return (
        f"{symbol}: bar {day} removed as a bad print (close {c[t] / prev - 1.0:+.1%}, "
        f"{prev:g} -> {c[t]:g}, then back to {nxt:g})"
    )


def day_of(panel: BarPanel, row: int) -> dt.date:
    """The session of ``row``."""
    day: dt.date = panel.dates[row].date()
    return day


def split_label(index: int) -> str:
    """The split ratio ``index`` names, e.g. ``2:1``."""
    return SPLIT_RATIOS[index][0]


__all__ = [
    "DEFECTS",
    "SPLIT_RATIOS",
    "BarFlags",
    "WindowJudgement",
    "blank",
    "first_true",
    "judge_window",
    "last_true",
    "removal_note",
    "scan_bars",
]
