"""Validation once over a backtest's history: each session's checks are lookups.

``validator.validate`` judges a window afresh, every bar of every symbol, every
cycle. A backtest has the whole history up front, and its bar flags
(``bar_repair.scan_bars`` over the history) are what each window would compute, so
what a window ``[start, stop)`` says of a symbol follows from a few rows -- its
first and last good bar in the window, its last bar -- and from running counts
between the window's two ends (closes kept, probable splits, zero-volume bars).
``CheckedHistory`` computes those per bar once (``bar_marks``); each session is then
O(symbols) lookups, and its bars and indicators are views of the history (times a
per-symbol factor while a split is not yet applied; a copy of the valid columns
when a symbol is rejected).

Per session, only what genuinely depends on the window is computed, and only for
the symbols concerned: the longest zero-volume run (symbols with enough zero-volume
bars in the window), a rejection's detail text (the rejected symbols' columns, by
the validator's own code) and the notes of the removals the newest bar settles.
A window the lookups cannot answer -- one whose first good bar the history removed
(``judge_window`` scans such a column again), one whose rows are not the expected
sessions, an empty one -- gets None: the feed validates that window in full.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from actors.data_feed.bar_repair import (
    BarFlags,
    BoolArray,
    Int32Array,
    IntArray,
    blank,
    judge_window,
    removal_note,
)
from actors.data_feed.market import PRICE_LEVEL_INDICATORS, PrecomputedMarket
from actors.data_feed.panel import FIELDS, BarPanel, FloatArray
from actors.data_feed.params import ValidationParams
from actors.data_feed.validator import (
    BAD_FILE,
    NO_DATA,
    ValidationReport,
    check_dates,
    halt_reason,
    rejections,
    run_lengths,
    scan,
)
from actors.messages import LastPrice, SymbolRejected

Columns = slice | IntArray


def next_at_or_after(mask: BoolArray) -> Int32Array:
    """(T+1, N): per row t, the first row >= t where ``mask`` is True (T for none)."""
    t_len, n_cols = mask.shape
    out = np.full((t_len + 1, n_cols), t_len, dtype=np.int32)
    if t_len:
        rows = np.arange(t_len, dtype=np.int32)[:, None]
        marked = np.where(mask, rows, np.int32(t_len))
        out[:t_len] = np.minimum.accumulate(marked[::-1], axis=0)[::-1]
    return out


def last_at_or_before(mask: BoolArray) -> Int32Array:
    """(T, N): per row t, the last row <= t where ``mask`` is True (-1 for none)."""
    rows = np.arange(mask.shape[0], dtype=np.int32)[:, None]
    last: Int32Array = np.maximum.accumulate(np.where(mask, rows, np.int32(-1)), axis=0)
    return last


def running_count(mask: BoolArray) -> Int32Array:
    """(T+1, N): per row t, how many rows before t have ``mask`` True."""
    out = np.zeros((mask.shape[0] + 1, mask.shape[1]), dtype=np.int32)
    np.cumsum(mask, axis=0, dtype=np.int32, out=out[1:])
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Marks:
    """Per bar of a history, the rows and running counts a window's checks read."""

    next_good: Int32Array  # (T+1, N) first good bar at or after the row
    last_good: Int32Array  # (T, N) last good bar at or before it
    next_present: Int32Array  # (T+1, N)
    last_present: Int32Array  # (T, N)
    last_close: Int32Array  # (T, N) last bar with a kept close at or before the row
    closes: Int32Array  # (T+1, N) kept closes before the row
    splits: Int32Array  # (T+1, N) probable splits that are not bad prints, before the row
    next_split: Int32Array  # (T+1, N)
    zero_volume: Int32Array  # (T+1, N) kept zero-volume bars before the row


def bar_marks(flags: BarFlags, clean: BarPanel) -> Marks:
    """``Marks`` of a history: ``flags`` its bar flags, ``clean`` its bars with the
    removed ones blanked."""
    good = flags.good
    kept_close = np.isfinite(clean.close)
    split = (flags.split >= 0) & ~flags.spike
    with np.errstate(invalid="ignore"):
        zero = clean.volume == 0.0
    return Marks(
        next_good=next_at_or_after(good),
        last_good=last_at_or_before(good),
        next_present=next_at_or_after(flags.present),
        last_present=last_at_or_before(flags.present),
        last_close=last_at_or_before(kept_close),
        closes=running_count(kept_close),
        splits=running_count(split),
        next_split=next_at_or_after(split),
        zero_volume=running_count(zero),
    )


@dataclass(frozen=True, slots=True, eq=False)
class WindowRows:
    """What the window ``[start, stop)`` says per symbol, in history rows (-1: none).

    ``unconfirmed``: the newest good bar's move is implausible (removed, the symbol
    held); ``closes``: the closes the window keeps; ``missing``: the sessions from
    the symbol's first bar on without one.
    """

    start: int
    stop: int
    first_good: IntArray
    last_good: IntArray
    last_bar: IntArray
    unconfirmed: BoolArray
    split_row: IntArray
    split_count: IntArray
    closes: IntArray
    missing: IntArray


def window_rows(marks: Marks, flags: BarFlags, start: int, stop: int) -> WindowRows | None:
    """``judge_window``'s per-column answers for rows ``[start, stop)``, by lookup.

    None when a column's first good bar in the window is one the history removed
    (the window scans that column again; see ``bar_repair``).
    """
    cols = np.arange(flags.present.shape[1])
    first = marks.next_good[start].astype(np.intp)
    has_good = first < stop
    at_first = np.where(has_good, first, 0)
    if bool((has_good & flags.removed[at_first, cols]).any()):
        return None
    first = np.where(has_good, first, -1)
    last_good = np.where(has_good, marks.last_good[stop - 1], -1)
    at_last = np.maximum(last_good, 0)
    later = has_good & (last_good > first)
    unconfirmed = later & flags.implausible[at_last, cols]
    last_bar = marks.last_present[stop - 1].astype(np.intp)
    last_bar = np.where(last_bar >= start, last_bar, -1)
    # Probable splits after the first good bar: not bad prints, except the newest good
    # bar's (the window cannot tell yet).
    after = np.where(has_good, first + 1, stop)
    at_newest = later & (flags.split[at_last, cols] >= 0) & flags.spike[at_last, cols]
    nxt = marks.next_split[after, cols]
    split_row = np.where(nxt < stop, nxt, np.where(at_newest, last_good, -1))
    split_count = marks.splits[stop] - marks.splits[after, cols] + at_newest
    blanked = unconfirmed & ~flags.removed[at_last, cols]
    closes = marks.closes[stop] - marks.closes[start] - blanked
    first_bar = marks.next_present[start]
    listed = np.where(first_bar < stop, first_bar, start)
    return WindowRows(
        start=start,
        stop=stop,
        first_good=first,
        last_good=last_good,
        last_bar=last_bar,
        unconfirmed=unconfirmed,
        split_row=split_row.astype(np.intp),
        split_count=split_count.astype(np.intp),
        closes=closes.astype(np.intp),
        missing=((stop - listed) - closes).astype(np.intp),
    )


def _columns_of(panel: BarPanel, symbols: Sequence[str]) -> Columns:
    """The panel columns of ``symbols``: a slice when they are consecutive and in order."""
    index = {s: i for i, s in enumerate(panel.symbols)}
    cols = np.array([index[s] for s in symbols], dtype=np.intp)
    if cols.size and bool(np.array_equal(cols, np.arange(cols[0], cols[0] + cols.size))):
        return slice(int(cols[0]), int(cols[0]) + cols.size)
    return cols


def _read_only(arr: FloatArray) -> FloatArray:
    """A view of ``arr`` that cannot be written through (a snapshot may hand it out)."""
    view = arr.view()
    view.flags.writeable = False
    return view


def _panel_columns(panel: BarPanel, symbols: tuple[str, ...], cols: Columns) -> BarPanel:
    arrays = {name: _read_only(getattr(panel, name)[:, cols]) for name in FIELDS}
    return BarPanel(dates=panel.dates, symbols=symbols, **arrays)


def window_block(
    arrays: Sequence[FloatArray],
    rows: slice,
    cols: IntArray | None,
    factors: FloatArray | None,
    divide: Sequence[bool],
) -> list[FloatArray]:
    """``rows`` of each array (its columns ``cols``, or all) times ``factors`` (one per
    column; divided by them where ``divide``).

    Views when nothing changes; otherwise the arrays are slices of one new block (one
    allocation for them all).
    """
    if cols is None and factors is None:
        return [arr[rows] for arr in arrays]
    if not arrays:
        return []
    t_len, n_cols = arrays[0][rows].shape
    block = np.empty((len(arrays), t_len, n_cols if cols is None else cols.size))
    for out, arr, div in zip(block, arrays, divide, strict=True):
        part = arr[rows]
        if cols is not None:
            np.take(part, cols, axis=1, out=out, mode="clip")
            part = out
        if factors is not None:
            (np.divide if div else np.multiply)(part, factors, out=out)
    return list(block)


@dataclass(frozen=True, eq=False)
class CheckedHistory:
    """A backtest market's history for one universe, ready to validate any session.

    ``symbols`` are the universe symbols the market has bars for and the provider
    read (``names`` in order, without the others, which ``fixed`` rejects every
    session as ``validate`` would); ``raw``, ``clean`` (removed bars blanked),
    ``flags`` and ``indicators`` are the market's, in the columns of ``symbols``.
    """

    market: PrecomputedMarket
    names: tuple[str, ...]
    symbols: tuple[str, ...]
    cols: Columns
    fixed: dict[str, SymbolRejected]
    raw: BarPanel
    clean: BarPanel
    flags: BarFlags
    indicators: dict[str, FloatArray]
    marks: Marks
    days: npt.NDArray[np.datetime64]
    session_of: tuple[dt.date, ...]  # per row
    notes_at: tuple[Int32Array, Int32Array, Int32Array]  # settling row, bar row, column

    @classmethod
    def of(cls, market: PrecomputedMarket, universe: Sequence[str]) -> CheckedHistory:
        """Mark ``market``'s history (prepared) for the cycles of ``universe`` (blocking)."""
        if market.flags is None:
            raise ValueError("CheckedHistory needs a prepared market (bar flags)")
        names = tuple(dict.fromkeys(universe))
        in_panel = set(market.panel.symbols)
        fixed: dict[str, SymbolRejected] = {}
        for s in names:
            if s in market.problems:
                fixed[s] = SymbolRejected(
                    symbol=s, reason_code=BAD_FILE, details=market.problems[s]
                )
            elif s not in in_panel:
                fixed[s] = SymbolRejected(s, NO_DATA, "not in the fetched bars")
        symbols = tuple(s for s in names if s not in fixed)
        cols = _columns_of(market.panel, symbols)
        flags = market.flags.columns(cols)
        raw = _panel_columns(market.panel, symbols, cols)
        clean = blank(raw, flags.removed)
        if clean is not raw:
            clean = _panel_columns(clean, symbols, slice(None))
        settles = (flags.spike | (flags.defect > 0)) & (flags.confirm_row >= 0)
        rows, where = np.nonzero(settles)
        confirm = flags.confirm_row[rows, where]
        order = np.lexsort((where, rows, confirm))
        return cls(
            market=market,
            names=names,
            symbols=symbols,
            cols=cols,
            fixed=fixed,
            raw=raw,
            clean=clean,
            flags=flags,
            indicators={k: _read_only(v[:, cols]) for k, v in market.indicators.items()},
            marks=bar_marks(flags, clean),
            days=raw.dates.to_numpy().astype("datetime64[D]"),
            session_of=tuple(raw.dates.date),
            notes_at=(
                confirm[order].astype(np.int32),
                rows[order].astype(np.int32),
                where[order].astype(np.int32),
            ),
        )

    @property
    def params(self) -> ValidationParams:
        return self.market.validation

    def validate(
        self,
        asof: dt.date,
        *,
        history_days: int,
        expected_last_session: dt.date,
        sessions: Sequence[dt.date],
        min_bars: int,
    ) -> tuple[ValidationReport, dict[str, FloatArray]] | None:
        """``validate`` of the session ``asof``'s window and the valid symbols' indicators.

        The same report ``validator.validate`` gives on ``market.window(asof,
        history_days)`` for the universe; None for a window it must judge in full.
        """
        stop = int(self.days.searchsorted(np.datetime64(asof, "D"), side="left"))
        start = max(0, stop - history_days)
        check_dates(self.raw.dates[start:stop], asof, expected_last_session)
        if not self.symbols or stop == start or not self._are_sessions(start, stop, sessions):
            return None
        rows = window_rows(self.marks, self.flags, start, stop)
        if rows is None:
            return None
        factors = self._factors(asof)
        failed = self._failed(rows, expected_last_session, min_bars)
        reasons = dict(self.fixed)
        bad = np.flatnonzero(failed)
        if bad.size:
            found = self._rejections(
                rows,
                bad,
                factors=factors,
                expected_last_session=expected_last_session,
                sessions=sessions,
                min_bars=min_bars,
            )
            reasons.update(found)
        rejected = tuple(reasons[s] for s in self.names if s in reasons)
        keep = None if not bad.size else np.flatnonzero(~failed)
        valid = self.symbols if keep is None else tuple(self.symbols[j] for j in keep.tolist())
        newest = int(rows.last_bar.max())
        stale, why = halt_reason(
            self.raw.dates[newest] if newest >= 0 else None,
            rejected,
            len(self.names),
            expected_last_session,
            self.params,
        )
        bars, indicators = self._outputs(start, stop, keep, factors)
        report = ValidationReport(
            valid_symbols=valid,
            rejected=rejected,
            stale=stale,
            failed_share=len(rejected) / len(self.names),
            halt=why is not None,
            halt_reason=why,
            panel=BarPanel(dates=self.raw.dates[start:stop], symbols=valid, **bars),
            last_prices=self._last_prices(rows, factors),
            notes=self._notes(start, stop, factors),
        )
        return report, (indicators if valid else {})

    def _are_sessions(self, start: int, stop: int, sessions: Sequence[dt.date]) -> bool:
        """Whether the window's rows are exactly the expected ``sessions``."""
        return len(sessions) == stop - start and self.session_of[start:stop] == tuple(sessions)

    def _factors(self, asof: dt.date) -> FloatArray | None:
        """Per symbol, the ratios of its splits not yet applied on ``asof`` (None: all 1)."""
        factors = self.market.unapplied_factors(asof)
        if factors is None:
            return None
        mine: FloatArray = factors[self.cols]
        return None if bool(np.all(mine == 1.0)) else mine

    def _failed(self, rows: WindowRows, expected_last_session: dt.date, min_bars: int) -> BoolArray:
        """Per symbol, whether it breaks any of ``validator.RULES`` in the window."""
        cols = np.arange(len(self.symbols))
        no_data = rows.last_bar < 0
        at_bar = np.maximum(rows.last_bar, 0)
        stale = ~no_data & (self.days[at_bar] < np.datetime64(expected_last_session, "D"))
        defect = ~no_data & (self.flags.defect[at_bar, cols] > 0)
        failed: BoolArray = (
            no_data
            | (rows.split_count > 0)
            | stale
            | (rows.closes < min_bars)
            | (rows.missing > self.params.max_missing_sessions)
            | defect
            | rows.unconfirmed
        )
        return failed | self._zero_volume_runs(rows)

    def _zero_volume_runs(self, rows: WindowRows) -> BoolArray:
        """Per symbol, a run of zero-volume sessions in the window over the limit.

        Only a symbol with more zero-volume bars in the window than the limit can have
        such a run; its run lengths are computed on its window column.
        """
        limit = self.params.max_zero_volume_run
        counts = self.marks.zero_volume[rows.stop] - self.marks.zero_volume[rows.start]
        out = np.zeros(len(self.symbols), dtype=np.bool_)
        some = np.flatnonzero(counts > limit)
        if not some.size:
            return out
        with np.errstate(invalid="ignore"):
            zero = self.clean.volume[rows.start : rows.stop, some] == 0.0
        held = np.flatnonzero(rows.unconfirmed[some])
        zero[rows.last_good[some[held]] - rows.start, held] = False  # blanked as well
        out[some] = run_lengths(zero).max(axis=0) > limit
        return out

    def _rejections(
        self,
        rows: WindowRows,
        bad: IntArray,
        *,
        factors: FloatArray | None,
        expected_last_session: dt.date,
        sessions: Sequence[dt.date],
        min_bars: int,
    ) -> dict[str, SymbolRejected]:
        """The rejections of the columns ``bad``, by the validator on their window."""
        panel, flags = self._sub_window(rows.start, rows.stop, bad, factors)
        judged = judge_window(panel, flags, lambda p: scan(p, self.params))
        found = rejections(
            panel,
            judged,
            expected_last_session=expected_last_session,
            sessions=sessions,
            min_bars=min_bars,
            params=self.params,
        )
        assert set(found) == set(panel.symbols), "the lookups and the validator disagree"
        return found

    def _sub_window(
        self, start: int, stop: int, cols: IntArray, factors: FloatArray | None
    ) -> tuple[BarPanel, BarFlags]:
        """The raw bars (as ``market.window`` gives them) and flags of ``cols``."""
        symbols = tuple(self.symbols[j] for j in cols.tolist())
        arrays = window_block(
            [getattr(self.raw, name) for name in FIELDS],
            slice(start, stop),
            cols,
            None if factors is None else factors[cols],
            divide=[name == "volume" for name in FIELDS],
        )
        panel = BarPanel(
            dates=self.raw.dates[start:stop],
            symbols=symbols,
            **dict(zip(FIELDS, arrays, strict=True)),
        )
        return panel, self.flags.columns(cols).rows(start, stop)

    def _outputs(
        self, start: int, stop: int, cols: IntArray | None, factors: FloatArray | None
    ) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
        """The window's clean bars (by field) and indicators (by key), all columns or
        ``cols``, in the scale of the session (as ``market.window`` gives them)."""
        rows = slice(start, stop)
        mine = factors if cols is None or factors is None else factors[cols]
        levels = [k for k in self.indicators if k in PRICE_LEVEL_INDICATORS]
        ratios = [k for k in self.indicators if k not in PRICE_LEVEL_INDICATORS]
        scaled = window_block(
            [
                *(getattr(self.clean, name) for name in FIELDS),
                *(self.indicators[k] for k in levels),
            ],
            rows,
            cols,
            mine,
            divide=[name == "volume" for name in FIELDS] + [False] * len(levels),
        )
        plain = window_block(
            [self.indicators[k] for k in ratios], rows, cols, None, divide=[False] * len(ratios)
        )
        bars = dict(zip(FIELDS, scaled[: len(FIELDS)], strict=True))
        found = dict(zip(levels, scaled[len(FIELDS) :], strict=True))
        found.update(zip(ratios, plain, strict=True))
        return bars, {k: found[k] for k in self.indicators}

    def _last_prices(self, rows: WindowRows, factors: FloatArray | None) -> dict[str, LastPrice]:
        """Each symbol's last kept close in the window (before its first probable split)."""
        cols = np.arange(len(self.symbols))
        start = rows.start
        last = self.marks.last_close[rows.stop - 1].astype(np.intp)
        last = np.where(last >= start, last, -1)
        redo = rows.unconfirmed & (last == rows.last_good)  # that close is blanked
        if bool(redo.any()):
            before = self.marks.last_close[np.maximum(rows.last_good - 1, 0), cols]
            last = np.where(redo, np.where(before >= start, before, -1), last)
        held = rows.split_row >= 0
        if bool(held.any()):
            prev = self.flags.prev_row[np.maximum(rows.split_row, 0), cols]
            last = np.where(held, prev, last)
        at = np.flatnonzero(last >= 0)
        at_rows = last[at]
        prices = self.clean.close[at_rows, at]
        if factors is not None:
            prices = prices * factors[at]
        days = self.session_of
        return {
            self.symbols[j]: LastPrice(price, days[row])
            for j, row, price in zip(at.tolist(), at_rows.tolist(), prices.tolist(), strict=True)
        }

    def _notes(self, start: int, stop: int, factors: FloatArray | None) -> tuple[str, ...]:
        """The notes of the removals the window's newest bar settles, in bar order."""
        confirm, bar_rows, where = self.notes_at
        lo = int(confirm.searchsorted(stop - 1, side="left"))
        hi = int(confirm.searchsorted(stop - 1, side="right"))
        inside = bar_rows[lo:hi] >= start
        if not bool(inside.any()):
            return ()
        t, j = bar_rows[lo:hi][inside], where[lo:hi][inside]
        cols = np.unique(j).astype(np.intp)
        panel, flags = self._sub_window(start, stop, cols, factors)
        pos = {c: k for k, c in enumerate(cols.tolist())}
        return tuple(
            removal_note(panel, flags, row - start, pos[col])
            for row, col in zip(t.tolist(), j.tolist(), strict=True)
        )
