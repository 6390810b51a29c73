"""Typed parameters of the market-data side; composed into ``actors.system.config.Settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The reference system's static universe: 36 liquid US large caps across sectors.
DEFAULT_UNIVERSE: tuple[str, ...] = (
    "AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "AVGO", "ORCL", "CRM", "ADBE",
    "JPM", "BAC", "WFC", "GS", "MS", "V", "MA", "BRK.B",
    "JNJ", "UNH", "PFE", "MRK", "ABBV", "LLY",
    "XOM", "CVX", "COP",
    "PG", "KO", "PEP", "WMT", "COST", "HD",
    "CAT", "HON", "NEE",
)  # fmt: skip


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UniverseParams(_Params):
    mode: Literal["static", "csv"] = "static"
    symbols: tuple[str, ...] = DEFAULT_UNIVERSE
    file: Path | None = Field(default=None, description="CSV with a 'symbol' column (mode=csv)")


class SyntheticParams(_Params):
    seed: int = 20260101
    sectors: int = Field(default=6, ge=1, le=50)
    start_price_min: float = Field(default=20.0, gt=0)
    start_price_max: float = Field(default=400.0, gt=0)
    corporate_actions_per_year: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="expected corporate actions (splits, dividends, a rare rename) per symbol "
        "per year, drawn from the seed; 0: none, and the bars are exactly as without the key"
        " (the daemon's [data.synthetic] default is 1)",
    )


class CsvParams(_Params):
    path: Path | None = Field(
        default=None, description="a CSV file or a folder of CSV files (symbol,date,OHLCV)"
    )


class AlpacaDataParams(_Params):
    feed: Literal["iex", "sip", "otc"] = "iex"
    base_url: str | None = Field(default=None, description="override for tests or proxies")
    batch_size: int = Field(default=100, ge=1, le=1000)
    timeout_s: float = Field(default=30.0, gt=0)


class AlphaVantageParams(_Params):
    base_url: str = "https://www.alphavantage.co"
    calls_per_minute: int = Field(default=5, ge=1)
    max_retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=2.0, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)


class ValidationParams(_Params):
    max_failed_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="halt the cycle when more of the universe fails (and min_failed_symbols do)",
    )
    min_failed_symbols: int = Field(
        default=3,
        ge=1,
        description="the halt needs at least this many failed symbols as well as the share: "
        "one stale symbol of four costs that symbol, not the market",
    )
    max_one_day_move: float = Field(
        default=0.5,
        gt=0,
        description="|close / previous good close - 1| above this is implausible: a bad print "
        "when the next bar comes back, a level shift when it persists",
    )
    split_tolerance: float = Field(
        default=0.03,
        gt=0,
        le=0.1,
        description="an open within this relative distance of a common split ratio times the "
        "previous good close (2:1, 3:2, ... 1:20) is a probable split: the symbol is held",
    )
    max_zero_volume_run: int = Field(default=3, ge=1)
    max_missing_sessions: int = Field(
        default=5, ge=0, description="sessions without a good bar (removed bars count)"
    )


class DataParams(_Params):
    provider: Literal["synthetic", "csv", "alpaca", "alphavantage"] = "synthetic"
    history_days: int = Field(default=300, ge=120, description="sessions of history per cycle")
    volatility_symbol: str = Field(
        default="VIX", description="the volatility-index series for the regime detector"
    )
    universe: UniverseParams = UniverseParams()
    # The daemon's market shows corporate actions by default (the demo); the bare
    # SyntheticParams() is the market without them, for research and tests.
    synthetic: SyntheticParams = SyntheticParams(corporate_actions_per_year=1.0)
    csv: CsvParams = CsvParams()
    alpaca: AlpacaDataParams = AlpacaDataParams()
    alphavantage: AlphaVantageParams = AlphaVantageParams()
    validation: ValidationParams = ValidationParams()
