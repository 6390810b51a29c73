"""The embedded default: a deterministic synthetic market of correlated daily bars.

Determinism: a bar depends only on (seed, symbol, date) -- never on which
range or which other symbols were asked for. Everything is generated over a
fixed epoch (the XNYS sessions from 2000-01-03 to 2035-12-31) and sliced.

The model, per session t and symbol i (log prices):

- a market-wide volatility state (calm / normal / stressed, a Markov chain)
  sets the market's daily volatility; the VIX-like index is that volatility
  annualised (about 12 calm, 18 normal, 40 stressed) plus a little noise;
- returns follow a factor model: ``beta_i * market + gamma_i * sector(i) +
  idiosyncratic``, the sector chosen by a hash of the symbol, so symbols of
  one sector move together more than symbols of different sectors;
- the idiosyncratic part alternates per calendar-month block between trending
  stretches (a persistent drift, AR(1) across blocks) and mean-reverting ones
  (negatively autocorrelated days), so crossovers, RSI dips and momentum
  bursts all occur; its level is reflected at block ends to stay within about
  $5..$2,000, so no symbol dies or explodes over decades;
- opens gap part of the day's move, highs and lows add exponential wicks
  beyond the open/close body, volume spikes with large moves.

Speed: the month-block level of each symbol (about 430 blocks) is computed once
and cached; days are drawn only for the blocks asked for. Each symbol has its
own counter-addressable random stream (PCG64 seeded from SHA-256 of
(seed, symbol), jumped with ``advance``), so a block's draws are found without
drawing the blocks before it, and all symbols are then processed as one
vectorised (symbols x days) array computation.

Corporate actions (``corporate_actions_per_year`` above 0; at 0 there are none
and nothing above changes, to the bit): each symbol's actions over the epoch are
drawn once from their own stream (SHA-256 of (seed, symbol) again, under another
name), so the bars' streams are untouched. Ex dates are a Poisson process at the
rate, one action a session at most; each is a split (forward 2:1, 3:2 or 3:1 when
the price is at least $30, else reverse 1:10 or 1:5: companies split high prices
and consolidate low ones), a cash dividend (0.2-1 % of the price, one in ten a
special of 2-5 %, paid 5-19 sessions later) or, once per symbol at most and
about one action in 25, a rename to ``<symbol>.X`` (a suffix no listed ticker has,
so no other name is shadowed; symbols over 8 characters are never renamed). The
price used for a size or a direction is the close at the end of the month before
the ex date, on the price scale then.

The path generated above is then the *economic* path ``P_t`` (the value of one
share held since the epoch began); the price printed on day ``t`` is ``P_t /
C(t)`` (to the cent), volume ``x C(t)``, where ``C(t)`` is the product of the
ratios of the splits with ex date on or before ``t``. ``fetch(symbols, start,
end)`` returns those raw bars adjusted as of ``end``
(``actors.market.corporate_actions.adjust_history``), i.e. about ``P_t / C(end)``:
a bar depends on (seed, symbol, date, end). ``generate_raw`` gives the raw bars.
Cash dividends do not move the price path (they are cash on top of it).

A rename at ``R``: from a fetch whose ``end`` is on or after ``R``, the new symbol
serves the company's whole history (as a feed that maps symbols as of the asked
date does) and the old symbol keeps serving it as well; before ``R`` the new
symbol has no bars. Each name reports the company's actions under its own name
(the new symbol: from its first listed fetch on, every action but the rename,
which is reported on the old symbol only), so ``adjust_history(generate_raw(s,
a, b), corporate_actions(s, a, b), b) == fetch(s, a, b)`` for every name ``s``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import exchange_calendars
import numpy as np
import numpy.typing as npt
import pandas as pd

from actors.data_feed.params import SyntheticParams
from actors.data_feed.providers.base import empty_bars
from actors.data_feed.providers.synthetic_schedule import Schedule, ScheduleBuilder
from actors.market.corporate_actions import ActionKind, CorporateAction

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EPOCH_START = dt.date(2000, 1, 3)
EPOCH_END = dt.date(2035, 12, 31)

_DAYS = 24  # a calendar month has at most 23 NYSE sessions; blocks are padded to this
_U_PER_DAY = 5  # uniforms per day: two for Box-Muller (idiosyncratic, gap), wicks x2, volume
_U_PER_BLOCK = _DAYS * _U_PER_DAY  # even: float32 draws use half a 64-bit step each

_STATE_VOL = np.array([0.0065, 0.010, 0.022])  # daily market vol: calm, normal, stressed
_STATE_DRIFT = np.array([0.0006, 0.0003, -0.0012])
_TRANSITIONS = np.array(
    [
        [0.985, 0.015, 0.0],
        [0.010, 0.980, 0.010],
        [0.0, 0.040, 0.960],
    ]
)
_SECTOR_VOL = 0.75  # sector factor vol relative to the market's
_LOG_LO = float(np.log(5.0))
_LOG_HI = float(np.log(2000.0))

SOURCE = "synthetic"
RENAME_SUFFIX = ".X"
_MAX_SYMBOL = 10  # the universe's ticker shape allows at most 10 characters
_RENAME_SHARE = 0.04  # of the actions drawn: a rename (once per symbol at most) ...
_SPLIT_SHARE = 0.41  # ... a split; the rest cash dividends
_SPLIT_PRICE = 30.0  # a split at this price or above is forward, below it reverse
_PRICE_COLUMNS = ("open", "high", "low", "close")
_OHLCV = (*_PRICE_COLUMNS, "volume")


@functools.cache
def epoch_sessions() -> pd.DatetimeIndex:
    """The XNYS sessions of the fixed epoch (tz-naive midnight)."""
    # exchange_calendars trips a pandas deprecation warning inside pandas itself
    # (so pyproject's per-module filter cannot see it). This runs once per process.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        calendar = exchange_calendars.get_calendar(
            "XNYS", start=EPOCH_START.isoformat(), end=EPOCH_END.isoformat()
        )
    sessions = pd.DatetimeIndex(calendar.sessions)
    if sessions.tz is not None:
        sessions = sessions.tz_localize(None)
    return pd.DatetimeIndex(sessions.astype("datetime64[ns]"))


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()


def _unit(d: bytes, k: int) -> float:
    """The k-th 32-bit slice of a digest as a number in [0, 1)."""
    return int.from_bytes(d[4 * k : 4 * k + 4], "little") / 2.0**32


def _pcg_state(d: bytes) -> Any:
    return {
        "bit_generator": "PCG64",
        "state": {
            "state": int.from_bytes(d[:16], "little"),
            "inc": int.from_bytes(d[16:32], "little") | 1,
        },
        "has_uint32": 0,
        "uinteger": 0,
    }


def _box_muller(u1: FloatArray, u2: FloatArray) -> tuple[FloatArray, FloatArray]:
    r = np.sqrt(-2.0 * np.log1p(-u1))
    theta = 2.0 * np.pi * u2
    return r * np.cos(theta), r * np.sin(theta)


@dataclass(frozen=True, slots=True, eq=False)
class _Market:
    """The market-wide paths for one (seed, sectors), over the whole epoch."""

    sessions: pd.DatetimeIndex
    day_index: IntArray  # (B, _DAYS): session index of each block day, -1 for padding
    block_len: IntArray  # (B,)
    block_last: IntArray  # (B,) session index of each block's last day
    vol: FloatArray  # (T,) market daily vol
    idio_scale: FloatArray  # (T,) idiosyncratic variance multiplier
    market: FloatArray  # (T,) cumulative market log return at the close
    sectors: FloatArray  # (T, S) cumulative sector log returns
    vix: FloatArray  # (T,)


@functools.cache
def _market(seed: int, n_sectors: int) -> _Market:
    sessions = epoch_sessions()
    t_len = len(sessions)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1])))
    u = rng.random(t_len)
    cum = np.cumsum(_TRANSITIONS, axis=1)
    states = np.empty(t_len, dtype=np.int64)
    state = 1
    for t in range(t_len):
        state = int(np.searchsorted(cum[state], u[t], side="right"))
        state = min(state, 2)
        states[t] = state
    # Volatility moves towards the state's level over a few days, not in one jump.
    target = _STATE_VOL[states]
    vol = np.empty(t_len)
    level = _STATE_VOL[1]
    for t in range(t_len):
        level += 0.2 * (target[t] - level)
        vol[t] = level
    market_ret = _STATE_DRIFT[states] - 0.5 * vol**2 + vol * rng.standard_normal(t_len)
    sector_ret = _SECTOR_VOL * vol[:, None] * rng.standard_normal((t_len, n_sectors))
    noise = np.empty(t_len)
    acc = 0.0
    for t, e in enumerate(rng.standard_normal(t_len)):
        acc = 0.9 * acc + 0.6 * e
        noise[t] = acc
    vix = np.clip(100.0 * np.sqrt(252.0) * vol * 1.15 + noise, 9.0, 80.0)

    periods = sessions.to_period("M")
    codes = (periods.year - 2000) * 12 + periods.month - 1
    block_of = np.asarray(codes - codes[0], dtype=np.int64)
    n_blocks = int(block_of[-1]) + 1
    block_len = np.bincount(block_of, minlength=n_blocks).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(block_len)[:-1]])
    day_index = np.full((n_blocks, _DAYS), -1, dtype=np.int64)
    pos = np.arange(t_len) - starts[block_of]
    day_index[block_of, pos] = np.arange(t_len)
    return _Market(
        sessions=sessions,
        day_index=day_index,
        block_len=block_len,
        block_last=starts + block_len - 1,
        vol=vol,
        idio_scale=vol / _STATE_VOL[1],
        market=np.cumsum(market_ret),
        sectors=np.cumsum(sector_ret, axis=0),
        vix=np.round(vix, 2),
    )


@dataclass(frozen=True, slots=True, eq=False)
class _Symbols:
    """Per-symbol parameters and month-block levels, one row per symbol."""

    sector: IntArray  # (N,)
    beta: FloatArray
    gamma: FloatArray
    sigma: FloatArray  # idiosyncratic daily vol in a normal market
    log_p0: FloatArray
    volume_base: FloatArray
    daily_state: tuple[bytes, ...]  # digests seeding each symbol's daily stream
    drift: FloatArray  # (N, B) daily drift per block (0 in mean-reverting blocks)
    mean_rev: npt.NDArray[np.bool_]  # (N, B)
    level: FloatArray  # (N, B + 1) idiosyncratic log level at each block start
    target: FloatArray  # (N, B) idiosyncratic log move over each block


def _build_symbols(
    seed: int, n_sectors: int, params: SyntheticParams, symbols: Sequence[str]
) -> _Symbols:
    market = _market(seed, n_sectors)
    n, n_blocks = len(symbols), len(market.block_len)
    digests = [_digest("tradingd-synthetic", seed, s) for s in symbols]
    units = np.array([[_unit(d, k) for k in range(1, 7)] for d in digests]).reshape(n, 6)
    sector = np.array([int.from_bytes(d[:4], "little") % n_sectors for d in digests])
    lo, hi = (
        np.log(params.start_price_min),
        np.log(max(params.start_price_max, params.start_price_min)),
    )
    beta = 0.7 + 0.6 * units[:, 0]
    gamma = 0.6 + 0.8 * units[:, 1]
    sigma = 0.008 + 0.012 * units[:, 2]
    log_p0 = lo + (hi - lo) * units[:, 3]
    volume_base = np.exp(np.log(3e5) + (np.log(3e7) - np.log(3e5)) * units[:, 4])

    bitgen = np.random.PCG64(0)
    gen = np.random.Generator(bitgen)
    coarse = np.empty((n, n_blocks, 4))
    for i, s in enumerate(symbols):
        bitgen.state = _pcg_state(_digest("tradingd-synthetic-blocks", seed, s))
        coarse[i] = gen.random((n_blocks, 4))
    z_level, z_drift = _box_muller(coarse[..., 0], coarse[..., 1])
    mean_rev = coarse[..., 2] < 0.3

    drift = np.empty((n, n_blocks))
    d = np.zeros(n)
    for b in range(n_blocks):
        d = 0.75 * d + 0.0012 * z_drift[:, b]
        drift[:, b] = d
    drift[mean_rev] = 0.0

    var_sum = np.add.reduceat(market.idio_scale, np.concatenate([[0], market.block_last[:-1] + 1]))
    target = drift * market.block_len + sigma[:, None] * np.sqrt(var_sum)[None, :] * z_level
    # Reflect the total log price at block ends into the band [_LOG_LO, _LOG_HI].
    factor_end = (
        log_p0[:, None]
        + beta[:, None] * market.market[market.block_last][None, :]
        + gamma[:, None] * market.sectors[market.block_last][:, sector].T
    )
    level = np.zeros((n, n_blocks + 1))
    for b in range(n_blocks):
        end = factor_end[:, b] + level[:, b] + target[:, b]
        over = np.maximum(end - _LOG_HI, 0.0)
        under = np.maximum(_LOG_LO - end, 0.0)
        target[:, b] += 2.0 * (under - over)
        level[:, b + 1] = level[:, b] + target[:, b]
    return _Symbols(
        sector=sector.astype(np.int64),
        beta=beta,
        gamma=gamma,
        sigma=sigma,
        log_p0=log_p0,
        volume_base=volume_base,
        daily_state=tuple(_digest("tradingd-synthetic-days", seed, s) for s in symbols),
        drift=drift,
        mean_rev=mean_rev,
        level=level,
        target=target,
    )


class SyntheticProvider:
    """Deterministic synthetic bars and a VIX-like index (see the module docstring)."""

    name = "synthetic"

    def __init__(
        self, params: SyntheticParams | None = None, *, volatility_symbol: str = "VIX"
    ) -> None:
        self.params = params if params is not None else SyntheticParams()
        self.volatility_symbol = volatility_symbol
        self._lock = threading.Lock()
        self._rows: dict[str, _Symbols] = {}
        self._schedules: dict[str, Schedule] = {}

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars for ``symbols`` (the volatility symbol excluded) over the sessions in range."""
        return await anyio.to_thread.run_sync(self.generate, symbols, start, end)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series:
        """The VIX-like closes over the sessions in ``[start, end]``."""
        market = _market(self.params.seed, self.params.sectors)
        lo, hi = self._session_slice(market.sessions, start, end)
        return pd.Series(
            market.vix[lo:hi].copy(),
            index=market.sessions[lo:hi],
            name=self.volatility_symbol,
            dtype=np.float64,
        )

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """The actions on ``symbols`` with ex date in ``[start, end]``, by ex date."""
        return await anyio.to_thread.run_sync(self.actions, symbols, start, end)

    def generate(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """The synchronous body of ``fetch``: bars adjusted as of ``end`` (a worker thread)."""
        if not self.params.corporate_actions_per_year:
            return self._economic(symbols, start, end)
        return self._listed(symbols, start, end, adjusted=True)

    def generate_raw(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """The bars as printed on their day (unadjusted); without actions what ``fetch`` gives."""
        if not self.params.corporate_actions_per_year:
            return self._economic(symbols, start, end)
        return self._listed(symbols, start, end, adjusted=False)

    def actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """The synchronous body of ``corporate_actions``."""
        if not self.params.corporate_actions_per_year:
            return []
        names = sorted({s for s in symbols if s != self.volatility_symbol})
        # Every company's rows in one vectorised pass (not one pass per schedule drawn).
        with self._lock:
            self._build_missing(sorted({_company_of(n) for n in names}))
        out: list[CorporateAction] = []
        for name in names:
            listing = self._listing(name)
            if listing.listed_by(end):
                out.extend(self._schedule(listing.company).between(name, start, end))
        out.sort(key=lambda a: (a.ex_date, a.symbol, a.kind))
        return out

    def _listed(
        self, symbols: Sequence[str], start: dt.date, end: dt.date, *, adjusted: bool
    ) -> pd.DataFrame:
        """Each name's company's economic bars, printed (raw), adjusted as of ``end`` or not.

        One (names x sessions) block per column: every company's economic bars cover
        the same sessions, so each name's rows are its company's, and only the names
        with actions are scaled (``_print_row``: prices / C(day) to the cent, volume x
        C(day); ``_adjust_row``: ``adjust_history``'s arithmetic, per bar in the same
        order, so the same numbers to the bit).
        """
        names = sorted({s for s in symbols if s != self.volatility_symbol})
        listings = {n: self._listing(n) for n in names}
        names = [n for n in names if listings[n].listed_by(end)]
        companies = sorted({listings[n].company for n in names})
        economic = self._economic(companies, start, end)
        if economic.empty or not names:
            return empty_bars()
        t = len(economic) // len(companies)
        row = {c: i for i, c in enumerate(companies)}
        take = np.asarray([row[listings[n].company] for n in names])
        days = economic["date"].to_numpy(dtype="datetime64[ns]")[:t]
        block = {k: economic[k].to_numpy().reshape(len(companies), t)[take] for k in _OHLCV}
        for k, name in enumerate(names):
            schedule = self._schedule(listings[name].company)
            _print_row(block, k, days, schedule)
            if adjusted:
                _adjust_row(block, k, days, schedule, end)
        return pd.DataFrame(
            {
                "symbol": pd.Series(np.repeat(np.asarray(names, dtype=object), t), dtype=str),
                "date": np.tile(economic["date"].to_numpy()[:t], len(names)),
                **{k: v.reshape(-1) for k, v in block.items()},
            }
        )

    def _listing(self, name: str) -> _Listing:
        """Whose bars ``name`` serves: its own, or a renamed company's as its new symbol."""
        if name.endswith(RENAME_SUFFIX) and len(name) > len(RENAME_SUFFIX):
            old = name[: -len(RENAME_SUFFIX)]
            if self._listing(old).company == old:
                rename = self._schedule(old).rename()
                if rename is not None and rename[0] == name:
                    return _Listing(old, rename[1])
        return _Listing(name)

    def _actions_of(self, name: str, listing: _Listing) -> list[CorporateAction]:
        """The company's actions over the epoch under ``name`` (a new symbol: not the rename)."""
        return self._schedule(listing.company).between(name, EPOCH_START, EPOCH_END)

    def _schedule(self, company: str) -> Schedule:
        with self._lock:
            cached = self._schedules.get(company)
        if cached is None:
            rows = self._symbols([company])
            market = _market(self.params.seed, self.params.sectors)
            rate = self.params.corporate_actions_per_year
            cached = _draw_actions(market, rows, self.params.seed, rate, company)
            with self._lock:
                self._schedules[company] = cached
        return cached

    def _economic(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """The economic bars (no corporate action: the bars without the key)."""
        wanted = sorted({s for s in symbols if s != self.volatility_symbol})
        market = _market(self.params.seed, self.params.sectors)
        lo, hi = self._session_slice(market.sessions, start, end)
        if not wanted or lo >= hi:
            return empty_bars()
        rows = self._symbols(wanted)
        b0 = int(np.searchsorted(market.block_last, lo))
        b1 = int(np.searchsorted(market.block_last, hi - 1)) + 1
        index = market.day_index[b0:b1].reshape(-1)
        keep = np.flatnonzero((index >= lo) & (index < hi))
        ohlcv = _days(market, rows, b0, b1, keep)
        n, t = len(wanted), len(keep)
        columns = {k: v.reshape(-1) for k, v in ohlcv.items()}
        return pd.DataFrame(
            {
                "symbol": pd.Series(np.repeat(np.asarray(wanted, dtype=object), t), dtype=str),
                "date": np.tile(market.sessions[index[keep]].to_numpy(), n),
                **columns,
            }
        )

    def sector_of(self, symbols: Sequence[str]) -> dict[str, int]:
        """Which synthetic sector (0 .. sectors-1) each symbol (or its renamed company) is in."""
        wanted = sorted(set(symbols))
        renames = bool(self.params.corporate_actions_per_year)
        company = {s: self._listing(s).company if renames else s for s in wanted}
        distinct = sorted(set(company.values()))
        rows = self._symbols(distinct)
        sector = dict(zip(distinct, rows.sector, strict=True))
        return {s: int(sector[company[s]]) for s in wanted}

    def _symbols(self, wanted: list[str]) -> _Symbols:
        with self._lock:
            self._build_missing(wanted)
            return _stack([self._rows[s] for s in wanted])

    def _build_missing(self, wanted: list[str]) -> None:
        """Build the rows of ``wanted`` not cached yet, in one pass (the caller holds the lock).

        A symbol's rows depend on the symbol alone, not on the others built with it.
        """
        missing = [s for s in wanted if s not in self._rows]
        if missing:
            built = _build_symbols(self.params.seed, self.params.sectors, self.params, missing)
            for i, s in enumerate(missing):
                self._rows[s] = _take(built, i)

    @staticmethod
    def _session_slice(sessions: pd.DatetimeIndex, start: dt.date, end: dt.date) -> tuple[int, int]:
        lo = int(sessions.searchsorted(pd.Timestamp(start), side="left"))
        hi = int(sessions.searchsorted(pd.Timestamp(end), side="right"))
        return lo, hi


@dataclass(frozen=True, slots=True)
class _Listing:
    """What a name is: a company's own symbol, or its new symbol from ``listed_from`` on."""

    company: str
    listed_from: dt.date | None = None

    def listed_by(self, asof: dt.date) -> bool:
        return self.listed_from is None or self.listed_from <= asof


def _company_of(name: str) -> str:
    """The company a name most likely serves (``<symbol>.X``: the renamed ``<symbol>``)."""
    if name.endswith(RENAME_SUFFIX) and len(name) > len(RENAME_SUFFIX):
        return name[: -len(RENAME_SUFFIX)]
    return name


def _draw_actions(
    market: _Market, rows: _Symbols, seed: int, rate: float, company: str
) -> Schedule:
    """``company``'s actions over the epoch, by ex date (see the module docstring)."""
    sessions = market.sessions
    rng = np.random.default_rng(
        int.from_bytes(_digest("tradingd-synthetic-actions", seed, company), "little")
    )
    count = int(rng.poisson(rate * len(sessions) / 252.0))
    positions = np.unique(rng.integers(1, len(sessions), size=count))
    draws = rng.random((len(positions), 4))
    prices = _month_before_close(market, rows, positions)
    pay_at = np.minimum(positions + 5 + (draws[:, 3] * 15).astype(np.int64), len(sessions) - 1)
    ex_dates, pay_dates = sessions[positions].date, sessions[pay_at].date
    renamable = len(company) + len(RENAME_SUFFIX) <= _MAX_SYMBOL
    out = ScheduleBuilder.start(company, SOURCE)
    scale = 1.0  # C(t): the product of the split ratios so far
    for ex_date, pay_date, economic, (u_kind, u_terms, u_special, _) in zip(
        ex_dates, pay_dates, prices, draws, strict=True
    ):
        price = float(economic) / scale
        if u_kind < _RENAME_SHARE and renamable:
            renamable = False
            out.new_symbol = company + RENAME_SUFFIX
            out.add(ActionKind.RENAME, ex_date, pay_date)
        elif u_kind < _RENAME_SHARE + _SPLIT_SHARE:
            ratio = _split_ratio(price, u_terms)
            scale *= ratio
            kind = ActionKind.FORWARD_SPLIT if ratio > 1 else ActionKind.REVERSE_SPLIT
            out.add(kind, ex_date, pay_date, ratio=ratio)
        else:
            share = 0.02 + 0.03 * u_terms if u_special < 0.1 else 0.002 + 0.008 * u_terms
            cash = max(round(float(price * share), 2), 0.01)
            out.add(ActionKind.CASH_DIVIDEND, ex_date, pay_date, cash=cash)
    return out.build()


def _split_ratio(price: float, u: float) -> float:
    """Forward 2:1, 3:2 or 3:1 at a high price; reverse 1:10 or 1:5 at a low one."""
    if price >= _SPLIT_PRICE:
        return 2.0 if u < 0.5 else 1.5 if u < 0.75 else 3.0
    return 0.1 if u < 0.5 else 0.2


def _month_before_close(market: _Market, rows: _Symbols, positions: IntArray) -> FloatArray:
    """The economic close at the end of the month block before each session in ``positions``."""
    block = np.searchsorted(market.block_last, positions)
    last = market.block_last[np.maximum(block - 1, 0)]
    log_close = (
        rows.log_p0[0]
        + rows.beta[0] * market.market[last]
        + rows.gamma[0] * market.sectors[last, rows.sector[0]]
        + rows.level[0, block]
    )
    out: FloatArray = np.exp(np.where(block > 0, log_close, rows.log_p0[0]))
    return out


def _print_row(
    block: dict[str, FloatArray],
    k: int,
    days: npt.NDArray[np.datetime64],
    schedule: Schedule,
) -> None:
    """Row ``k`` of the (names x sessions) ``block`` as printed, in place: prices / C(day)
    to the cent, volume x C(day) (C: the product of the split ratios ex on or before)."""
    splits = list(schedule.splits())
    if not splits:
        return
    scale = np.ones(len(days))
    for ex_day, ratio in splits:
        scale[days >= ex_day] *= ratio
    for column in _PRICE_COLUMNS:
        price = block[column][k] / scale
        block[column][k] = np.maximum(np.rint(price * 100.0) / 100.0, 0.01)
    block["volume"][k] = np.maximum(np.rint(block["volume"][k] * scale), 1.0)


def _adjust_row(
    block: dict[str, FloatArray],
    k: int,
    days: npt.NDArray[np.datetime64],
    schedule: Schedule,
    asof: dt.date,
) -> None:
    """``adjust_history`` as of ``asof`` on row ``k`` of ``block``, in place."""
    relevant = list(schedule.splits(asof))
    if not relevant:
        return
    factor = np.ones(len(days))
    for ex_day, ratio in relevant:
        factor[days < ex_day] *= ratio
    for column in _PRICE_COLUMNS:
        block[column][k] = block[column][k] / factor
    block["volume"][k] = block["volume"][k] * factor


def _take(rows: _Symbols, i: int) -> _Symbols:
    return _Symbols(
        sector=rows.sector[i : i + 1],
        beta=rows.beta[i : i + 1],
        gamma=rows.gamma[i : i + 1],
        sigma=rows.sigma[i : i + 1],
        log_p0=rows.log_p0[i : i + 1],
        volume_base=rows.volume_base[i : i + 1],
        daily_state=(rows.daily_state[i],),
        drift=rows.drift[i : i + 1],
        mean_rev=rows.mean_rev[i : i + 1],
        level=rows.level[i : i + 1],
        target=rows.target[i : i + 1],
    )


def _stack(parts: list[_Symbols]) -> _Symbols:
    return _Symbols(
        sector=np.concatenate([p.sector for p in parts]),
        beta=np.concatenate([p.beta for p in parts]),
        gamma=np.concatenate([p.gamma for p in parts]),
        sigma=np.concatenate([p.sigma for p in parts]),
        log_p0=np.concatenate([p.log_p0 for p in parts]),
        volume_base=np.concatenate([p.volume_base for p in parts]),
        daily_state=tuple(d for p in parts for d in p.daily_state),
        drift=np.concatenate([p.drift for p in parts]),
        mean_rev=np.concatenate([p.mean_rev for p in parts]),
        level=np.concatenate([p.level for p in parts]),
        target=np.concatenate([p.target for p in parts]),
    )


def _days(
    market: _Market, rows: _Symbols, b0: int, b1: int, keep: IntArray
) -> dict[str, FloatArray]:
    """OHLCV arrays (N, len(keep)) for the ``keep`` columns of blocks [b0, b1) laid out flat."""
    n, nb = len(rows.beta), b1 - b0
    u = _daily_uniforms(rows, b0, nb)
    # float32 is plenty for the shocks themselves; levels are accumulated in float64.
    r = np.sqrt(-2.0 * np.log1p(-u[..., 0]))
    theta = np.float32(2.0 * np.pi) * u[..., 1]
    z_idio = (r * np.cos(theta)).astype(np.float64)
    e, s2, idio_close = _idiosyncratic(market, rows, b0, b1, z_idio)

    def flat(x: FloatArray) -> FloatArray:
        return x.reshape(n, nb * _DAYS)[:, keep]

    idio_close = flat(idio_close)
    return _ohlcv(
        market,
        rows,
        idx=market.day_index[b0:b1].reshape(-1)[keep],  # (T,) epoch session indices, all valid
        idio_close=idio_close,
        idio_prev=idio_close - flat(e),
        idio_var=flat(s2),
        u_gap=(r * np.sin(theta)).reshape(n, nb * _DAYS)[:, keep].astype(np.float64),
        u_rest=u.reshape(n, nb * _DAYS, _U_PER_DAY)[:, keep, 2:].astype(np.float64),
    )


def _daily_uniforms(rows: _Symbols, b0: int, nb: int) -> npt.NDArray[np.float32]:
    """Each symbol's float32 uniforms for blocks [b0, b0 + nb): (N, nb, _DAYS, _U_PER_DAY)."""
    n = len(rows.beta)
    draws = np.empty((n, nb * _U_PER_BLOCK), dtype=np.float32)
    bitgen = np.random.PCG64(0)
    gen = np.random.Generator(bitgen)
    for i, digest in enumerate(rows.daily_state):
        bitgen.state = _pcg_state(digest)
        bitgen.advance(b0 * _U_PER_BLOCK // 2)
        draws[i] = gen.random(nb * _U_PER_BLOCK, dtype=np.float32)
    return draws.reshape(n, nb, _DAYS, _U_PER_DAY)


def _idiosyncratic(
    market: _Market, rows: _Symbols, b0: int, b1: int, z_idio: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Daily idiosyncratic moves, their variances and log levels at the close, (N, nb, _DAYS)."""
    index = market.day_index[b0:b1]  # (nb, D)
    valid = index >= 0
    scale = np.where(valid, market.idio_scale[np.maximum(index, 0)], 0.0)  # (nb, D)
    s = rows.sigma[:, None, None] * np.sqrt(scale)[None]  # (N, nb, D)
    lagged = np.zeros_like(z_idio)
    lagged[..., 1:] = z_idio[..., :-1]
    shock = np.where(
        rows.mean_rev[:, b0:b1, None], (z_idio - 0.6 * lagged) * (1.0 / np.sqrt(1.36)), z_idio
    )
    e = np.where(valid[None], rows.drift[:, b0:b1, None] + s * shock, 0.0)
    # Brownian-bridge correction: the block's moves add up to its cached target exactly.
    s2 = s * s
    weight = s2 / s2.sum(axis=2, keepdims=True)
    e -= weight * (e.sum(axis=2, keepdims=True) - rows.target[:, b0:b1, None])
    idio_close = rows.level[:, b0:b1, None] + np.cumsum(e, axis=2)
    return e, s2, idio_close


def _ohlcv(
    market: _Market,
    rows: _Symbols,
    *,
    idx: IntArray,
    idio_close: FloatArray,
    idio_prev: FloatArray,
    idio_var: FloatArray,
    u_gap: FloatArray,
    u_rest: FloatArray,
) -> dict[str, FloatArray]:
    """Combine factor and idiosyncratic log prices at sessions ``idx`` into OHLCV, (N, T)."""
    prev = np.maximum(idx - 1, 0)
    first = idx == 0
    market_close = market.market[idx]
    market_prev = np.where(first, 0.0, market.market[prev])
    sector_close = market.sectors[idx].T[rows.sector]  # (N, T)
    sector_prev = np.where(first[None], 0.0, market.sectors[prev].T[rows.sector])
    beta = rows.beta[:, None]
    gamma = rows.gamma[:, None]
    base = rows.log_p0[:, None]
    log_close = base + beta * market_close[None] + gamma * sector_close + idio_close
    log_prev = base + beta * market_prev[None] + gamma * sector_prev + idio_prev
    ret = log_close - log_prev

    vol = market.vol[idx][None]
    sigma_total = np.sqrt((beta * vol) ** 2 + (gamma * _SECTOR_VOL * vol) ** 2 + idio_var)
    log_open = log_prev + 0.3 * ret + 0.25 * sigma_total * u_gap
    log_high = np.maximum(log_open, log_close) - 0.5 * sigma_total * np.log1p(-u_rest[..., 0])
    log_low = np.minimum(log_open, log_close) + 0.5 * sigma_total * np.log1p(-u_rest[..., 1])

    surprise = np.minimum(np.abs(ret) / sigma_total, 6.0)
    noise = u_rest[..., 2]
    volume = (
        rows.volume_base[:, None]
        * np.exp(0.8 * (noise - 0.5))
        * (1.0 + 0.6 * surprise**2)
        * np.where(noise > 0.98, 3.0, 1.0)
    )

    def price(x: FloatArray) -> FloatArray:
        # Rounding and flooring are monotone, so high >= open/close >= low survives them.
        return np.maximum(np.rint(np.exp(x) * 100.0) / 100.0, 0.01)

    return {
        "open": price(log_open),
        "high": price(log_high),
        "low": price(log_low),
        "close": price(log_close),
        "volume": np.maximum(np.rint(volume), 100.0),
    }
