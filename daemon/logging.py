"""Structured logs: structlog JSON lines on stdout, secret redaction, per-run event files.

``configure_logging()`` sets up structlog without the standard library's logging
machinery: a filtering bound logger printing one line per event, JSON when the
stream is not a terminal (journald, files), human-readable console output on a
TTY. Every line passes ``RedactSecrets`` first, so API keys and the like never
reach the journal, whether passed as a field, embedded in a message, nested in
a dict or inside an exception's text.

``EventLog`` appends the trading audit trail, one JSON object per line, to
``events_{run_id}.jsonl``, through the same redaction.
"""

from __future__ import annotations

import json as _json
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

import anyio
import anyio.to_thread
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "EventLog",
    "RedactSecrets",
    "configure_logging",
    "register_secret",
]

REDACTED: Final = "***"
MIN_SECRET_LENGTH: Final = 4
SECRET_KEY_PARTS: Final = ("password", "secret", "api_key", "token", "authorization")

_LEVELS: Final = {
    "critical": 50,
    "error": 40,
    "warning": 30,
    "warn": 30,
    "info": 20,
    "debug": 10,
}
_RUN_ID: Final = re.compile(r"[A-Za-z0-9_.-]+")
_EVENT_KIND: Final = re.compile(r"[A-Z][A-Z0-9_]*")
_EVENT_FILE: Final = re.compile(r"events_[A-Za-z0-9_.-]+\.jsonl")


class _SecretRegistry:
    """Process-wide set of secret values, with a pattern rebuilt only when it changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()

    def add(self, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._values = self._values | {value}

    @property
    def values(self) -> frozenset[str]:
        return self._values


_REGISTRY: Final = _SecretRegistry()


def register_secret(value: str) -> None:
    """Redact ``value`` from every log line and event file from now on.

    Values shorter than four characters are ignored: masking them would mangle
    ordinary text.
    """
    _REGISTRY.add(value)


def _secret_key(key: object) -> bool:
    return isinstance(key, str) and any(part in key.lower() for part in SECRET_KEY_PARTS)


class RedactSecrets:
    """structlog processor that replaces secrets in an event dict with ``***``.

    Redacts every occurrence of a known secret value (those given here plus every
    ``register_secret()``-ed one, including ones registered later) anywhere in the
    values, recursively through dicts, lists, tuples and sets, and in the text of
    any other object (exceptions, paths, messages) whose ``str()`` contains one.
    Values under keys whose name contains ``password``, ``secret``, ``api_key``,
    ``token`` or ``authorization`` (any case) are masked whatever they are.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._own = frozenset(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        # (secret set, its pattern) swapped as one object: safe across logging threads.
        self._cache: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return self.redact_mapping(event_dict)

    def _current_pattern(self) -> re.Pattern[str] | None:
        values = self._own | _REGISTRY.values
        cached_values, pattern = self._cache
        if values != cached_values:
            # Longest first, so a secret containing another is masked whole.
            ordered = sorted(values, key=len, reverse=True)
            pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            self._cache = (values, pattern)
        return pattern

    def redact_mapping(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``data`` with secret-named keys masked and secret values replaced."""
        return self._mapping(data, self._current_pattern())

    def redact(self, value: object) -> object:
        """``value`` with every known secret replaced (containers are copied)."""
        return self._value(value, self._current_pattern())

    def _mapping(self, data: Mapping[Any, Any], pattern: re.Pattern[str] | None) -> dict[Any, Any]:
        return {
            self._value(key, pattern): REDACTED if _secret_key(key) else self._value(val, pattern)
            for key, val in data.items()
        }

    def _value(self, value: Any, pattern: re.Pattern[str] | None) -> Any:
        if isinstance(value, str):
            return value if pattern is None else pattern.sub(REDACTED, value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return self._mapping(value, pattern)
        if isinstance(value, list | tuple | set | frozenset):
            items = [self._value(item, pattern) for item in value]
            return items if isinstance(value, list | tuple) else sorted(items, key=str)
        if pattern is None:
            return value
        # Anything else is rendered with str() by the JSON renderer: check that text.
        text = str(value)
        return pattern.sub(REDACTED, text) if pattern.search(text) else value


def configure_logging(
    *,
    level: str = "info",
    json: bool | None = None,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog for the process (safe to call again, e.g. in tests).

    ``json=None`` chooses JSON unless ``stream`` (default ``sys.stdout``) is a TTY.
    ``secrets`` are registered process-wide with ``register_secret()``.
    """
    min_level = _LEVELS.get(level.lower())
    if min_level is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(_LEVELS)}")
    out = stream if stream is not None else sys.stdout
    for secret in secrets:
        register_secret(secret)
    use_json = json if json is not None else not _isatty(out)
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_json.dumps, default=str)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.StackInfoRenderer(),
            # Exceptions become text here, before redaction, so secrets in
            # exception messages are masked too.
            structlog.processors.format_exc_info,
            RedactSecrets(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        context_class=dict,
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def set_level(level: str) -> None:
    """Change the minimum level of the running configuration (config reload)."""
    min_level = _LEVELS.get(level.lower())
    if min_level is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(_LEVELS)}")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(min_level))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False


_RESERVED_FIELDS: Final = frozenset({"ts", "run_id", "event_type"})


class EventLog:
    """Appends audit events to ``directory/events_{run_id}.jsonl``, one JSON object a line.

    The directory is created with mode 0o700 and files with 0o600. Writes run in
    a worker thread, one at a time and in call order; each line is written with a
    single ``O_APPEND`` write, so a crash leaves at most one partial last line.
    """

    def __init__(self, directory: Path, *, redactor: RedactSecrets | None = None) -> None:
        self._directory = directory
        self._redactor = redactor if redactor is not None else RedactSecrets()
        self._lock = anyio.Lock()
        self.write_failures = 0
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)

    @property
    def directory(self) -> Path:
        """Where the event files live."""
        return self._directory

    def path_for(self, run_id: str) -> Path:
        """The event file of ``run_id``; ``ValueError`` unless it matches ``[A-Za-z0-9_.-]+``."""
        if not _RUN_ID.fullmatch(run_id) or run_id in {".", ".."}:
            raise ValueError(f"invalid run_id {run_id!r}: only letters, digits, '_', '.', '-'")
        return self._directory / f"events_{run_id}.jsonl"

    async def write(self, run_id: str, event: str, at: datetime, **fields: Any) -> None:
        """Append ``{"ts", "run_id", "event_type", **fields}`` (secrets redacted) as one line.

        ``event`` is the kind (the application names them, e.g. ``CYCLE_STARTED``:
        upper case, digits, ``_``). ``at`` must be timezone-aware; it is written in UTC
        ISO 8601. A failed
        write (disk full, read-only) is logged and counted, never raised: the
        store is the source of truth, and an event file must not be the reason
        a cycle cannot report how it ended.
        """
        await self.write_many(run_id, [(event, at, fields)])

    async def write_many(
        self, run_id: str, entries: Sequence[tuple[str, datetime, Mapping[str, Any]]]
    ) -> None:
        """Append ``(event, at, fields)`` entries in order, as ``write`` does each, in one
        trip to the worker thread; every entry is checked before the first is written."""
        path = self.path_for(run_id)
        lines = [self._line(run_id, event, at, fields) for event, at, fields in entries]
        if not lines:
            return
        async with self._lock:
            try:
                await anyio.to_thread.run_sync(_append, path, lines)
            except OSError as exc:
                self.write_failures += 1
                structlog.get_logger().warning(
                    "event_file_write_failed", path=str(path), error=str(exc)
                )

    def _line(self, run_id: str, event: str, at: datetime, fields: Mapping[str, Any]) -> bytes:
        """One event's line, or ``ValueError`` for a naive time, a bad kind, a reserved field."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"event time must be timezone-aware, got {at!r}")
        if not _EVENT_KIND.fullmatch(str(event)):
            raise ValueError(f"invalid event kind {event!r}: upper-case letters, digits, '_'")
        clash = _RESERVED_FIELDS.intersection(fields)
        if clash:
            raise ValueError(f"fields may not override {sorted(clash)}")
        record = {
            "ts": at.astimezone(UTC).isoformat(),
            "run_id": run_id,
            "event_type": str(event),
            **self._redactor.redact_mapping(fields),
        }
        return (_json.dumps(record, default=str) + "\n").encode()

    def prune(self, older_than: datetime) -> int:
        """Delete event files last modified before ``older_than``; return how many."""
        cutoff = older_than.timestamp()
        removed = 0
        for entry in self._directory.iterdir():
            if not _EVENT_FILE.fullmatch(entry.name) or not entry.is_file():
                continue
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:  # removed concurrently
                continue
        return removed


def _append(path: Path, lines: Sequence[bytes]) -> None:
    """Each of ``lines`` appended with its own ``O_APPEND`` write, the file opened once."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        for data in lines:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
    finally:
        os.close(fd)
