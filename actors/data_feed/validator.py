"""Data validation: which symbols' bars are fit to trade on in this cycle.

The reference system's ``data_validator`` checked freshness, completeness and
quality. Here a fault costs as little as it can:

* a bad *bar* costs that bar (``bar_repair``): a defective bar or an isolated
  bad print is removed -- blanked like a missing session, which indicators skip
  and ``max_missing_sessions`` counts -- and the repair is reported in ``notes``.
  Only the window's newest bar cannot be judged yet: a defect or an implausible
  move there holds the symbol for this cycle, and the next good bar restores it;
* a bad *symbol* (no data, stale, too short, too many missing sessions, a
  zero-volume run, a probable split, an unreadable file) costs that symbol: a
  ``SymbolRejected`` with a stable ``reason_code`` and the numbers behind it;
* only a market-wide failure halts the cycle: the feed as a whole is stale, or
  more than ``max_failed_share`` of the universe **and** at least
  ``min_failed_symbols`` symbols fail.

Every symbol with a good close in the window, rejected or not, gets its last
good close in ``last_prices`` (for a probable split, the close before it), so
the cycle still checks an open position's stop when its data is bad today.

The panel handed in *is* the window the strategies will use (the bars strictly
before ``asof``); ``sessions`` lists the exchange sessions it should contain.
A symbol is reported once, under the first rule it breaks in ``RULES`` order.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from actors.data_feed import bar_repair
from actors.data_feed.bar_repair import (
    DEFECT_TEXT,
    DEFECTS,
    HIGH_BELOW_LOW,
    INCONSISTENT_OHLC,
    NAN_VALUES,
    NON_POSITIVE_PRICE,
    BarFlags,
    WindowJudgement,
)
from actors.data_feed.panel import FIELDS, BarPanel
from actors.data_feed.params import ValidationParams
from actors.messages import LastPrice, SymbolRejected

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

BAD_FILE: Final = "bad_file"
NO_DATA: Final = "no_data"
PROBABLE_SPLIT: Final = "probable_split"
STALE: Final = "stale"
INSUFFICIENT_HISTORY: Final = "insufficient_history"
MISSING_SESSIONS: Final = "missing_sessions"
ZERO_VOLUME_RUN: Final = "zero_volume_run"
UNCONFIRMED_MOVE: Final = "unconfirmed_move"

# Order of precedence: a symbol is rejected under the first rule it breaks. A
# probable split comes first after no data: the cycle reads that code to hold the
# position's stop, whatever else is wrong with the symbol. The bar defects apply to
# the window's newest bar only (older bad bars are removed, not rejected).
RULES: Final[tuple[str, ...]] = (
    NO_DATA,
    PROBABLE_SPLIT,
    STALE,
    INSUFFICIENT_HISTORY,
    MISSING_SESSIONS,
    *DEFECTS,
    ZERO_VOLUME_RUN,
    UNCONFIRMED_MOVE,
)

__all__ = [
    "BAD_FILE",
    "HIGH_BELOW_LOW",
    "INCONSISTENT_OHLC",
    "INSUFFICIENT_HISTORY",
    "MISSING_SESSIONS",
    "NAN_VALUES",
    "NON_POSITIVE_PRICE",
    "NO_DATA",
    "PROBABLE_SPLIT",
    "RULES",
    "STALE",
    "UNCONFIRMED_MOVE",
    "ZERO_VOLUME_RUN",
    "ValidationReport",
    "check_dates",
    "halt_reason",
    "panel_without",
    "rejections",
    "run_lengths",
    "scan",
    "validate",
]


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Outcome of validating one cycle's panel.

    ``panel`` holds the valid symbols' bars with removed bars blanked; ``rescanned``
    names the symbols whose bar flags were recomputed on this window (the caller's
    precomputed indicators for them no longer match ``panel``).
    """

    valid_symbols: tuple[str, ...]
    rejected: tuple[SymbolRejected, ...]
    stale: bool
    failed_share: float
    halt: bool
    halt_reason: str | None
    panel: BarPanel = field(default_factory=BarPanel.empty)
    last_prices: dict[str, LastPrice] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    rescanned: tuple[str, ...] = ()


def panel_without(panel: BarPanel, rejected: Iterable[SymbolRejected]) -> BarPanel:
    """``panel`` minus the rejected symbols (symbols not in the panel are ignored)."""
    dropped = {r.symbol for r in rejected}
    return panel.select([s for s in panel.symbols if s not in dropped])


def scan(panel: BarPanel, params: ValidationParams) -> BarFlags:
    """``bar_repair.scan_bars`` with the validation parameters."""
    return bar_repair.scan_bars(
        panel, max_one_day_move=params.max_one_day_move, split_tolerance=params.split_tolerance
    )


def _day(ts: pd.Timestamp) -> str:
    return ts.date().isoformat()


def run_lengths(mask: BoolArray) -> IntArray:
    """Length of the run of True ending at each cell (0 where False)."""
    rows = np.arange(mask.shape[0])[:, None]
    last_false = np.maximum.accumulate(np.where(mask, -1, rows), axis=0)
    runs: IntArray = np.where(mask, rows - last_false, 0)
    return runs


def _missing_sessions(
    dates: pd.DatetimeIndex, has_close: BoolArray, present: BoolArray, sessions: Sequence[dt.date]
) -> tuple[IntArray, list[str | None]]:
    """Per column: expected sessions without a good close, and the first of them.

    Sessions before a symbol's first bar do not count (a recent listing is not
    missing data; ``insufficient_history`` judges whether it has enough); a removed
    bar does.
    """
    n_cols = has_close.shape[1]
    if not sessions or not has_close.shape[0]:
        return np.zeros(n_cols, dtype=np.intp), [None] * n_cols
    wanted = pd.DatetimeIndex([pd.Timestamp(s) for s in sessions])
    rows = dates.get_indexer(wanted)
    found = rows >= 0
    good = np.zeros((len(wanted), n_cols), dtype=np.bool_)
    good[found] = has_close[rows[found]]
    listed = dates.to_numpy()[present.argmax(axis=0)]
    missing = ~good & (wanted.to_numpy()[:, None] >= listed[None, :])
    count: IntArray = np.count_nonzero(missing, axis=0)
    first_idx = missing.argmax(axis=0)
    first = [_day(wanted[i]) if n else None for i, n in zip(first_idx, count, strict=True)]
    return count, first


@dataclass(frozen=True, slots=True)
class _Checks:
    """Per-rule (N,) failure masks, plus what the detail messages need."""

    failed: dict[str, BoolArray]
    n_closes: IntArray
    missing_count: IntArray
    missing_first: list[str | None]
    zero_run: IntArray


def _run_checks(
    judged: WindowJudgement,
    *,
    expected_last_session: dt.date,
    sessions: Sequence[dt.date],
    min_bars: int,
    params: ValidationParams,
) -> _Checks:
    clean = judged.clean
    t_len, n_cols = clean.shape
    present = judged.flags.present
    has_close = np.isfinite(clean.close)
    n_closes: IntArray = np.count_nonzero(has_close, axis=0)
    no_data = judged.last_row < 0
    last_dates = clean.dates[np.maximum(judged.last_row, 0)] if t_len else pd.DatetimeIndex([])
    stale = ~no_data & (last_dates < pd.Timestamp(expected_last_session) if t_len else True)
    missing_count, missing_first = _missing_sessions(clean.dates, has_close, present, sessions)
    with np.errstate(invalid="ignore"):
        zero_run = run_lengths(clean.volume == 0.0)
    longest = zero_run.max(axis=0) if t_len else np.zeros(n_cols, dtype=np.intp)
    failed = {
        NO_DATA: no_data,
        PROBABLE_SPLIT: judged.split_count > 0,
        STALE: stale,
        INSUFFICIENT_HISTORY: n_closes < min_bars,
        MISSING_SESSIONS: missing_count > params.max_missing_sessions,
        **{code: judged.last_defect == k + 1 for k, code in enumerate(DEFECTS)},
        ZERO_VOLUME_RUN: longest > params.max_zero_volume_run,
        UNCONFIRMED_MOVE: judged.unconfirmed_row >= 0,
    }
    return _Checks(
        failed=failed,
        n_closes=n_closes,
        missing_count=missing_count,
        missing_first=missing_first,
        zero_run=zero_run,
    )


@dataclass(frozen=True, slots=True)
class _Details:
    """The detail message of each rule for one column of the checked panel."""

    panel: BarPanel  # the raw window (removed bars still visible)
    judged: WindowJudgement
    checks: _Checks
    expected_last_session: dt.date
    n_sessions: int
    min_bars: int
    params: ValidationParams

    def text(self, rule: str, j: int) -> str:
        if rule in DEFECTS:
            return self._last_bar_defect(rule, j)
        handlers: dict[str, Callable[[int], str]] = {
            NO_DATA: lambda _j: "no bars in the window",
            PROBABLE_SPLIT: self._split,
            STALE: self._stale,
            INSUFFICIENT_HISTORY: lambda j: (
                f"{self.checks.n_closes[j]} valid closes, need {self.min_bars}"
            ),
            MISSING_SESSIONS: self._missing,
            ZERO_VOLUME_RUN: self._zero_volume,
            UNCONFIRMED_MOVE: self._unconfirmed,
        }
        return handlers[rule](j)

    def _bar(self, row: int, j: int) -> str:
        values = ", ".join(f"{f}={getattr(self.panel, f)[row, j]:g}" for f in FIELDS)
        return f"{_day(self.panel.dates[row])} ({values})"

    def _prev(self, row: int, j: int) -> tuple[float, str]:
        """The previous good close of the bar at ``row`` and its session."""
        prev = int(self.judged.flags.prev_row[row, j])
        return float(self.panel.close[prev, j]), _day(self.panel.dates[prev])

    def _stale(self, j: int) -> str:
        last = _day(self.panel.dates[self.judged.last_row[j]])
        return f"last bar {last}, expected {self.expected_last_session.isoformat()}"

    def _missing(self, j: int) -> str:
        return (
            f"{self.checks.missing_count[j]} of {self.n_sessions} expected sessions without "
            f"a good bar (limit {self.params.max_missing_sessions}), "
            f"first {self.checks.missing_first[j]}"
        )

    def _zero_volume(self, j: int) -> str:
        runs = self.checks.zero_run[:, j]
        end = int(runs.argmax())
        return (
            f"{runs[end]} consecutive zero-volume sessions ending {_day(self.panel.dates[end])} "
            f"(limit {self.params.max_zero_volume_run})"
        )

    def _last_bar_defect(self, rule: str, j: int) -> str:
        row = int(self.judged.last_row[j])
        return (
            f"the newest bar {self._bar(row, j)} has {DEFECT_TEXT[rule]}: removed, and the "
            "symbol held for this cycle (the next good bar restores it)"
        )

    def _unconfirmed(self, j: int) -> str:
        row = int(self.judged.unconfirmed_row[j])
        prev, when = self._prev(row, j)
        close = float(self.panel.close[row, j])
        return (
            f"close moved {close / prev - 1.0:+.1%} on {_day(self.panel.dates[row])} "
            f"({prev:g} -> {close:g}), limit {self.params.max_one_day_move:.0%}: a bad print "
            f"or a real move, the next bar will tell; last good close {prev:g} of {when}"
        )

    def _split(self, j: int) -> str:
        row = int(self.judged.split_row[j])
        prev, when = self._prev(row, j)
        opened = float(self.panel.open[row, j])
        label = bar_repair.split_label(int(self.judged.flags.split[row, j]))
        count = int(self.judged.split_count[j])
        more = f"; {count} such jumps in the window" if count > 1 else ""
        return (
            f"probable {label} split on {_day(self.panel.dates[row])}: open {opened:g} against "
            f"the previous close {prev:g} of {when} (x{opened / prev:.4f}, within "
            f"{self.params.split_tolerance:.0%} of a {label} ratio): unadjusted prices; stops "
            f"compare against the pre-split close {prev:g}{more}"
        )


def _last_prices(judged: WindowJudgement) -> dict[str, LastPrice]:
    """Each column's last good close (before the first probable split, when there is one)."""
    clean = judged.clean
    last = bar_repair.last_true(np.isfinite(clean.close))
    held = np.flatnonzero(judged.split_row >= 0)
    last[held] = judged.flags.prev_row[judged.split_row[held], held]
    cols = np.flatnonzero(last >= 0)
    rows = last[cols]
    days = clean.dates.date  # python dates, boxed once
    prices = clean.close[rows, cols].tolist()
    return {
        clean.symbols[j]: LastPrice(price, days[row])
        for j, row, price in zip(cols.tolist(), rows.tolist(), prices, strict=True)
    }


def check_dates(dates: pd.DatetimeIndex, asof: dt.date, expected_last_session: dt.date) -> None:
    """Raise ``ValueError`` on look-ahead: a bar (of ``dates``) or the expected session
    on or after ``asof``."""
    asof_ts = pd.Timestamp(asof)
    if len(dates) and dates[-1] >= asof_ts:
        raise ValueError(
            f"look-ahead: panel has a bar dated {_day(dates[-1])}, "
            f"on or after asof {asof.isoformat()}"
        )
    if pd.Timestamp(expected_last_session) >= asof_ts:
        raise ValueError(
            f"expected_last_session {expected_last_session.isoformat()} "
            f"is not before asof {asof.isoformat()}"
        )


def _newest_bar(judged: WindowJudgement) -> pd.Timestamp | None:
    """The session of the window's newest bar of any symbol (None: no bar at all)."""
    present_rows = np.flatnonzero(judged.flags.present.any(axis=1))
    return judged.clean.dates[present_rows[-1]] if present_rows.size else None


def halt_reason(
    newest: pd.Timestamp | None,
    rejected: Sequence[SymbolRejected],
    n_names: int,
    expected_last_session: dt.date,
    params: ValidationParams,
) -> tuple[bool, str | None]:
    """(feed stale, why the cycle halts or None): market-wide failure only.

    ``newest`` is the session of the newest bar of any checked symbol (None: none).
    """
    feed_stale = newest is None or newest < pd.Timestamp(expected_last_session)
    codes = Counter(r.reason_code for r in rejected)
    summary = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
    failed_share = len(rejected) / n_names if n_names else 0.0
    if feed_stale:
        last = "none" if newest is None else _day(newest)
        why = f"feed stale: newest bar {last}, expected {expected_last_session.isoformat()}"
        return True, why + (f" ({summary})" if summary else "")
    if failed_share > params.max_failed_share and len(rejected) >= params.min_failed_symbols:
        return False, (
            f"{len(rejected)} of {n_names} symbols ({failed_share:.1%}) failed validation "
            f"({summary}), limit {params.max_failed_share:.1%} and "
            f"{params.min_failed_symbols} symbols"
        )
    return False, None


def rejections(
    checked: BarPanel,
    judged: WindowJudgement,
    *,
    expected_last_session: dt.date,
    sessions: Sequence[dt.date],
    min_bars: int,
    params: ValidationParams,
) -> dict[str, SymbolRejected]:
    """The symbols of ``checked`` that break a rule, each under the first it breaks.

    ``judged`` is ``bar_repair.judge_window`` of ``checked``. Each column is judged on
    its own bars only, so any subset of a window's columns gets the same answers.
    """
    checks = _run_checks(
        judged,
        expected_last_session=expected_last_session,
        sessions=sessions,
        min_bars=min_bars,
        params=params,
    )
    details = _Details(
        checked, judged, checks, expected_last_session, len(sessions), min_bars, params
    )
    # First failing rule per column, vectorised: stack the masks in RULES order.
    stacked = np.vstack([checks.failed[rule] for rule in RULES])
    first_rule = stacked.argmax(axis=0)
    out: dict[str, SymbolRejected] = {}
    for j in np.flatnonzero(stacked.any(axis=0)).tolist():
        rule = RULES[int(first_rule[j])]
        symbol = checked.symbols[j]
        out[symbol] = SymbolRejected(symbol, rule, details.text(rule, j))
    return out


def validate(
    panel: BarPanel,
    *,
    asof: dt.date,
    expected_last_session: dt.date,
    sessions: Sequence[dt.date],
    min_bars: int,
    params: ValidationParams,
    universe: Sequence[str] | None = None,
    problems: Mapping[str, str] | None = None,
    flags: BarFlags | None = None,
) -> ValidationReport:
    """Validate ``panel`` (bars strictly before ``asof``) for the cycle on ``asof``.

    ``universe``, when given, is the set of symbols to check: any not in the panel is
    rejected as ``no_data`` and panel columns outside it are ignored. Without it every
    panel column (and every symbol in ``problems``) is checked. ``problems`` maps a
    symbol the provider could not read to why (``bad_file``). ``flags`` are the bar
    flags of ``panel`` precomputed over a longer history (a backtest); without them
    the window is scanned here. A bar dated on or after ``asof`` is look-ahead and
    raises ``ValueError``; so does an ``expected_last_session`` not before ``asof``.
    """
    check_dates(panel.dates, asof, expected_last_session)
    problems = problems or {}
    in_panel = set(panel.symbols)
    if universe is None:
        names = [*panel.symbols, *(s for s in problems if s not in in_panel)]
    else:
        names = list(dict.fromkeys(universe))
    reasons: dict[str, SymbolRejected] = {}
    for s in names:
        if s in problems:
            reasons[s] = SymbolRejected(symbol=s, reason_code=BAD_FILE, details=problems[s])
        elif s not in in_panel:
            reasons[s] = SymbolRejected(s, NO_DATA, "not in the fetched bars")
    to_check = [s for s in names if s not in reasons]
    checked = panel if tuple(to_check) == panel.symbols else panel.select(to_check)
    if flags is None:
        window_flags = scan(checked, params)
    else:
        index = {s: i for i, s in enumerate(panel.symbols)}
        same = checked is panel
        window_flags = flags if same else flags.columns([index[s] for s in to_check])
    judged = bar_repair.judge_window(checked, window_flags, lambda p: scan(p, params))
    reasons.update(
        rejections(
            checked,
            judged,
            expected_last_session=expected_last_session,
            sessions=sessions,
            min_bars=min_bars,
            params=params,
        )
    )
    rejected = tuple(reasons[s] for s in names if s in reasons)
    valid = tuple(s for s in names if s not in reasons)
    newest = _newest_bar(judged)
    stale, why = halt_reason(newest, rejected, len(names), expected_last_session, params)
    return ValidationReport(
        valid_symbols=valid,
        rejected=rejected,
        stale=stale,
        failed_share=len(rejected) / len(names) if names else 0.0,
        halt=why is not None,
        halt_reason=why,
        panel=judged.clean if valid == checked.symbols else judged.clean.select(valid),
        last_prices=_last_prices(judged),
        notes=judged.notes,
        rescanned=tuple(checked.symbols[j] for j in judged.rescanned.tolist()),
    )
