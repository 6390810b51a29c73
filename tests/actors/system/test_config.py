"""Tests for actors.system.config: layering, validation errors, secrets, warnings."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from actors.system.config import (
    EX_CONFIG,
    Settings,
    load_settings,
    production_warnings,
    render_check_config,
)
from daemon.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "ops" / "tradingd.example.toml"
FAKE_SECRET = "sk-FAKE-7f3a9c-do-not-leak"
PROD = {"STATE_DIRECTORY": "/var/lib/tradingd"}


def load(tmp_path: Path, toml: str | None = None, **environ: str) -> Settings:
    """Load settings from an optional TOML text and an explicit environment."""
    path = None
    if toml is not None:
        path = tmp_path / "tradingd.toml"
        path.write_text(textwrap.dedent(toml), encoding="utf-8")
    return load_settings(path, environ)


def config_error(tmp_path: Path, toml: str | None = None, **environ: str) -> ConfigError:
    """The ConfigError that loading raises."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, **environ)
    return info.value


# --- layering ------------------------------------------------------------------------------


def test_defaults_without_file_or_environment() -> None:
    """No file and an empty environment give the embedded defaults."""
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.daemon.state_dir == Path("var")
    assert settings.daemon.run_dir == Path("var/run")
    assert settings.schedule.time == dt.time(9, 30)
    assert settings.metrics.port == 9464
    assert settings.data.provider == "synthetic"
    assert settings.broker.kind == "sim"
    assert settings.secrets.alpaca_api_key is None


def test_derived_paths() -> None:
    """The database, socket and event paths derive from the two directories."""
    daemon = load_settings(None, {}).daemon
    assert daemon.db_path == Path("var/tradingd.db")
    assert daemon.socket_path == Path("var/run/tradingd.sock")
    assert daemon.events_dir == Path("var/logs/events")


def test_systemd_directories_are_the_defaults() -> None:
    """STATE_DIRECTORY and RUNTIME_DIRECTORY (first entry) become the directory defaults."""
    settings = load_settings(
        None, {"STATE_DIRECTORY": "/var/lib/tradingd:/var/lib/other", "RUNTIME_DIRECTORY": "/run/t"}
    )
    assert settings.daemon.state_dir == Path("/var/lib/tradingd")
    assert settings.daemon.run_dir == Path("/run/t")


def test_run_dir_follows_state_dir(tmp_path: Path) -> None:
    """Without RUNTIME_DIRECTORY the run directory is <state_dir>/run."""
    settings = load(tmp_path, '[daemon]\nstate_dir = "/srv/td"\n', STATE_DIRECTORY="/ignored")
    assert settings.daemon.state_dir == Path("/srv/td")
    assert settings.daemon.run_dir == Path("/srv/td/run")


def test_file_overrides_defaults(tmp_path: Path) -> None:
    """Values in the TOML file replace the defaults; the rest stay."""
    settings = load(
        tmp_path,
        """
        [schedule]
        time = 10:15:00
        [metrics]
        port = 9999
        [strategies.momentum]
        threshold = 0.1
        """,
    )
    assert settings.schedule.time == dt.time(10, 15)
    assert settings.metrics.port == 9999
    assert settings.strategies.momentum.threshold == 0.1
    assert settings.strategies.momentum.lookback == 20


def test_config_path_from_environment(tmp_path: Path) -> None:
    """Without a path argument, $TRADINGD_CONFIG names the file."""
    path = tmp_path / "other.toml"
    path.write_text("[metrics]\nport = 1234\n", encoding="utf-8")
    assert load_settings(None, {"TRADINGD_CONFIG": str(path)}).metrics.port == 1234


def test_environment_overrides_file(tmp_path: Path) -> None:
    """TRADINGD_SECTION__KEY variables beat the file."""
    settings = load(
        tmp_path,
        "[metrics]\nport = 1111\n[data]\nprovider = 'synthetic'\n",
        TRADINGD_METRICS__PORT="9999",
        TRADINGD_STRATEGIES__MOMENTUM__ENABLED="false",
    )
    assert settings.metrics.port == 9999
    assert settings.strategies.momentum.enabled is False


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("TRADINGD_METRICS__ENABLED", "false", ("metrics", "enabled"), False),
        ("TRADINGD_METRICS__PORT", "9999", ("metrics", "port"), 9999),
        (
            "TRADINGD_NOTIFY__MAIL_TO",
            '["a@x.org","b@x.org"]',
            ("notify", "mail_to"),
            ("a@x.org", "b@x.org"),
        ),
        (
            "TRADINGD_NOTIFY__MAIL_TO",
            "a@x.org, b@x.org",
            ("notify", "mail_to"),
            ("a@x.org", "b@x.org"),
        ),
        (
            "TRADINGD_DATA__UNIVERSE__SYMBOLS",
            '["A","B"]',
            ("data", "universe", "symbols"),
            ("A", "B"),
        ),
        ("TRADINGD_DATA__ALPACA__FEED", "sip", ("data", "alpaca", "feed"), "sip"),
        ("TRADINGD_CONTROL__GROUP", "1000", ("control", "group"), "1000"),
        ("TRADINGD_DAEMON__LOG_JSON", "null", ("daemon", "log_json"), None),
        ("TRADINGD_DAEMON__LOG_LEVEL", "DEBUG", ("daemon", "log_level"), "debug"),
        ("TRADINGD_SCHEDULE__TIME", "16:05", ("schedule", "time"), dt.time(16, 5)),
        ("TRADINGD_DATA__CSV__PATH", "/srv/bars", ("data", "csv", "path"), Path("/srv/bars")),
    ],
)
def test_environment_values_parse_as_json_else_text(
    tmp_path: Path, variable: str, value: str, attribute: tuple[str, ...], expected: Any
) -> None:
    """Environment values are JSON when they parse, text otherwise, and text fields stay text."""
    current: Any = load(tmp_path, **{variable: value})
    for name in attribute:
        current = getattr(current, name)
    assert current == expected


def test_environment_sets_a_whole_section_as_json(tmp_path: Path) -> None:
    """A section variable holding a JSON object merges into the file's section."""
    settings = load(tmp_path, "[metrics]\nhost = '127.0.0.2'\n", TRADINGD_METRICS='{"port": 7000}')
    assert (settings.metrics.host, settings.metrics.port) == ("127.0.0.2", 7000)


def test_settings_are_frozen() -> None:
    """Loaded settings cannot be changed in place."""
    settings = load_settings(None, {})
    with pytest.raises(ValidationError):
        settings.metrics.port = 1  # type: ignore[misc]


def test_exit_code_is_ex_config() -> None:
    """A configuration error exits with sysexits' EX_CONFIG."""
    assert EX_CONFIG == 78


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key", "reason"),
    [
        ("[metrics]\nport = 70000", "metrics.port", "less than or equal to 65535"),
        ("[metrics]\nport = -1", "metrics.port", "greater than or equal to 0"),
        ("[strategies.momentum]\nthreshold = 'high'", "strategies.momentum.threshold", "number"),
        ("[data]\nprovider = 'yahoo'", "data.provider", "'synthetic'"),
        ("[daemon]\nlog_level = 'verbose'", "daemon.log_level", "'debug'"),
        ("[schedule]\ntimezone = 'Mars/Olympus'", "schedule.timezone", "unknown time zone"),
        ("[schedule]\ncalendar = 'XXXX'", "schedule.calendar", "unknown exchange calendar"),
        (
            "[strategies.ma_crossover]\nfast = 100\nslow = 50",
            "strategies.ma_crossover.fast",
            "less than",
        ),
        (
            "[strategies.rsi_mean_reversion]\nrsi_entry = 60.0",
            "strategies.rsi_mean_reversion.rsi_entry",
            "rsi_exit",
        ),
        ("[data]\nprovider = 'csv'", "data.csv.path", "required when data.provider is 'csv'"),
        ("[data.universe]\nmode = 'csv'", "data.universe.file", "required when data.universe.mode"),
        ("[broker]\nkind = 'alpaca'\npaper = false", "broker.live_confirm", "live_confirm = true"),
        (
            "[daemon]\nrestart_backoff_s = 5.0\nrestart_backoff_max_s = 1.0",
            "daemon.restart_backoff_max_s",
            "less than",
        ),
        (f"[daemon]\nrun_dir = '/{'x' * 120}'", "daemon.run_dir", "Unix sockets allow 107"),
        (
            "[risk]\ndisabled_strategies = ['momentum', 'yolo']",
            "risk.disabled_strategies",
            "'yolo'",
        ),
        ("[notify]\nmail_to = ['nobody']", "notify.mail_to", "not an e-mail address"),
        ("[data.universe]\nsymbols = ['A', 2]", "data.universe.symbols[1]", "string"),
        ("metrics = 5", "metrics", "dictionary"),
        ("[data.alpaca]\ncolour = 'blue'", "data.alpaca.colour", "unknown key"),
        ("[strategies.turtle]\nenabled = true", "strategies.turtle", "unknown key"),
        ("[nonsense]\na = 1", "nonsense", "unknown key"),
    ],
)
def test_validation_error_names_the_dotted_key(
    tmp_path: Path, toml: str, key: str, reason: str
) -> None:
    """Each invalid setting raises one single-line ConfigError keyed by its dotted path."""
    error = config_error(tmp_path, toml)
    assert error.key == key
    assert reason in error.reason
    assert str(error) == f"config error: {key}: {error.reason}"
    assert "\n" not in str(error)


def test_several_problems_raise_one_error_counting_the_rest(tmp_path: Path) -> None:
    """Two bad keys give one error for the first, mentioning the other."""
    error = config_error(tmp_path, "[metrics]\nport = 'x'\nhost = 5\n")
    assert error.key == "metrics.host"
    assert error.reason.endswith("(and 1 more)")


def test_environment_error_names_the_variable_it_came_from(tmp_path: Path) -> None:
    """A bad value from the environment keeps the dotted key and cites the variable."""
    error = config_error(tmp_path, TRADINGD_METRICS__PORT="70000")
    assert error.key == "metrics.port"
    assert "$TRADINGD_METRICS__PORT" in error.reason


def test_unknown_environment_variable(tmp_path: Path) -> None:
    """An unknown TRADINGD_* variable is an error naming the variable."""
    error = config_error(tmp_path, TRADINGD_METRICS__PROT="1")
    assert error.key == "TRADINGD_METRICS__PROT"
    assert "metrics.prot" in error.reason


def test_environment_cannot_descend_below_a_leaf(tmp_path: Path) -> None:
    """A variable naming a path under a plain value is unknown."""
    assert config_error(tmp_path, TRADINGD_METRICS__PORT__X="1").key == "TRADINGD_METRICS__PORT__X"


def test_missing_file(tmp_path: Path) -> None:
    """A missing config file is an error naming the file."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert info.value.key == str(path)
    assert "not found" in info.value.reason


def test_missing_file_from_environment_says_so(tmp_path: Path) -> None:
    """A missing $TRADINGD_CONFIG file says where the name came from."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"TRADINGD_CONFIG": str(path)})
    assert info.value.key == str(path)
    assert "$TRADINGD_CONFIG" in info.value.reason


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A TOML syntax error names the file and the line."""
    path = tmp_path / "tradingd.toml"
    path.write_text("[metrics]\nport = \n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert info.value.key == str(path)
    assert "line 2" in info.value.reason


# --- secrets -------------------------------------------------------------------------------


def test_secret_in_file_is_refused(tmp_path: Path) -> None:
    """A [secrets] table in the file is an error pointing at the environment/credentials."""
    error = config_error(tmp_path, f"[secrets]\nalpaca_api_key = '{FAKE_SECRET}'\n")
    assert error.key == "secrets.alpaca_api_key"
    assert "ALPACA_API_KEY" in error.reason
    assert "CREDENTIALS_DIRECTORY" in error.reason
    assert FAKE_SECRET not in str(error)


def test_secret_like_key_elsewhere_in_file_gets_a_hint(tmp_path: Path) -> None:
    """A password-looking unknown key says that secrets belong in the environment."""
    error = config_error(tmp_path, f"[notify]\nsmtp_password = '{FAKE_SECRET}'\n")
    assert error.key == "notify.smtp_password"
    assert error.reason.startswith("unknown key; secrets are not read from the config file")
    assert FAKE_SECRET not in str(error)


def test_secrets_from_environment(tmp_path: Path) -> None:
    """The conventional variables fill the secrets."""
    settings = load(
        tmp_path,
        ALPACA_API_KEY="key",
        ALPACA_SECRET_KEY="secret",
        ALPHAVANTAGE_API_KEY="av",
        SMTP_PASSWORD="pw",
    )
    secrets = settings.secrets
    assert secrets.alpaca_api_key == SecretStr("key")
    assert secrets.alpaca_secret_key == SecretStr("secret")
    assert secrets.alphavantage_api_key == SecretStr("av")
    assert secrets.smtp_password == SecretStr("pw")


def test_prefixed_secret_variable_wins(tmp_path: Path) -> None:
    """TRADINGD_SECRETS__NAME overrides the conventional variable and is kept as text."""
    settings = load(tmp_path, ALPACA_API_KEY="plain", TRADINGD_SECRETS__ALPACA_API_KEY="12345")
    assert settings.secrets.alpaca_api_key == SecretStr("12345")


def test_secrets_from_credentials_directory(tmp_path: Path) -> None:
    """Credential files are read with the trailing newline stripped."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "alpaca_api_key").write_text("file-key\n", encoding="utf-8")
    (credentials / "smtp_password").write_text("pass word\r\n", encoding="utf-8")
    settings = load(tmp_path, CREDENTIALS_DIRECTORY=str(credentials))
    assert settings.secrets.alpaca_api_key == SecretStr("file-key")
    assert settings.secrets.smtp_password == SecretStr("pass word")
    assert settings.secrets.alpaca_secret_key is None


def test_environment_secret_beats_credential_file(tmp_path: Path) -> None:
    """The environment wins over a credential file; an empty variable does not erase it."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "alpaca_api_key").write_text("file-key\n", encoding="utf-8")
    (credentials / "alpaca_secret_key").write_text("file-secret\n", encoding="utf-8")
    settings = load(
        tmp_path,
        CREDENTIALS_DIRECTORY=str(credentials),
        ALPACA_API_KEY="env-key",
        ALPACA_SECRET_KEY="",
    )
    assert settings.secrets.alpaca_api_key == SecretStr("env-key")
    assert settings.secrets.alpaca_secret_key == SecretStr("file-secret")


def test_unreadable_credential_is_an_error(tmp_path: Path) -> None:
    """A credential path that cannot be read names the secret."""
    credentials = tmp_path / "credentials"
    (credentials / "smtp_password").mkdir(parents=True)
    error = config_error(tmp_path, CREDENTIALS_DIRECTORY=str(credentials))
    assert error.key == "secrets.smtp_password"


def test_secret_values_never_leak(tmp_path: Path) -> None:
    """No secret value appears in redacted(), check-config output, repr or str."""
    settings = load(
        tmp_path,
        ALPACA_API_KEY=FAKE_SECRET,
        ALPACA_SECRET_KEY=FAKE_SECRET,
        SMTP_PASSWORD=FAKE_SECRET,
    )
    redacted = settings.redacted()
    assert redacted["secrets"] == {
        "alpaca_api_key": "***",
        "alpaca_secret_key": "***",
        "alphavantage_api_key": None,
        "smtp_password": "***",
    }
    for text in (
        json.dumps(redacted),
        render_check_config(settings),
        repr(settings),
        str(settings),
    ):
        assert FAKE_SECRET not in text


def test_redacted_hides_url_tokens_and_credentials(tmp_path: Path) -> None:
    """Webhook paths and user:password in URLs are masked."""
    settings = load(
        tmp_path,
        """
        [notify]
        webhook_url = "https://hooks.example.com/services/T0/B0/tokentoken"
        [broker]
        base_url = "https://user:pw@broker.example.com:8443/v2"
        """,
    )
    redacted = settings.redacted()
    assert redacted["notify"]["webhook_url"] == "https://hooks.example.com/***"
    assert redacted["broker"]["base_url"] == "https://broker.example.com:8443/v2"


# --- manual switches -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_trading_disabled_switch(tmp_path: Path, value: str) -> None:
    """TRADING_DISABLED=true|1|yes disables trading."""
    assert load(tmp_path, TRADING_DISABLED=value).risk.trading_disabled is True


def test_trading_disabled_false_never_reenables(tmp_path: Path) -> None:
    """TRADING_DISABLED=false leaves a file's halt in place."""
    settings = load(tmp_path, "[risk]\ntrading_disabled = true\n", TRADING_DISABLED="false")
    assert settings.risk.trading_disabled is True
    assert load(tmp_path, TRADING_DISABLED="0").risk.trading_disabled is False


def test_trading_disabled_garbage_is_an_error(tmp_path: Path) -> None:
    """An unreadable TRADING_DISABLED value is refused rather than guessed."""
    assert config_error(tmp_path, TRADING_DISABLED="maybe").key == "TRADING_DISABLED"


def test_strategy_disabled_list_adds_to_file(tmp_path: Path) -> None:
    """STRATEGY_DISABLED_LIST=a,b disables those strategies on top of the file's list."""
    settings = load(
        tmp_path,
        "[risk]\ndisabled_strategies = ['momentum']\n",
        STRATEGY_DISABLED_LIST=" ma_crossover, momentum ,",
    )
    assert settings.risk.disabled_strategies == ("momentum", "ma_crossover")


def test_strategy_disabled_list_unknown_name(tmp_path: Path) -> None:
    """An unknown strategy in STRATEGY_DISABLED_LIST is named, as is the variable."""
    error = config_error(tmp_path, STRATEGY_DISABLED_LIST="momentum,moonshot")
    assert error.key == "risk.disabled_strategies"
    assert "'moonshot'" in error.reason
    assert "$STRATEGY_DISABLED_LIST" in error.reason


# --- production warnings -------------------------------------------------------------------


def test_no_warnings_for_defaults_with_absolute_state_dir() -> None:
    """The embedded defaults under systemd raise no warnings."""
    assert production_warnings(load_settings(None, PROD)) == []


def test_relative_state_dir_warns() -> None:
    """A relative state directory is flagged."""
    (warning,) = production_warnings(load_settings(None, {}))
    assert "daemon.state_dir" in warning


@pytest.mark.parametrize(
    ("toml", "environ", "fragment"),
    [
        (
            "[broker]\nkind = 'alpaca'\n[data]\nprovider = 'csv'\n[data.csv]\npath = '/d'",
            {},
            "Alpaca keys are missing",
        ),
        ("[broker]\nkind = 'alpaca'\npaper = false\nlive_confirm = true", {}, "LIVE TRADING"),
        ("[broker]\nkind = 'alpaca'", {}, "real orders on fake prices"),
        ("[metrics]\nhost = '0.0.0.0'", {}, "metrics.host '0.0.0.0' is not loopback"),
        ("[control]\ngroup = 'ops'", {}, "control.group 'ops'"),
        ("[data]\nprovider = 'alpaca'", {}, "data.provider is 'alpaca'"),
        ("[data]\nprovider = 'alphavantage'", {}, "ALPHAVANTAGE_API_KEY"),
        ("[notify]\nsmtp_host = 'smtp.example.com'\nmail_to = ['a@x.org']", {}, "SMTP_PASSWORD"),
        (
            "[notify]\nsmtp_host = 'smtp.example.com'\nsmtp_security = 'none'",
            {"SMTP_PASSWORD": "p"},
            "clear text",
        ),
        ("[notify]\nmail_to = ['a@x.org']", {}, "no e-mail is sent"),
        ("[risk]\ntrading_disabled = true", {}, "no orders will be placed"),
        (
            "[risk]\ndisabled_strategies = 'rsi_mean_reversion,ma_crossover,momentum,ml_momentum'",
            {},
            "no strategy is enabled",
        ),
    ],
)
def test_production_warning(
    tmp_path: Path, toml: str, environ: dict[str, str], fragment: str
) -> None:
    """Each risky but legal setting produces a warning."""
    settings = load(tmp_path, toml, **PROD, **environ)
    warnings = production_warnings(settings)
    assert any(fragment in warning for warning in warnings), warnings


def test_local_relay_without_password_does_not_warn(tmp_path: Path) -> None:
    """An unauthenticated loopback relay with plain SMTP is a normal setup."""
    settings = load(
        tmp_path,
        "[notify]\nsmtp_host = 'localhost'\nsmtp_port = 25\nsmtp_security = 'none'\n"
        "mail_to = ['a@x.org']\n",
        **PROD,
    )
    assert production_warnings(settings) == []


def test_alpaca_with_keys_and_real_data_does_not_warn(tmp_path: Path) -> None:
    """Alpaca paper trading on Alpaca data with both keys is clean."""
    settings = load(
        tmp_path,
        "[broker]\nkind = 'alpaca'\n[data]\nprovider = 'alpaca'\n",
        **PROD,
        ALPACA_API_KEY="k",
        ALPACA_SECRET_KEY="s",
    )
    assert production_warnings(settings) == []


def test_render_check_config() -> None:
    """check-config prints sorted JSON of the redacted settings, then the warnings."""
    settings = load_settings(None, {})
    text = render_check_config(settings)
    body, _, tail = text.partition("\nwarnings:")
    assert json.loads(body) == settings.redacted()
    assert body == json.dumps(settings.redacted(), indent=2, sort_keys=True)
    assert tail.startswith("\n  - daemon.state_dir")
    assert render_check_config(load_settings(None, PROD)).endswith("\nwarnings: none\n")


# --- the example file ----------------------------------------------------------------------


def test_example_config_equals_defaults() -> None:
    """ops/tradingd.example.toml loads cleanly and gives the defaults."""
    assert load_settings(EXAMPLE, {}) == load_settings(None, {})


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf setting path of a model."""
    paths: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _leaves(annotation, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def test_example_config_documents_every_key() -> None:
    """Every non-secret key is set in the example or shown commented out with a value."""
    text = EXAMPLE.read_text(encoding="utf-8")
    document = tomllib.loads(text)
    for path in _leaves(Settings):
        if path[0] == "secrets":
            continue
        current: Any = document
        for name in path:
            current = current.get(name, {}) if isinstance(current, dict) else {}
        if current == {}:
            assert f"# {path[-1]} = " in text, ".".join(path)


def test_alpaca_key_must_match_the_account_mode() -> None:
    """A paper key (PK...) cannot trade live and a live key (AK...) is not used for paper."""
    from actors.system.config import alpaca_key_mismatch

    assert alpaca_key_mismatch("PKTEST123", live=False) is None
    assert alpaca_key_mismatch("AKLIVE123", live=True) is None
    assert "paper key" in (alpaca_key_mismatch("PKTEST123", live=True) or "")
    assert "live key" in (alpaca_key_mismatch("AKLIVE123", live=False) or "")
    assert alpaca_key_mismatch("test-key-id", live=False) is None
