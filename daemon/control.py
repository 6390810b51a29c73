"""The control socket: a Unix stream socket speaking JSON lines.

One request per line in, one reply per line out, as many as the client likes on
one connection::

    -> {"cmd": "status", "args": {}, "id": 7}
    <- {"ok": true, "result": {...}, "id": 7}
    <- {"ok": false, "error": {"code": "unknown_command", "message": "..."}, "id": 7}

Error codes (``ErrorCode``): ``bad_json``, ``bad_request``, ``unknown_command``,
``bad_args``, ``too_large``, ``unavailable``, ``internal`` and, for a peer that
may not talk to us at all, ``forbidden``.

Who may connect is decided twice: the socket file is 0600 (0660 and owned by
``mode_group`` when one is given), and every accepted peer is checked with
``SO_PEERCRED`` (our own uid, root, or a member of ``mode_group``) because root
ignores file modes. Everything is bounded: line length, idle time, concurrent
clients, and the time each handler may take, so a stuck actor cannot wedge the
socket.

Handlers only *ask* the owning actor; nothing here touches another actor's state.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import grp
import json
import os
import pwd
import socket
import stat
import struct
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import anyio
import anyio.abc
import structlog
from anyio.streams.buffered import BufferedByteReceiveStream

from daemon.errors import ActorStopped, AskTimeout, FatalError

log = structlog.get_logger()

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
"""A command handler: takes the request's ``args`` and returns a JSON-able result."""

RequestHook = Callable[[str, str, float], None]
"""``on_request(cmd, outcome, seconds)``: ``cmd`` is a known command name or ``"unknown"``."""

DEFAULT_COMMAND_TIMEOUT_S: Final = 30.0
UNKNOWN_COMMAND_LABEL: Final = "unknown"
OUTCOME_OK: Final = "ok"

# Longest AF_UNIX path Linux accepts (sun_path is 108 bytes with the NUL).
_MAX_UNIX_PATH_BYTES: Final = 107
_LISTEN_BACKLOG: Final = 128
# accept() failures that mean "out of resources right now", not "the listener is broken".
_TRANSIENT_ACCEPT_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}
)
_ACCEPT_BACKOFF_S: Final = 0.1
# A refusal is one short line; a client that will not take it is not waited for.
_REFUSAL_SEND_TIMEOUT_S: Final = 1.0
_ECHOED_NAME_MAX_CHARS: Final = 64
_PEERCRED_FORMAT: Final = "3i"


class ErrorCode(enum.StrEnum):
    """The ``error.code`` values a reply can carry; also the request outcomes besides ``ok``."""

    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGS = "bad_args"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    FORBIDDEN = "forbidden"


class CommandError(Exception):
    """Raised by a handler when an argument is wrong; the client gets ``bad_args``.

    The message must name the argument: ``CommandError("expected YYYY-MM-DD", arg="asof")``
    reads ``asof: expected YYYY-MM-DD``.
    """

    def __init__(self, message: str, *, arg: str | None = None) -> None:
        super().__init__(f"{arg}: {message}" if arg else message)
        self.arg = arg


class ControlSocketError(FatalError):
    """The control socket cannot be set up (path in use, bad group, path too long)."""


@dataclass(frozen=True, slots=True)
class Command:
    """One entry of a ``CommandTable``."""

    name: str
    handler: Handler
    help: str
    timeout_s: float


class CommandTable:
    """The commands the control socket answers: ``name -> handler`` with one line of help.

    A built-in ``help`` command returns ``{name: help}`` for every command.
    """

    def __init__(self, *, default_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S) -> None:
        if default_timeout_s <= 0:
            raise ValueError("default_timeout_s must be positive")
        self.default_timeout_s = default_timeout_s
        self._commands: dict[str, Command] = {}
        self.register("help", self._help, "List the commands, one line of help each.")

    def register(
        self, name: str, handler: Handler, help: str, *, timeout_s: float | None = None
    ) -> None:
        """Add a command; ``timeout_s`` bounds each call (default: the table's default)."""
        if not name or name != name.strip() or any(ch.isspace() for ch in name):
            raise ValueError(f"command name {name!r} must be non-empty without whitespace")
        if name in self._commands:
            raise ValueError(f"command {name!r} is already registered")
        if not help.strip() or "\n" in help:
            raise ValueError(f"command {name!r} needs exactly one line of help")
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        if timeout <= 0:
            raise ValueError(f"command {name!r}: timeout_s must be positive")
        self._commands[name] = Command(name, handler, help.strip(), timeout)

    def get(self, name: str) -> Command | None:
        """The command called ``name``, or ``None``."""
        return self._commands.get(name)

    def names(self) -> list[str]:
        """Every command name, sorted."""
        return sorted(self._commands)

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def __iter__(self) -> Iterator[Command]:
        return iter([self._commands[name] for name in self.names()])

    def __len__(self) -> int:
        return len(self._commands)

    async def _help(self, args: dict[str, Any]) -> dict[str, str]:
        return {command.name: command.help for command in self}


class PeerCredentials(NamedTuple):
    """What ``SO_PEERCRED`` says about the process at the other end of a connection."""

    pid: int
    uid: int
    gid: int


def read_peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The connected peer's pid, uid and gid, from ``SO_PEERCRED`` (Linux)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize(_PEERCRED_FORMAT))
    pid, uid, gid = struct.unpack(_PEERCRED_FORMAT, raw)
    return PeerCredentials(pid, uid, gid)


def _user_in_group(uid: int, primary_gid: int, gid: int) -> bool:
    """Whether the user ``uid`` has ``gid`` among its groups (unknown users have none)."""
    try:
        name = pwd.getpwuid(uid).pw_name
        return gid in os.getgrouplist(name, primary_gid)
    except (KeyError, OSError):
        return False


@dataclass(slots=True)
class ControlStats:
    """Counters for the metrics exporter; labels are bounded (known command names only)."""

    connections_total: int = 0
    connections_active: int = 0
    # reason ("forbidden", "max_clients") -> count
    connections_refused: Counter[str] = field(default_factory=Counter)
    # (command name or "unknown", outcome: "ok" or an ErrorCode) -> count
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)


class _RequestFailed(Exception):
    """A request ends in an error reply (internal to this module)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _LineTooLong(Exception):
    """A request line is longer than ``max_request_bytes``."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def _error_reply(code: ErrorCode, message: str, request_id: Any = None) -> bytes:
    return _encode(
        {"ok": False, "error": {"code": code.value, "message": message}, "id": request_id}
    )


def _short(name: str) -> str:
    if len(name) <= _ECHOED_NAME_MAX_CHARS:
        return repr(name)
    return repr(name[:_ECHOED_NAME_MAX_CHARS]) + "..."


def _decode_request(line: bytes) -> dict[str, Any]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _RequestFailed(ErrorCode.BAD_JSON, "request is not valid UTF-8") from None
    try:
        request = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError, NaN/Infinity and over-long integers.
        raise _RequestFailed(ErrorCode.BAD_JSON, "request is not valid JSON") from None
    if not isinstance(request, dict):
        raise _RequestFailed(ErrorCode.BAD_JSON, "request must be a JSON object")
    return request


def _validate_request(request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = request.get("cmd")
    if not isinstance(name, str):
        raise _RequestFailed(ErrorCode.BAD_REQUEST, "request needs a string 'cmd'")
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise _RequestFailed(ErrorCode.BAD_REQUEST, "'args' must be a JSON object")
    return name, args


class ControlServer:
    """Serves a ``CommandTable`` on a Unix socket until cancelled."""

    def __init__(
        self,
        path: Path,
        commands: CommandTable,
        *,
        mode_group: str | None = None,
        max_request_bytes: int = 65536,
        idle_timeout_s: float = 60,
        max_clients: int = 64,
        peer_credentials: Callable[[socket.socket], PeerCredentials] = read_peer_credentials,
        on_request: RequestHook | None = None,
    ) -> None:
        if max_request_bytes <= 0 or idle_timeout_s <= 0 or max_clients <= 0:
            raise ValueError("max_request_bytes, idle_timeout_s and max_clients must be positive")
        self.path = Path(path)
        self.commands = commands
        self.mode_group = mode_group
        self.max_request_bytes = max_request_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_clients = max_clients
        self.peer_credentials = peer_credentials
        self.on_request = on_request
        self.stats = ControlStats()
        self._group_gid: int | None = None
        self._euid = os.geteuid()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report readiness, serve until cancelled, then remove the socket file."""
        self._group_gid = self._resolve_group()
        self._euid = os.geteuid()
        sock = self._bind()
        try:
            identity = os.stat(self.path)
        except BaseException:
            sock.close()
            raise
        try:
            listener = await anyio.abc.SocketListener.from_socket(sock)
        except BaseException:
            sock.close()
            self._remove_socket_file(identity)
            raise
        try:
            async with listener, anyio.create_task_group() as tg:
                log.info("control_listening", path=str(self.path))
                task_status.started()
                await self._accept_loop(listener, tg)
        finally:
            self._remove_socket_file(identity)

    # -- setting up and tearing down the socket file ------------------------------------

    def _resolve_group(self) -> int | None:
        if self.mode_group is None:
            return None
        try:
            return grp.getgrnam(self.mode_group).gr_gid
        except KeyError:
            raise ControlSocketError(
                f"control socket group {self.mode_group!r} does not exist"
            ) from None

    def _bind(self) -> socket.socket:
        if len(os.fsencode(self.path)) > _MAX_UNIX_PATH_BYTES:
            raise ControlSocketError(
                f"control socket path {self.path} is longer than {_MAX_UNIX_PATH_BYTES} bytes"
            )
        self._ensure_parent_dir()
        self._remove_stale_socket()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(os.fspath(self.path))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ControlSocketError(
                        f"another daemon is listening on {self.path}"
                    ) from None
                raise ControlSocketError(f"cannot bind {self.path}: {exc.strerror}") from exc
            # Mode and group are set before listen(): until then every connect is
            # refused, so there is no moment at which the wrong people could get in.
            if self._group_gid is None:
                os.chmod(self.path, 0o600)
            else:
                os.chown(self.path, -1, self._group_gid)
                os.chmod(self.path, 0o660)
            sock.listen(_LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        return sock

    def _ensure_parent_dir(self) -> None:
        parent = self.path.parent
        if parent.exists():
            return
        parent.mkdir(parents=True, exist_ok=True)
        if self._group_gid is None:
            os.chmod(parent, 0o700)
        else:
            # Group members must be able to reach the socket inside it; S103 flags
            # any group bit, but 0750 to our own group is the point of mode_group.
            os.chown(parent, -1, self._group_gid)
            os.chmod(parent, 0o750)  # noqa: S103

    def _remove_stale_socket(self) -> None:
        """Unlink a socket file nobody listens on; refuse to touch a live one or a non-socket."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(f"{self.path} exists and is not a socket; not replacing it")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.setblocking(False)
            result = probe.connect_ex(os.fspath(self.path))
        # EAGAIN: a listener whose backlog is full -- still alive.
        if result in (0, errno.EAGAIN, errno.EINPROGRESS):
            raise ControlSocketError(f"another daemon is listening on {self.path}")
        if result == errno.ENOENT:
            return
        if result != errno.ECONNREFUSED:
            raise ControlSocketError(f"cannot probe {self.path}: {os.strerror(result)}")
        self.path.unlink(missing_ok=True)
        log.info("control_stale_socket_removed", path=str(self.path))

    def _remove_socket_file(self, identity: os.stat_result) -> None:
        """Remove our socket file, unless another process has since put its own there."""
        try:
            current = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (current.st_dev, current.st_ino) != (identity.st_dev, identity.st_ino):
            return
        self.path.unlink(missing_ok=True)
        log.info("control_socket_removed", path=str(self.path))

    # -- connections ---------------------------------------------------------------------

    async def _accept_loop(
        self, listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except anyio.BrokenResourceError as exc:
                cause = exc.__cause__
                if isinstance(cause, OSError) and cause.errno in _TRANSIENT_ACCEPT_ERRNOS:
                    log.warning("control_accept_failed", error=os.strerror(cause.errno or 0))
                    await anyio.sleep(_ACCEPT_BACKOFF_S)
                    continue
                raise
            self.stats.connections_total += 1
            if self.stats.connections_active >= self.max_clients:
                self.stats.connections_refused["max_clients"] += 1
                log.warning("control_too_many_clients", max_clients=self.max_clients)
                tg.start_soon(
                    self._refuse,
                    stream,
                    ErrorCode.UNAVAILABLE,
                    f"too many control connections (at most {self.max_clients})",
                )
                continue
            self.stats.connections_active += 1
            tg.start_soon(self._serve_connection, stream)

    async def _refuse(self, stream: anyio.abc.SocketStream, code: ErrorCode, message: str) -> None:
        async with stream:
            await self._send_refusal(stream, code, message)

    async def _send_refusal(
        self, stream: anyio.abc.SocketStream, code: ErrorCode, message: str
    ) -> None:
        with (
            anyio.move_on_after(_REFUSAL_SEND_TIMEOUT_S),
            contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError),
        ):
            await stream.send(_error_reply(code, message))

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                if not await self._peer_allowed(stream):
                    self.stats.connections_refused["forbidden"] += 1
                    await self._send_refusal(
                        stream, ErrorCode.FORBIDDEN, "not allowed to control tradingd"
                    )
                    return
                reader = BufferedByteReceiveStream(stream)
                while True:
                    try:
                        line = await self._read_line(reader)
                    except _LineTooLong:
                        reply, close = self._too_large(), True
                    else:
                        if line is None:
                            return
                        reply, close = await self._process(line), False
                    with anyio.move_on_after(self.idle_timeout_s) as send_scope:
                        await stream.send(reply)
                    if close or send_scope.cancelled_caught:
                        return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                log.debug("control_client_gone")
            except Exception:
                # One broken connection must not take the whole control socket down.
                log.exception("control_connection_failed")
            finally:
                # Before the stream closes, so a client that sees EOF sees the count too.
                self.stats.connections_active -= 1

    async def _peer_allowed(self, stream: anyio.abc.SocketStream) -> bool:
        # S610 mistakes anyio's typed-attribute lookup for Django's QuerySet.extra.
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610
        try:
            peer = self.peer_credentials(raw)
        except OSError as exc:
            log.warning("control_peer_unknown", error=exc.strerror)
            return False
        if peer.uid in (self._euid, 0):
            return True
        gid = self._group_gid
        if gid is not None and (
            peer.gid == gid
            # getgrouplist may ask NSS (LDAP, ...): keep it off the event loop.
            or await anyio.to_thread.run_sync(_user_in_group, peer.uid, peer.gid, gid)
        ):
            return True
        log.warning("control_peer_forbidden", uid=peer.uid, gid=peer.gid, pid=peer.pid)
        return False

    async def _read_line(self, reader: BufferedByteReceiveStream) -> bytes | None:
        """The next request line; ``None`` when the client left or stayed idle too long.

        Raises ``_LineTooLong`` having buffered at most ``max_request_bytes`` plus one
        read's worth, however long the line the client is sending.
        """
        with anyio.move_on_after(self.idle_timeout_s) as scope:
            try:
                line = await reader.receive_until(b"\n", self.max_request_bytes + 1)
            except anyio.IncompleteRead:
                return None
            except anyio.DelimiterNotFound:
                raise _LineTooLong from None
        if scope.cancelled_caught:
            log.info("control_idle_timeout", idle_timeout_s=self.idle_timeout_s)
            return None
        # One read may bring a newline from beyond the limit.
        if len(line) > self.max_request_bytes:
            raise _LineTooLong
        return line

    def _too_large(self) -> bytes:
        self._record(UNKNOWN_COMMAND_LABEL, ErrorCode.TOO_LARGE.value, 0.0)
        return _error_reply(
            ErrorCode.TOO_LARGE, f"request longer than {self.max_request_bytes} bytes"
        )

    async def _process(self, line: bytes) -> bytes:
        """The reply to one request line."""
        started = anyio.current_time()
        label = UNKNOWN_COMMAND_LABEL
        request_id: Any = None
        try:
            request = _decode_request(line)
            request_id = request.get("id")
            name, args = _validate_request(request)
            command = self.commands.get(name)
            if command is None:
                raise _RequestFailed(
                    ErrorCode.UNKNOWN_COMMAND,
                    f"unknown command {_short(name)}; known commands: "
                    + ", ".join(self.commands.names()),
                )
            label = command.name
            result = await self._call(command, args)
            try:
                reply = _encode({"ok": True, "result": result, "id": request_id})
            except (TypeError, ValueError):
                log.exception("control_result_not_json", cmd=command.name)
                raise _RequestFailed(
                    ErrorCode.INTERNAL, "internal error; see the daemon log"
                ) from None
            outcome = OUTCOME_OK
        except _RequestFailed as failure:
            reply = _error_reply(failure.code, failure.message, request_id)
            outcome = failure.code.value
        self._record(label, outcome, anyio.current_time() - started)
        return reply

    async def _call(self, command: Command, args: dict[str, Any]) -> Any:
        with anyio.move_on_after(command.timeout_s):
            try:
                return await command.handler(args)
            except CommandError as exc:
                raise _RequestFailed(ErrorCode.BAD_ARGS, str(exc)) from None
            except ActorStopped:
                raise _RequestFailed(
                    ErrorCode.UNAVAILABLE,
                    f"{command.name}: the actor that answers it is not running",
                ) from None
            except (AskTimeout, TimeoutError):
                raise _RequestFailed(
                    ErrorCode.UNAVAILABLE, f"{command.name}: the actor did not answer in time"
                ) from None
            except ValueError as exc:
                raise _RequestFailed(ErrorCode.BAD_ARGS, str(exc)) from None
            except Exception:
                log.exception("control_command_failed", cmd=command.name)
                raise _RequestFailed(
                    ErrorCode.INTERNAL, "internal error; see the daemon log"
                ) from None
        log.warning("control_command_timeout", cmd=command.name, timeout_s=command.timeout_s)
        raise _RequestFailed(
            ErrorCode.UNAVAILABLE, f"{command.name}: no answer within {command.timeout_s:g}s"
        )

    def _record(self, label: str, outcome: str, seconds: float) -> None:
        self.stats.requests[(label, outcome)] += 1
        if self.on_request is None:
            return
        try:
            self.on_request(label, outcome, seconds)
        except Exception:
            log.exception("control_on_request_hook_failed")
