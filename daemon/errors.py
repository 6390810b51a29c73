"""Errors named for what the operator must do.

The supervisor and the kill switch decide by class, never by message text:

- ``TemporaryError``: retryable (a timeout, a 429, a 5xx); the next attempt may work.
- ``OperationalError``: trading must stop until a person looks (a reconciliation
  mismatch, a refused account, bad data for most of the universe).
- ``FatalError``: the process itself is broken (the store is gone); exit non-zero
  and let systemd's ``Restart=on-failure`` take over.
"""

from __future__ import annotations


class TradingdError(Exception):
    """Base of every error tradingd raises on purpose."""


class TemporaryError(TradingdError):
    """A retryable failure: try again later, with backoff."""


class OperationalError(TradingdError):
    """A failure that halts trading and needs an operator."""


class FatalError(TradingdError):
    """The process cannot go on: exit non-zero, systemd restarts us."""


class Refusal(TradingdError, ValueError):
    """A handler's answer "no" (a busy cycle, an unknown run, a switch set by config).

    The asker gets it as an exception; the actor is healthy and is *not*
    restarted. Anything else a handler raises is a crash.
    """


class ConfigError(TradingdError):
    """Bad configuration: names the key and the reason. Exit code 78 (EX_CONFIG)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config error: {key}: {reason}")
        self.key = key
        self.reason = reason


class StoreError(FatalError):
    """The state database cannot be used."""


class StoreLockedError(StoreError):
    """Another tradingd already holds the state directory."""


class StoreVersionError(StoreError):
    """The database was written by a newer tradingd; refuse rather than overwrite."""


class StoreCorruptError(StoreError):
    """The database fails its integrity check or is not a database."""


class ActorStopped(TradingdError):
    """The actor an ask was sent to stopped (or was never running) before it replied."""


class AskTimeout(TemporaryError):
    """An ask got no reply within its timeout."""


class DataError(OperationalError):
    """Market data is missing, stale or wrong."""


class ProviderError(TemporaryError):
    """A market-data provider failed (HTTP error, throttled, malformed answer)."""
