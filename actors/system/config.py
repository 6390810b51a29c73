"""Typed settings: embedded defaults, then a TOML file, then the environment.

Layering, lowest to highest (``load_settings``):

1. the defaults below (a synthetic market, the simulated broker, ``./var``);
2. systemd's ``STATE_DIRECTORY`` / ``RUNTIME_DIRECTORY`` as the directory defaults;
3. the TOML file (``path`` argument, else ``$TRADINGD_CONFIG``, else none);
4. ``TRADINGD_<SECTION>__<KEY>`` variables, values parsed as JSON when they parse;
5. the reference system's switches ``TRADING_DISABLED`` and ``STRATEGY_DISABLED_LIST``,
   which can only disable (a stray ``TRADING_DISABLED=0`` never re-enables trading
   that the file disabled).

Secrets never come from the file: ``$CREDENTIALS_DIRECTORY/<name>`` (systemd
``LoadCredential=``), overridden by ``ALPACA_API_KEY`` & co., overridden by
``TRADINGD_SECRETS__<NAME>``. Every failure is one ``ConfigError`` whose key is the
dotted path of the setting (or the file / variable that is wrong).

Why pydantic and not pydantic-settings: the models, their validation and their
error locations are pydantic's; only the layering above is ours, because three of
its rules are not what pydantic-settings' sources do: an environment value is
parsed against the field's own type (JSON only where it parses), the error names
the variable or file a bad value came from, and the reference system's switches
can only disable. Secrets from ``$CREDENTIALS_DIRECTORY`` would be its
``secrets_dir``, but a secret written in the TOML file must be refused, not merged.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import tomllib
import types
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, Self, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from actors.data_feed.params import DataParams
from actors.orders.limits import LimitsParams
from actors.risk.params import (
    CorrelationParams,
    KillSwitchParams,
    LossParams,
    PendingParams,
    RegimeParams,
    RiskParams,
    SizingBase,
)
from actors.strategies.params import StrategiesParams
from daemon.errors import ConfigError

EX_CONFIG: Final = 78
"""Exit status for a configuration error (sysexits.h ``EX_CONFIG``)."""

CONFIG_ENV: Final = "TRADINGD_CONFIG"
FAKE_NOW_ENV: Final = "TRADINGD_FAKE_NOW"  # the process clock (daemon.clock), not a setting
ENV_PREFIX: Final = "TRADINGD_"
ENV_SEPARATOR: Final = "__"

SECRET_ENV: Final[Mapping[str, str]] = {
    "alpaca_api_key": "ALPACA_API_KEY",
    "alpaca_secret_key": "ALPACA_SECRET_KEY",
    "alphavantage_api_key": "ALPHAVANTAGE_API_KEY",
    "smtp_password": "SMTP_PASSWORD",
}
"""Secret name (also the credential file name) -> its conventional environment variable."""

DEFAULT_STATE_DIR: Final = Path("var")
# sun_path in struct sockaddr_un is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH: Final = 107
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
_CONFLICT: Final = "config_conflict"
_SECRET_HINTS: Final = ("password", "secret", "api_key", "token")


def _conflict(field: str, message: str) -> PydanticCustomError:
    """A cross-field error; ``field`` (dotted, relative to the model raising it) is the key."""
    return PydanticCustomError(_CONFLICT, message, {"field": field})


def _split_list(value: Any) -> Any:
    """Accept ``"a, b"`` where a tuple of strings is expected (handy in the environment)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonSettings(_Section):
    """The process: where it keeps state, how it logs, how actors are supervised."""

    state_dir: Path = DEFAULT_STATE_DIR
    run_dir: Path = DEFAULT_STATE_DIR / "run"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool | None = Field(default=None, description="None: JSON unless stderr is a TTY")
    mailbox_size: int = Field(default=1000, ge=1)
    ask_timeout_s: float = Field(default=30.0, gt=0)
    shutdown_timeout_s: float = Field(default=8.0, gt=0)
    max_restarts: int = Field(default=5, ge=0)
    restart_window_s: float = Field(default=60.0, gt=0)
    restart_backoff_s: float = Field(default=0.5, ge=0)
    restart_backoff_max_s: float = Field(default=30.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _run_dir_follows_state_dir(cls, data: Any) -> Any:
        if isinstance(data, dict) and "run_dir" not in data:
            state_dir = data.get("state_dir", DEFAULT_STATE_DIR)
            if isinstance(state_dir, str | Path):
                return {**data, "run_dir": Path(state_dir) / "run"}
        return data

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.restart_backoff_max_s < self.restart_backoff_s:
            raise _conflict(
                "restart_backoff_max_s", "must not be less than daemon.restart_backoff_s"
            )
        length = len(bytes(self.socket_path))
        if length > _MAX_SOCKET_PATH:
            raise _conflict(
                "run_dir",
                f"control socket path is {length} bytes; Unix sockets allow {_MAX_SOCKET_PATH}",
            )
        return self

    @property
    def db_path(self) -> Path:
        """The SQLite state database."""
        return self.state_dir / "tradingd.db"

    @property
    def socket_path(self) -> Path:
        """The control socket ``tradectl`` talks to."""
        return self.run_dir / "tradingd.sock"

    @property
    def events_dir(self) -> Path:
        """Per-run event files."""
        return self.state_dir / "logs" / "events"


class ScheduleSettings(_Section):
    """When the daily cycle runs, in exchange-local time."""

    time: dt.time = dt.time(9, 30)
    timezone: str = "America/New_York"
    calendar: str = "XNYS"
    run_on_start: bool = Field(default=True, description="run today's cycle now if it is due")
    catch_up: bool = Field(default=True, description="run a cycle missed while we were down")

    @field_validator("time")
    @classmethod
    def _local_time(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("must be a local time without offset; set schedule.timezone")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        # Imported here: exchange_calendars pulls in pandas, which costs half a second.
        import exchange_calendars

        if value not in exchange_calendars.get_calendar_names():
            raise ValueError(f"unknown exchange calendar {value!r} (e.g. 'XNYS')")
        return value


class MetricsSettings(_Section):
    """The Prometheus exporter."""

    enabled: bool = True
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=9464, ge=0, le=65535, description="0: an ephemeral port (tests)")


class ControlSettings(_Section):
    """The Unix control socket."""

    group: str | None = Field(
        default=None, min_length=1, description="socket mode 0660 for this group, else 0600"
    )
    idle_timeout_s: float = Field(default=60.0, gt=0)
    max_request_bytes: int = Field(default=65536, ge=1)
    max_clients: int = Field(default=64, ge=1)


class BrokerSettings(_Section):
    """Where orders go. Real money needs kind alpaca, ``paper = false`` and ``live_confirm``."""

    kind: Literal["sim", "alpaca"] = "sim"
    paper: bool = True
    live_confirm: bool = False
    base_url: str | None = Field(default=None, description="override for tests or proxies")
    initial_cash: float = Field(default=100_000.0, gt=0, description="simulated broker only")
    timeout_s: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _live_needs_confirmation(self) -> Self:
        if self.kind == "alpaca" and not self.paper and not self.live_confirm:
            raise _conflict(
                "live_confirm",
                "live trading (broker.paper = false) also needs broker.live_confirm = true",
            )
        return self

    @property
    def live_trading(self) -> bool:
        """True when orders go to a real-money account."""
        return self.kind == "alpaca" and not self.paper and self.live_confirm


class OrdersSettings(_Section):
    """How orders are kept at the broker (``actors.orders``)."""

    broker_stops: bool = Field(
        default=True,
        description="rest each lot's protective stop at the broker (GTC stop sell)",
    )
    poll_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="during a session: poll open orders and resting stops this often",
    )


class RiskSettings(_Section):
    """Manual switches and the portfolio-level limits."""

    trading_disabled: bool = False
    disabled_strategies: tuple[str, ...] = ()
    daily_loss_limit: float = Field(default=0.02, gt=0, le=1, description="share of equity")
    max_daily_drawdown: float = Field(default=0.05, gt=0, le=1, description="share of equity")
    reconcile_tolerance: float = Field(default=0.01, ge=0, le=1, description="share of value")
    max_consecutive_failures: int = Field(default=3, ge=1, description="failed cycles in a row")
    max_rejection_rate: float = Field(default=0.5, gt=0, le=1, description="rejected / orders")
    min_rejections: int = Field(default=5, ge=1, description="rejections before the rate counts")
    max_drawdown: float = Field(
        default=0.15, gt=0, le=1, description="equity below its high-water mark (latched)"
    )
    stop_atr_multiple: float = Field(
        default=3.0,
        gt=0,
        le=20,
        description="catastrophe stop distance in ATRs; a strategy's own key overrides it",
    )
    sizing_base: SizingBase = Field(
        default="portfolio",
        description="risk_per_trade is a share of the portfolio (reference) or of the strategy",
    )
    regime: RegimeParams = RegimeParams()
    correlation: CorrelationParams = CorrelationParams()
    pending: PendingParams = PendingParams()

    @property
    def rules(self) -> RiskParams:
        """The pure risk rules' parameters, composed from this section."""
        return RiskParams(
            regime=self.regime,
            correlation=self.correlation,
            pending=self.pending,
            kill_switches=KillSwitchParams(
                max_daily_drawdown=self.max_daily_drawdown,
                max_consecutive_failures=self.max_consecutive_failures,
                max_rejection_rate=self.max_rejection_rate,
                min_rejections=self.min_rejections,
                max_drawdown=self.max_drawdown,
            ),
            loss=LossParams(
                daily_loss_limit=self.daily_loss_limit, stop_atr_multiple=self.stop_atr_multiple
            ),
            sizing_base=self.sizing_base,
        )

    @field_validator("disabled_strategies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("disabled_strategies")
    @classmethod
    def _known_strategies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = tuple(StrategiesParams.model_fields)
        for name in value:
            if name not in known:
                raise ValueError(f"unknown strategy {name!r}; known: {', '.join(known)}")
        return tuple(dict.fromkeys(value))


class NotifySettings(_Section):
    """E-mail digests and alerts, and an optional webhook."""

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_user: str | None = None
    mail_from: str | None = None
    mail_to: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhook_style: Literal["generic", "slack", "discord"] = "generic"
    heartbeat_url: str | None = Field(
        default=None, description="dead man's switch: <url>/start, <url>, <url>/fail per cycle"
    )

    @field_validator("mail_to", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("heartbeat_url", mode="before")
    @classmethod
    def _blank_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("heartbeat_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("mail_to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if "@" not in address:
                raise ValueError(f"not an e-mail address: {address!r}")
        return value


# --- [backup] (daemon/backup.py) ----------------------------------------------------------


class BackupSettings(_Section):
    """Daily backups of the state database and the retention of backups and event files."""

    enabled: bool = True
    retention_days: int = Field(default=90, ge=1, description="backups and event files")
    dir: Path = Field(
        default=DEFAULT_STATE_DIR / "backups", description="default: <daemon.state_dir>/backups"
    )
    at: dt.time = Field(default=dt.time(17, 0), description="local time of schedule.timezone")

    @field_validator("at")
    @classmethod
    def _local_time(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("must be a local time without offset; set schedule.timezone")
        return value


# --- end [backup] ---------------------------------------------------------------------------


# --- [backtest] (actors/system/backtest.py, actors/system/backtest_report.py) -------------


class BacktestSettings(_Section):
    """What a backtest's report compares the strategies with."""

    benchmark: Literal["SPY", "equal_weight"] = Field(
        default="SPY",
        description="buy-and-hold of SPY, or an equal weight of the run's universe bought at"
        " the start; SPY falls back to equal_weight (said in stats.json) without SPY bars",
    )


# --- end [backtest] -------------------------------------------------------------------------


class SecretSettings(_Section):
    """Credentials: from the environment or systemd credentials, never from the file."""

    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    alphavantage_api_key: SecretStr | None = None
    smtp_password: SecretStr | None = None


class Settings(_Section):
    """Everything tradingd reads at start; immutable once loaded."""

    daemon: DaemonSettings = DaemonSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    metrics: MetricsSettings = MetricsSettings()
    control: ControlSettings = ControlSettings()
    data: DataParams = DataParams()
    strategies: StrategiesParams = StrategiesParams()
    broker: BrokerSettings = BrokerSettings()
    orders: OrdersSettings = OrdersSettings()
    risk: RiskSettings = RiskSettings()
    limits: LimitsParams = LimitsParams()
    notify: NotifySettings = NotifySettings()
    backup: BackupSettings = BackupSettings()
    backtest: BacktestSettings = BacktestSettings()
    secrets: SecretSettings = SecretSettings()

    @property
    def cycle_risk(self) -> RiskParams:
        """The cycle's risk parameters: ``[risk]``'s rules and the ``[limits]``."""
        return self.risk.rules.model_copy(update={"limits": self.limits})

    @model_validator(mode="before")
    @classmethod
    def _backup_dir_follows_state_dir(cls, data: Any) -> Any:
        """``backup.dir`` defaults to ``<daemon.state_dir>/backups``, as run_dir does."""
        if not isinstance(data, dict):
            return data
        backup = data.get("backup", {})
        if not isinstance(backup, dict) or "dir" in backup:
            return data  # set explicitly, or a wrong type that validation reports
        daemon = data.get("daemon", {})
        state_dir = daemon.get("state_dir") if isinstance(daemon, dict) else None
        if isinstance(daemon, DaemonSettings):
            state_dir = daemon.state_dir
        if not isinstance(state_dir, str | Path):
            state_dir = DEFAULT_STATE_DIR
        return {**data, "backup": {**backup, "dir": Path(state_dir) / "backups"}}

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        crossover = self.strategies.ma_crossover
        if crossover.fast >= crossover.slow:
            raise _conflict(
                "strategies.ma_crossover.fast",
                f"must be less than strategies.ma_crossover.slow "
                f"({crossover.fast} >= {crossover.slow})",
            )
        reversion = self.strategies.rsi_mean_reversion
        if reversion.rsi_entry >= reversion.rsi_exit:
            raise _conflict(
                "strategies.rsi_mean_reversion.rsi_entry",
                f"must be less than strategies.rsi_mean_reversion.rsi_exit "
                f"({reversion.rsi_entry:g} >= {reversion.rsi_exit:g})",
            )
        synthetic = self.data.synthetic
        if synthetic.start_price_min >= synthetic.start_price_max:
            raise _conflict(
                "data.synthetic.start_price_min",
                "must be less than data.synthetic.start_price_max",
            )
        if self.data.provider == "csv" and self.data.csv.path is None:
            raise _conflict("data.csv.path", "required when data.provider is 'csv'")
        if self.data.universe.mode == "csv" and self.data.universe.file is None:
            raise _conflict("data.universe.file", "required when data.universe.mode is 'csv'")
        return self

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as JSON-able data; secrets as ``"***"`` or null."""
        data = self.model_dump(mode="json")
        data["secrets"] = {
            name: None if getattr(self.secrets, name) is None else "***"
            for name in SecretSettings.model_fields
        }
        # Webhook URLs carry their token in the path (Slack, Discord); any URL may
        # carry user:password.
        notify = data["notify"]
        if notify["webhook_url"] is not None:
            notify["webhook_url"] = redact_url(notify["webhook_url"], keep_path=False)
        for section in (data["broker"], data["data"]["alpaca"], data["data"]["alphavantage"]):
            if section["base_url"] is not None:
                section["base_url"] = redact_url(section["base_url"], keep_path=True)
        return data


def redact_url(url: str, *, keep_path: bool) -> str:
    """``url`` without user info (and without path and query unless ``keep_path``)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "***"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if keep_path:
        return parts._replace(netloc=netloc).geturl()
    hidden = "/***" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{netloc}{hidden}"


# --- loading -------------------------------------------------------------------------------

_Raw = dict[str, Any]
_Sources = dict[tuple[str, ...], str]
_UNKNOWN: Final = object()


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load the settings from defaults, ``path`` (or ``$TRADINGD_CONFIG``) and ``environ``.

    ``environ`` defaults to ``os.environ``; tests pass an explicit mapping. Raises
    exactly one ``ConfigError`` naming the first bad key.
    """
    if environ is None:
        environ = os.environ
    if path is None and environ.get(CONFIG_ENV):
        raw = _read_toml(Path(environ[CONFIG_ENV]), via_env=True)
    elif path is not None:
        raw = _read_toml(path, via_env=False)
    else:
        raw = {}
    _refuse_file_secrets(raw)

    sources: _Sources = {}
    secrets = _secrets_from(environ, sources)
    if secrets:
        raw["secrets"] = secrets
    overrides = _env_overrides(environ, sources)
    _deep_merge(raw, overrides)
    _apply_directory_defaults(raw, environ)
    _apply_switches(raw, environ, sources)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, sources) from None


def environment_secrets(environ: Mapping[str, str]) -> SecretSettings:
    """The secrets of ``environ`` alone: ``$CREDENTIALS_DIRECTORY`` files and ``ALPACA_API_KEY``
    & co. (a sweep's worker takes its own, so no secret travels with a task)."""
    return SecretSettings.model_validate(_secrets_from(environ, {}))


def with_values(settings: Settings, values: Mapping[str, Any]) -> Settings:
    """``settings`` with the dotted keys of ``values`` set, validated as a file's values are.

    ``with_values(s, {"strategies.ma_crossover.fast": 10})``: the whole model is checked
    again (bounds, cross-checks such as fast < slow), and a refusal is one
    ``ConfigError`` naming the first bad key and the value given for it.
    """
    raw = settings.model_dump()
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                raise ConfigError(key, "unknown key")
            node = child
        if leaf not in node or isinstance(node[leaf], dict):
            raise ConfigError(key, "unknown key")
        node[leaf] = value
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        error = _config_error(exc, {})
    given = values.get(error.key)
    if error.key in values and str(given) not in error.reason:
        raise ConfigError(error.key, f"{error.reason} (given {given!r})")
    raise error


def _read_toml(path: Path, *, via_env: bool) -> _Raw:
    where = f" (from ${CONFIG_ENV})" if via_env else ""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), f"config file not found{where}") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}{where}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "config file is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"invalid TOML: {exc}") from None


def _refuse_file_secrets(raw: _Raw) -> None:
    if "secrets" not in raw:
        return
    section = raw["secrets"]
    name = next(iter(section), None) if isinstance(section, dict) else None
    if name is None:
        raise ConfigError("secrets", _secret_hint(None))
    raise ConfigError(f"secrets.{name}", _secret_hint(str(name)))


def _secret_hint(name: str | None) -> str:
    if name is not None and name in SECRET_ENV:
        return (
            f"secrets are not read from the config file; set ${SECRET_ENV[name]} or a "
            f"credential file '{name}' in $CREDENTIALS_DIRECTORY (systemd LoadCredential=)"
        )
    return (
        "secrets are not read from the config file; use the environment or "
        "$CREDENTIALS_DIRECTORY (systemd LoadCredential=)"
    )


def _secrets_from(environ: Mapping[str, str], sources: _Sources) -> _Raw:
    """Credential files, overridden by the conventional variables. Empty values are unset."""
    found: _Raw = {}
    directory = environ.get("CREDENTIALS_DIRECTORY")
    for name, variable in SECRET_ENV.items():
        if directory:
            file = Path(directory) / name
            try:
                value = file.read_text(encoding="utf-8").rstrip("\r\n")
            except FileNotFoundError:
                value = ""
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
                raise ConfigError(
                    f"secrets.{name}", f"cannot read credential file {file}: {reason}"
                ) from None
            if value:
                found[name] = value
        if environ.get(variable):
            found[name] = environ[variable]
            sources[("secrets", name)] = variable
    return found


def _env_overrides(environ: Mapping[str, str], sources: _Sources) -> _Raw:
    """``TRADINGD_A__B=value`` as ``{"a": {"b": value}}``, in a stable (sorted) order."""
    overrides: _Raw = {}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in (CONFIG_ENV, FAKE_NOW_ENV):
            continue
        path = tuple(variable.removeprefix(ENV_PREFIX).lower().split(ENV_SEPARATOR))
        annotation = _annotation_at(path)
        if annotation is _UNKNOWN or (path[0] == "secrets" and len(path) != 2):
            raise ConfigError(
                variable, f"unknown setting {'.'.join(path)!r} in a {ENV_PREFIX}* variable"
            )
        raw_value = environ[variable]
        if path[0] == "secrets":
            if not raw_value:
                continue
            value: Any = raw_value
        else:
            value = _parse_env_value(raw_value, annotation)
        _set_path(overrides, path, value)
        sources[path] = variable
    return overrides


def _annotation_at(path: tuple[str, ...]) -> Any:
    """The type of the setting at ``path``, or ``_UNKNOWN``."""
    model: type[BaseModel] | None = Settings
    annotation: Any = _UNKNOWN
    for segment in path:
        if model is None or segment not in model.model_fields:
            return _UNKNOWN
        annotation = model.model_fields[segment].annotation
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if is_model else None
    return annotation


def _parse_env_value(raw: str, annotation: Any) -> Any:
    """JSON when it parses, else the string; text settings keep ``"0800"`` as text."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(value, str):
        return value
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    options = [m for m in members if m is not type(None)] or [annotation]
    if value is None and len(options) < len(members):
        return None
    if all(option in (str, Path, SecretStr) for option in options):
        return raw
    return value


def _set_path(target: _Raw, path: tuple[str, ...], value: Any) -> None:
    for segment in path[:-1]:
        child = target.get(segment)
        if not isinstance(child, dict):
            child = target[segment] = {}
        target = child
    target[path[-1]] = value


def _deep_merge(target: _Raw, overrides: _Raw) -> None:
    for key, value in overrides.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _deep_merge(current, value)
        else:
            target[key] = value


def _first_entry(value: str | None) -> str | None:
    """systemd lists several directories colon-separated; ours is the first."""
    first = (value or "").split(":", 1)[0]
    return first or None


def _apply_directory_defaults(raw: _Raw, environ: Mapping[str, str]) -> None:
    section = raw.setdefault("daemon", {})
    if not isinstance(section, dict):
        return  # validation reports the wrong type
    state_dir = _first_entry(environ.get("STATE_DIRECTORY"))
    if state_dir is not None:
        section.setdefault("state_dir", state_dir)
    run_dir = _first_entry(environ.get("RUNTIME_DIRECTORY"))
    if run_dir is not None:
        section.setdefault("run_dir", run_dir)


def _apply_switches(raw: _Raw, environ: Mapping[str, str], sources: _Sources) -> None:
    """The reference system's manual switches: they add restrictions, never remove them."""
    risk = raw.setdefault("risk", {})
    if not isinstance(risk, dict):
        return  # validation reports the wrong type
    switch = environ.get("TRADING_DISABLED")
    if switch is not None:
        flag = switch.strip().lower()
        if flag in _TRUE:
            risk["trading_disabled"] = True
            sources[("risk", "trading_disabled")] = "TRADING_DISABLED"
        elif flag not in _FALSE:
            raise ConfigError("TRADING_DISABLED", "expected true/1/yes or false/0/no")
    listed = environ.get("STRATEGY_DISABLED_LIST")
    if listed is not None:
        names = [name.strip() for name in listed.split(",") if name.strip()]
        current = _split_list(risk.get("disabled_strategies", ()))
        if isinstance(current, list | tuple):
            names = [*current, *names]
        risk["disabled_strategies"] = names
        sources[("risk", "disabled_strategies")] = "STRATEGY_DISABLED_LIST"


def _config_error(exc: ValidationError, sources: _Sources) -> ConfigError:
    """The first validation error as one ``ConfigError`` keyed by its dotted path."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    loc: tuple[str | int, ...] = tuple(first["loc"])
    if first["type"] == _CONFLICT:
        loc += tuple(str((first.get("ctx") or {})["field"]).split("."))
    key = _dotted(loc)
    if first["type"] == "extra_forbidden":
        leaf = str(loc[-1]).lower()
        reason = "unknown key"
        if any(hint in leaf for hint in _SECRET_HINTS):
            reason += "; " + _secret_hint(None)
    else:
        reason = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    source = _source_of(loc, sources)
    if source is not None:
        reason += f" (from ${source})"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more)"
    return ConfigError(key or "settings", " ".join(reason.split()))


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _source_of(loc: tuple[str | int, ...], sources: _Sources) -> str | None:
    names = tuple(part for part in loc if isinstance(part, str))
    for length in range(len(names), 0, -1):
        if names[:length] in sources:
            return sources[names[:length]]
    return None


# --- reporting -----------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def alpaca_key_mismatch(key_id: str, *, live: bool) -> str | None:
    """Why an Alpaca key id does not fit the account mode, or None.

    Alpaca's paper key ids start with ``PK``, live ones with ``AK``: a paper key
    configured for live trading (or the reverse) is refused before any call.
    """
    if live and key_id.startswith("PK"):
        return "a paper key (PK...) cannot trade live; use the live key or set broker.paper = true"
    if not live and key_id.startswith("AK"):
        return "a live key (AK...) with broker.paper = true; use a paper key or confirm live"
    return None


def production_warnings(settings: Settings) -> list[str]:
    """Legal but risky settings an operator should look at before going live."""
    warnings: list[str] = []
    secrets, broker, data = settings.secrets, settings.broker, settings.data
    alpaca_keys = secrets.alpaca_api_key is not None and secrets.alpaca_secret_key is not None
    if broker.live_trading:
        warnings.append("LIVE TRADING: broker.paper = false and live_confirm = true; real money")
    if broker.kind == "alpaca" and not alpaca_keys:
        warnings.append(
            "broker.kind is 'alpaca' but the Alpaca keys are missing "
            "(ALPACA_API_KEY, ALPACA_SECRET_KEY or credentials)"
        )
    if broker.kind == "alpaca" and data.provider == "synthetic":
        warnings.append(
            "data.provider is 'synthetic' with broker.kind 'alpaca': real orders on fake prices"
        )
    if data.provider == "alpaca" and not alpaca_keys:
        warnings.append(
            "data.provider is 'alpaca' but the Alpaca keys are missing "
            "(ALPACA_API_KEY, ALPACA_SECRET_KEY or credentials)"
        )
    if data.provider == "alphavantage" and secrets.alphavantage_api_key is None:
        warnings.append(
            "data.provider is 'alphavantage' but ALPHAVANTAGE_API_KEY (or credential) is missing"
        )
    metrics = settings.metrics
    if metrics.enabled and not _is_loopback(metrics.host):
        warnings.append(
            f"metrics.host {metrics.host!r} is not loopback: metrics are reachable from the network"
        )
    if settings.control.group is not None:
        warnings.append(
            f"control.group {settings.control.group!r}: the control socket is mode 0660; "
            "every member of the group can steer trading"
        )
    notify = settings.notify
    if notify.mail_to and notify.smtp_host is None:
        warnings.append("notify.mail_to is set but notify.smtp_host is not: no e-mail is sent")
    if notify.smtp_host is not None:
        remote = not _is_loopback(notify.smtp_host)
        if secrets.smtp_password is None and (remote or notify.smtp_user is not None):
            warnings.append("notify.smtp_host is set but SMTP_PASSWORD (or credential) is missing")
        if notify.smtp_security == "none" and remote:
            warnings.append(
                f"notify.smtp_security is 'none' towards {notify.smtp_host!r}: "
                "mail and password travel in clear text"
            )
    if not settings.daemon.state_dir.is_absolute():
        warnings.append(
            f"daemon.state_dir {str(settings.daemon.state_dir)!r} is relative: state depends "
            "on the working directory (systemd sets STATE_DIRECTORY)"
        )
    if settings.risk.trading_disabled:
        warnings.append("risk.trading_disabled: no orders will be placed")
    disabled = set(settings.risk.disabled_strategies)
    if not [name for name in settings.strategies.enabled_names() if name not in disabled]:
        warnings.append("no strategy is enabled: no orders will be placed")
    return warnings


def render_check_config(settings: Settings) -> str:
    """What ``tradingd check-config`` prints: the effective config as JSON, then warnings."""
    body = json.dumps(settings.redacted(), indent=2, sort_keys=True)
    warnings = production_warnings(settings)
    if not warnings:
        return f"{body}\nwarnings: none\n"
    lines = "".join(f"  - {warning}\n" for warning in warnings)
    return f"{body}\nwarnings:\n{lines}"
