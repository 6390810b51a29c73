"""Data validation: which symbols' bars are fit to trade on in this cycle.

The reference system's ``data_validator`` checked freshness, completeness and
quality; here every check is one vectorised pass over the (T, N) panel and
each failure is a ``SymbolRejected`` with a stable ``reason_code`` and the
numbers behind it. The panel handed in *is* the window the strategies will
use (the bars strictly before ``asof``), so every rule looks at all of it;
``sessions`` lists the exchange sessions that window should contain.

A symbol is reported once, under the first rule it breaks in ``RULES`` order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from actors.data_feed.panel import BarPanel, FloatArray
from actors.data_feed.params import ValidationParams
from actors.messages import SymbolRejected

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

NO_DATA: Final = "no_data"
STALE: Final = "stale"
INSUFFICIENT_HISTORY: Final = "insufficient_history"
MISSING_SESSIONS: Final = "missing_sessions"
NAN_VALUES: Final = "nan_values"
NON_POSITIVE_PRICE: Final = "non_positive_price"
HIGH_BELOW_LOW: Final = "high_below_low"
INCONSISTENT_OHLC: Final = "inconsistent_ohlc"
ZERO_VOLUME_RUN: Final = "zero_volume_run"
IMPLAUSIBLE_MOVE: Final = "implausible_move"

# Order of precedence: a symbol is rejected under the first rule it breaks.
RULES: Final[tuple[str, ...]] = (
    NO_DATA,
    STALE,
    INSUFFICIENT_HISTORY,
    MISSING_SESSIONS,
    NAN_VALUES,
    NON_POSITIVE_PRICE,
    HIGH_BELOW_LOW,
    INCONSISTENT_OHLC,
    ZERO_VOLUME_RUN,
    IMPLAUSIBLE_MOVE,
)

# Float noise allowed when comparing prices (relative) and moves (absolute), so a
# quote printed as high == close, or a move of exactly the limit, is not flagged.
_PRICE_TOL: Final = 1e-9
_MOVE_TOL: Final = 1e-12


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Outcome of validating one cycle's panel."""

    valid_symbols: tuple[str, ...]
    rejected: tuple[SymbolRejected, ...]
    stale: bool
    failed_share: float
    halt: bool
    halt_reason: str | None


def panel_without(panel: BarPanel, rejected: Iterable[SymbolRejected]) -> BarPanel:
    """``panel`` minus the rejected symbols (symbols not in the panel are ignored)."""
    dropped = {r.symbol for r in rejected}
    return panel.select([s for s in panel.symbols if s not in dropped])


def _day(ts: pd.Timestamp) -> str:
    return ts.date().isoformat()


def _last_true_row(mask: BoolArray) -> IntArray:
    """Per column, the last row where ``mask`` is True (undefined for all-False columns)."""
    rows: IntArray = mask.shape[0] - 1 - mask[::-1].argmax(axis=0)
    return rows


def _run_lengths(mask: BoolArray) -> IntArray:
    """Length of the run of True ending at each cell (0 where False)."""
    rows = np.arange(mask.shape[0])[:, None]
    last_false = np.maximum.accumulate(np.where(mask, -1, rows), axis=0)
    runs: IntArray = np.where(mask, rows - last_false, 0)
    return runs


@dataclass(frozen=True, slots=True)
class _Checks:
    """Per-rule (N,) failure masks, plus what the detail messages need."""

    failed: dict[str, BoolArray]
    n_closes: IntArray
    last_row: IntArray
    missing_count: IntArray
    missing_first: list[str | None]
    partial: BoolArray
    non_positive: BoolArray
    high_below_low: BoolArray
    inconsistent: BoolArray
    zero_run: IntArray
    move: FloatArray
    prev_close: FloatArray


def _missing_sessions(
    dates: pd.DatetimeIndex, has_close: BoolArray, sessions: Sequence[dt.date]
) -> tuple[IntArray, list[str | None]]:
    """Per column: expected sessions without a close, and the first of them.

    Sessions before a symbol's first close do not count (a recent listing is not
    missing data; ``insufficient_history`` judges whether it has enough).
    """
    n_cols = has_close.shape[1]
    if not sessions or not has_close.shape[0]:
        return np.zeros(n_cols, dtype=np.intp), [None] * n_cols
    wanted = pd.DatetimeIndex([pd.Timestamp(s) for s in sessions])
    rows = dates.get_indexer(wanted)
    present = np.zeros((len(wanted), n_cols), dtype=np.bool_)
    found = rows >= 0
    present[found] = has_close[rows[found]]
    listed = dates.to_numpy()[has_close.argmax(axis=0)]
    missing = ~present & (wanted.to_numpy()[:, None] >= listed[None, :])
    count: IntArray = np.count_nonzero(missing, axis=0)
    first_idx = missing.argmax(axis=0)
    first = [_day(wanted[i]) if n else None for i, n in zip(first_idx, count, strict=True)]
    return count, first


def _run_checks(
    panel: BarPanel,
    *,
    expected_last_session: dt.date,
    sessions: Sequence[dt.date],
    min_bars: int,
    params: ValidationParams,
) -> _Checks:
    o, h, lo, c, v = panel.open, panel.high, panel.low, panel.close, panel.volume
    t_len, n_cols = panel.shape
    has_close = np.isfinite(c)
    n_closes: IntArray = np.count_nonzero(has_close, axis=0)
    no_data = n_closes == 0
    last_row = _last_true_row(has_close) if t_len else np.zeros(n_cols, dtype=np.intp)
    expected = pd.Timestamp(expected_last_session)
    stale = ~no_data & (panel.dates[last_row] < expected if t_len else True)

    missing_count, missing_first = _missing_sessions(panel.dates, has_close, sessions)

    present = [np.isfinite(x) for x in (o, h, lo, c, v)]
    any_field = present[0] | present[1] | present[2] | present[3] | present[4]
    all_fields = present[0] & present[1] & present[2] & present[3] & present[4]
    partial = any_field & ~all_fields

    with np.errstate(invalid="ignore"):
        non_positive = (o <= 0.0) | (h <= 0.0) | (lo <= 0.0) | (c <= 0.0)
        high_below_low = h < lo
        top = np.maximum(o, c)
        bottom = np.minimum(o, c)
        inconsistent = (h < top * (1.0 - _PRICE_TOL)) | (lo > bottom * (1.0 + _PRICE_TOL))
        zero_run = _run_lengths(v == 0.0)

        # A move is measured from the previous *available* close, so a gap in the
        # data cannot hide a jump.
        rows = np.arange(t_len)[:, None]
        last_close_row = np.maximum.accumulate(np.where(has_close, rows, -1), axis=0)
        prev_row = np.full_like(last_close_row, -1)
        prev_row[1:] = last_close_row[:-1]
        prev_close = np.take_along_axis(c, np.maximum(prev_row, 0), axis=0)
        prev_close[prev_row < 0] = np.nan
        move = np.full_like(c, np.nan)
        np.divide(c, prev_close, out=move, where=prev_close > 0.0)
        move -= 1.0
        implausible = np.abs(move) > params.max_one_day_move + _MOVE_TOL

    failed = {
        NO_DATA: no_data,
        STALE: stale,
        INSUFFICIENT_HISTORY: n_closes < min_bars,
        MISSING_SESSIONS: missing_count > params.max_missing_sessions,
        NAN_VALUES: partial.any(axis=0),
        NON_POSITIVE_PRICE: non_positive.any(axis=0),
        HIGH_BELOW_LOW: high_below_low.any(axis=0),
        INCONSISTENT_OHLC: inconsistent.any(axis=0),
        ZERO_VOLUME_RUN: (
            zero_run.max(axis=0) > params.max_zero_volume_run
            if t_len
            else np.zeros(n_cols, dtype=np.bool_)
        ),
        IMPLAUSIBLE_MOVE: implausible.any(axis=0),
    }
    return _Checks(
        failed=failed,
        n_closes=n_closes,
        last_row=last_row,
        missing_count=missing_count,
        missing_first=missing_first,
        partial=partial,
        non_positive=non_positive,
        high_below_low=high_below_low,
        inconsistent=inconsistent,
        zero_run=zero_run,
        move=move,
        prev_close=prev_close,
    )


def _details(
    rule: str,
    j: int,
    panel: BarPanel,
    checks: _Checks,
    *,
    expected_last_session: dt.date,
    n_sessions: int,
    min_bars: int,
    params: ValidationParams,
) -> str:
    dates = panel.dates

    def first_bad(mask: BoolArray) -> tuple[int, int]:
        col = mask[:, j]
        return int(col.argmax()), int(np.count_nonzero(col))

    def bar(row: int) -> str:
        fields = ("open", "high", "low", "close", "volume")
        values = ", ".join(f"{f}={getattr(panel, f)[row, j]:g}" for f in fields)
        return f"{_day(dates[row])} ({values})"

    if rule == NO_DATA:
        return "no bars in the window"
    if rule == STALE:
        last = _day(dates[checks.last_row[j]])
        return f"last bar {last}, expected {expected_last_session.isoformat()}"
    if rule == INSUFFICIENT_HISTORY:
        return f"{checks.n_closes[j]} valid closes, need {min_bars}"
    if rule == MISSING_SESSIONS:
        return (
            f"{checks.missing_count[j]} of {n_sessions} expected sessions missing "
            f"(limit {params.max_missing_sessions}), first {checks.missing_first[j]}"
        )
    if rule == NAN_VALUES:
        row, count = first_bad(checks.partial)
        return f"{count} partial bar(s) with a missing field, first {bar(row)}"
    if rule == NON_POSITIVE_PRICE:
        row, count = first_bad(checks.non_positive)
        return f"{count} bar(s) with a price <= 0, first {bar(row)}"
    if rule == HIGH_BELOW_LOW:
        row, count = first_bad(checks.high_below_low)
        return f"{count} bar(s) with high < low, first {bar(row)}"
    if rule == INCONSISTENT_OHLC:
        row, count = first_bad(checks.inconsistent)
        return f"{count} bar(s) with open/close outside high-low, first {bar(row)}"
    if rule == ZERO_VOLUME_RUN:
        runs = checks.zero_run[:, j]
        end = int(runs.argmax())
        return (
            f"{runs[end]} consecutive zero-volume sessions ending {_day(dates[end])} "
            f"(limit {params.max_zero_volume_run})"
        )
    # IMPLAUSIBLE_MOVE
    moves = np.abs(np.nan_to_num(checks.move[:, j]))
    row = int(moves.argmax())
    n_big = int(np.count_nonzero(moves > params.max_one_day_move + _MOVE_TOL))
    return (
        f"close moved {checks.move[row, j]:+.1%} on {_day(dates[row])} "
        f"({checks.prev_close[row, j]:g} -> {panel.close[row, j]:g}), "
        f"limit {params.max_one_day_move:.0%}; {n_big} such move(s)"
    )


def validate(
    panel: BarPanel,
    *,
    asof: dt.date,
    expected_last_session: dt.date,
    sessions: Sequence[dt.date],
    min_bars: int,
    params: ValidationParams,
    universe: Sequence[str] | None = None,
) -> ValidationReport:
    """Validate ``panel`` (bars strictly before ``asof``) for the cycle on ``asof``.

    ``universe``, when given, is the set of symbols to check: any not in the panel is
    rejected as ``no_data`` and panel columns outside it are ignored. Without it every
    panel column is checked. A bar dated on or after ``asof`` is look-ahead and raises
    ``ValueError``; so does an ``expected_last_session`` that is not before ``asof``.
    """
    asof_ts = pd.Timestamp(asof)
    if len(panel.dates) and panel.dates[-1] >= asof_ts:
        raise ValueError(
            f"look-ahead: panel has a bar dated {_day(panel.dates[-1])}, "
            f"on or after asof {asof.isoformat()}"
        )
    if pd.Timestamp(expected_last_session) >= asof_ts:
        raise ValueError(
            f"expected_last_session {expected_last_session.isoformat()} "
            f"is not before asof {asof.isoformat()}"
        )

    if universe is None:
        names = list(panel.symbols)
        absent: list[str] = []
    else:
        names = list(dict.fromkeys(universe))
        in_panel = set(panel.symbols)
        absent = [s for s in names if s not in in_panel]
    absent_set = set(absent)
    checked = panel.select([s for s in names if s not in absent_set])
    checks = _run_checks(
        checked,
        expected_last_session=expected_last_session,
        sessions=sessions,
        min_bars=min_bars,
        params=params,
    )

    reasons: dict[str, SymbolRejected] = {
        s: SymbolRejected(symbol=s, reason_code=NO_DATA, details="not in the fetched bars")
        for s in absent
    }
    # First failing rule per column, vectorised: stack the masks in RULES order.
    stacked = np.vstack([checks.failed[rule] for rule in RULES])
    failing_cols = np.flatnonzero(stacked.any(axis=0))
    first_rule = stacked.argmax(axis=0)
    for j in failing_cols.tolist():
        rule = RULES[int(first_rule[j])]
        symbol = checked.symbols[j]
        reasons[symbol] = SymbolRejected(
            symbol=symbol,
            reason_code=rule,
            details=_details(
                rule,
                j,
                checked,
                checks,
                expected_last_session=expected_last_session,
                n_sessions=len(sessions),
                min_bars=min_bars,
                params=params,
            ),
        )

    rejected = tuple(reasons[s] for s in names if s in reasons)
    valid = tuple(s for s in names if s not in reasons)
    failed_share = len(rejected) / len(names) if names else 0.0

    has_close = np.isfinite(checked.close)
    any_rows = np.flatnonzero(has_close.any(axis=1))
    newest = checked.dates[any_rows[-1]] if any_rows.size else None
    feed_stale = newest is None or newest < pd.Timestamp(expected_last_session)

    halt_reason: str | None = None
    if feed_stale:
        last = "none" if newest is None else _day(newest)
        halt_reason = f"feed stale: newest bar {last}, expected {expected_last_session.isoformat()}"
    elif failed_share > params.max_failed_share:
        halt_reason = (
            f"{len(rejected)} of {len(names)} symbols ({failed_share:.1%}) failed "
            f"validation, limit {params.max_failed_share:.1%}"
        )
    return ValidationReport(
        valid_symbols=valid,
        rejected=rejected,
        stale=feed_stale,
        failed_share=failed_share,
        halt=halt_reason is not None,
        halt_reason=halt_reason,
    )
