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
and exits 78 (EX_CONFIG).

``verify_alpaca_keys`` then asks Alpaca itself (``GET /v2/account`` at the
configured ``broker.base_url``, or alpaca-py's paper/live endpoint for
``broker.paper``), once, with a short timeout and no retries: a 401 or 403 means
the keys are wrong or belong to the other mode (paper keys on the live endpoint
and the reverse are refused with 401), and is a ``ConfigError`` naming
``ALPACA_API_KEY``. An endpoint that cannot be reached says nothing about the
keys: that is a warning (``KeysUnverified``), not a configuration error; the
daemon's first cycle then waits for the broker as it does for any outage.
"""

from __future__ import annotations

from pydantic import SecretStr

from actors.brokers.base import AccountBlocked, BrokerError, BrokerUnavailable
from actors.system.config import SECRET_ENV, Settings, alpaca_key_mismatch, redact_url
from daemon.errors import ConfigError

VERIFY_TIMEOUT_S = 5.0
"""How long ``verify_alpaca_keys`` waits for Alpaca's answer (one try, no retries)."""


class KeysUnverified(Exception):
    """Alpaca could not be asked (unreachable, timed out, 5xx): the keys are not judged."""


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


async def verify_alpaca_keys(settings: Settings, *, timeout_s: float = VERIFY_TIMEOUT_S) -> None:
    """Ask Alpaca whether it accepts the broker keys (call after ``preflight``).

    Nothing to do unless ``broker.kind = "alpaca"``. Raises ``ConfigError`` naming
    ``ALPACA_API_KEY`` when Alpaca refuses them (401/403), ``KeysUnverified`` when it
    gives no answer about them. The secret never appears in either message.
    """
    broker = settings.broker
    if broker.kind != "alpaca":
        return
    from actors.brokers.alpaca import AlpacaBroker

    where = (
        redact_url(broker.base_url, keep_path=False)
        if broker.base_url
        else ("the live endpoint" if broker.live_trading else "the paper endpoint")
    )
    client = AlpacaBroker(
        _value(settings.secrets.alpaca_api_key),
        _value(settings.secrets.alpaca_secret_key),
        paper=not broker.live_trading,
        base_url=broker.base_url,
        timeout_s=timeout_s,
        max_read_retries=0,
    )
    try:
        await client.account()
    except AccountBlocked as exc:
        mode = "live" if broker.live_trading else "paper"
        paper = str(not broker.live_trading).lower()
        raise ConfigError(
            SECRET_ENV["alpaca_api_key"],
            f"Alpaca refused the keys at {where} ({_reason(str(exc))}): check both keys,"
            f" and that they are {mode} keys (broker.paper = {paper})",
        ) from None
    except (BrokerError, BrokerUnavailable) as exc:
        raise KeysUnverified(f"could not ask Alpaca at {where} about the keys: {exc}") from None
    finally:
        await client.close()


def _reason(message: str) -> str:
    """The HTTP part of a broker error ("HTTP 401: request is not authorized")."""
    return message.split(": ", 1)[1] if ": " in message else message


def _value(secret: SecretStr | None) -> str:
    return "" if secret is None else secret.get_secret_value().strip()


__all__ = ["KeysUnverified", "preflight", "verify_alpaca_keys"]
