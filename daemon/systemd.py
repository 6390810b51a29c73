"""Tell systemd how the daemon is doing: the ``sd_notify`` datagram protocol.

``SystemdNotifier.from_env()`` reads ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
``WATCHDOG_PID`` once. Without ``NOTIFY_SOCKET`` (not started by systemd, or a
``Type=simple`` unit) every method is a cheap no-op. With it, each call sends one
datagram of newline-separated ``KEY=VALUE`` lines through the small
implementation below (AF_UNIX, SOCK_DGRAM, non-blocking ``sendto``), or through
systemd-python's ``daemon.notify`` when explicitly asked for (``use_library=True``).

The built-in sender is the default on purpose: libsystemd's ``sd_notify``
blocks while the receiver's datagram queue is full, and these calls run on the
event loop. A systemd that is slow to read would otherwise wedge the daemon
(seen in a test that read its NOTIFY_SOCKET only now and then: after ten unread
watchdog pings the whole loop stopped). A non-blocking send drops the message
instead, which the watchdog tolerates.

Notification never raises into the caller: a vanished socket or a full queue is
logged once (until a later send succeeds) and reported as ``False``.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Final

import structlog

__all__ = ["SystemdNotifier"]

_KEY: Final = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _load_library() -> ModuleType | None:
    """systemd-python's ``daemon`` module, or ``None`` when it is not installed."""
    # import_module rather than ``from systemd import daemon``: the optional
    # dependency has no type stubs, and the repository's systemd/ unit directory
    # would otherwise look like a namespace package to mypy.
    try:
        return importlib.import_module("systemd.daemon")
    except ImportError:
        return None


def _socket_address(value: str) -> str | None:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value, or ``None`` if unusable."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _parse_watchdog(environ: Mapping[str, str]) -> int | None:
    """``WATCHDOG_USEC`` in µs if the watchdog is meant for this process, else ``None``."""
    raw_usec = environ.get("WATCHDOG_USEC")
    if raw_usec is None:
        return None
    raw_pid = environ.get("WATCHDOG_PID")
    try:
        usec = int(raw_usec)
        pid = None if raw_pid is None else int(raw_pid)
    except ValueError:
        structlog.get_logger().warning(
            "systemd_watchdog_env_invalid", watchdog_usec=raw_usec, watchdog_pid=raw_pid
        )
        return None
    if usec <= 0 or (pid is not None and pid != os.getpid()):
        return None
    return usec


class SystemdNotifier:
    """Sends ``sd_notify`` messages (READY, RELOADING, STOPPING, STATUS, WATCHDOG).

    ``notify_socket`` is the raw ``NOTIFY_SOCKET`` value (a path, or ``@name`` for
    the abstract namespace); ``None`` disables the notifier. ``use_library``
    chooses the transport: ``None`` and ``False`` use the built-in non-blocking
    datagram sender (see the module docstring for why), ``True`` requires
    systemd-python (which reads ``NOTIFY_SOCKET`` from ``os.environ`` only).
    """

    def __init__(
        self,
        notify_socket: str | None,
        *,
        watchdog_usec: int | None = None,
        use_library: bool | None = None,
    ) -> None:
        self._raw_socket = notify_socket
        self._address = None if notify_socket is None else _socket_address(notify_socket)
        if notify_socket is not None and self._address is None:
            structlog.get_logger().warning(
                "systemd_notify_socket_unsupported", notify_socket=notify_socket
            )
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._library = self._choose_library(use_library)
        self._failing = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, use_library: bool | None = None
    ) -> SystemdNotifier:
        """Build a notifier from ``NOTIFY_SOCKET``/``WATCHDOG_*`` (``os.environ`` by default).

        The watchdog is enabled only when ``WATCHDOG_USEC`` is a positive integer
        and ``WATCHDOG_PID`` is absent or this process's pid.
        """
        env = os.environ if environ is None else environ
        return cls(
            env.get("NOTIFY_SOCKET") or None,
            watchdog_usec=_parse_watchdog(env),
            use_library=use_library,
        )

    def _choose_library(self, use_library: bool | None) -> ModuleType | None:
        if not use_library or self._address is None:
            return None
        library = _load_library()
        if library is None:
            raise ImportError("use_library=True but systemd-python is not importable")
        if os.environ.get("NOTIFY_SOCKET") != self._raw_socket:
            raise ValueError(
                "use_library=True but os.environ['NOTIFY_SOCKET'] differs from "
                f"{self._raw_socket!r}; systemd-python only reads os.environ"
            )
        return library

    @property
    def enabled(self) -> bool:
        """Whether messages are sent at all (``NOTIFY_SOCKET`` was set and usable)."""
        return self._address is not None

    @property
    def uses_library(self) -> bool:
        """Whether messages go through systemd-python rather than the built-in sender."""
        return self._library is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``watchdog()`` pings: half of ``WATCHDOG_USEC``, or ``None``."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def ready(self) -> bool:
        """Startup (or a reload) finished: ``READY=1``."""
        return self.send("READY=1")

    def reloading(self) -> bool:
        """A reload began: ``RELOADING=1`` with the ``MONOTONIC_USEC`` systemd expects."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """Shutdown began: ``STOPPING=1``."""
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        """One-line status shown by ``systemctl status`` (newlines become spaces)."""
        return self.send("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> bool:
        """Keep-alive ping ``WATCHDOG=1``; a no-op unless the watchdog is enabled."""
        if self.watchdog_interval is None:
            return False
        return self.send("WATCHDOG=1")

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` lines, e.g. ``notify(READY=1, STATUS="up")``.

        Raises ``ValueError`` for a key that is not upper-case ``[A-Z0-9_]`` or a
        value containing a newline: both would corrupt the message.
        """
        lines = []
        for key, value in fields.items():
            text = str(value)
            if not _KEY.match(key) or "\n" in text:
                raise ValueError(f"invalid sd_notify field {key}={text!r}")
            lines.append(f"{key}={text}")
        return self.send("\n".join(lines))

    def send(self, raw: str) -> bool:
        """Send one raw message; ``True`` if it was handed to the socket.

        Never raises on transport errors: the first failure of a run of failures
        is logged as a warning.
        """
        address = self._address
        if address is None or not raw:
            return False
        try:
            if self._library is not None:
                sent = bool(self._library.notify(raw))
            else:
                self._sendto(address, raw.encode())
                sent = True
        except OSError as exc:
            self._report_failure(exc)
            return False
        if sent:
            self._failing = False
        return sent

    @staticmethod
    def _sendto(address: str, payload: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto(payload, address)

    def _report_failure(self, exc: OSError) -> None:
        if self._failing:
            return
        self._failing = True
        structlog.get_logger().warning(
            "systemd_notify_failed",
            notify_socket=self._raw_socket,
            error=f"{type(exc).__name__}: {exc}",
        )
