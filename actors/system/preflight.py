"""Checks ``tradingd check-config`` and ``tradingd run`` make before anything starts.

``load_settings`` validates each value on its own; these look at what the values
point to, so a daemon never starts only to fail its first cycle (or print a
traceback) on something the operator can fix from one line:

- ``data.provider = "csv"`` with a ``data.csv.path`` that does not exist;
- the Alpaca broker or Alpaca data without both keys (``ALPACA_API_KEY``,
  ``ALPACA_SECRET_KEY``, from the environment or systemd credentials);
- an Alpaca broker key id for the other mode (a paper ``PK...`` key with
  ``broker.paper = false``, a live ``AK...`` key with ``broker.paper = true``).

Each failure is one ``ConfigError`` naming the key; the CLI prints it on one line
and exits 78 (EX_CONFIG). Whether Alpaca accepts the keys needs the network and
is not checked here.
"""

from __future__ import annotations

from pydantic import SecretStr

from actors.system.config import SECRET_ENV, Settings, alpaca_key_mismatch
from daemon.errors import ConfigError


def preflight(settings: Settings) -> None:
    """Raise ``ConfigError`` (naming the key) for the first problem found, else return."""
    data, broker = settings.data, settings.broker
    if data.provider == "csv" and data.csv.path is not None and not data.csv.path.exists():
        raise ConfigError(
            "data.csv.path",
            f"{str(data.csv.path)!r} does not exist (a CSV file or a folder of SYMBOL.csv files)",
        )
    users = [
        f"{key} = 'alpaca'"
        for key, chosen in (("broker.kind", broker.kind), ("data.provider", data.provider))
        if chosen == "alpaca"
    ]
    if not users:
        return
    secrets = settings.secrets
    missing = [
        SECRET_ENV[name]
        for name, value in (
            ("alpaca_api_key", secrets.alpaca_api_key),
            ("alpaca_secret_key", secrets.alpaca_secret_key),
        )
        if not _value(value)
    ]
    if missing:
        raise ConfigError(
            " and ".join(missing),
            f"required when {' and '.join(users)} (set it in the environment, or as a"
            f" systemd credential named {' and '.join(m.lower() for m in missing)})",
        )
    if broker.kind != "alpaca":
        return
    mismatch = alpaca_key_mismatch(_value(secrets.alpaca_api_key), live=broker.live_trading)
    if mismatch is not None:
        raise ConfigError(SECRET_ENV["alpaca_api_key"], mismatch)


def _value(secret: SecretStr | None) -> str:
    return "" if secret is None else secret.get_secret_value().strip()


__all__ = ["preflight"]
