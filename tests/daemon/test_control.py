"""The control-socket server: real Unix sockets, real clients."""

from __future__ import annotations

import contextlib
import functools
import grp
import json
import os
import pwd
import random
import socket
import stat
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from structlog.testing import capture_logs

from daemon.control import (
    CommandError,
    CommandTable,
    ControlServer,
    ControlSocketError,
    PeerCredentials,
)
from daemon.errors import ActorStopped, AskTimeout

NOBODY = 65534
SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture
def sock_path(short_dir: Path) -> Path:
    """Where the test server listens."""
    return short_dir / "t.sock"


async def _ping(args: dict[str, Any]) -> str:
    return "pong"


async def _echo(args: dict[str, Any]) -> dict[str, Any]:
    return args


def make_table() -> CommandTable:
    """A small command table: ping, echo and handlers that fail in each way."""
    table = CommandTable()
    table.register("ping", _ping, "Answer pong.")
    table.register("echo", _echo, "Return the args.")

    async def bad_date(args: dict[str, Any]) -> None:
        raise CommandError("expected YYYY-MM-DD", arg="asof")

    async def bad_value(args: dict[str, Any]) -> None:
        raise ValueError("strategy: no such strategy 'x'")

    async def stopped(args: dict[str, Any]) -> None:
        raise ActorStopped("risk")

    async def ask_timeout(args: dict[str, Any]) -> None:
        raise AskTimeout("risk")

    async def boom(args: dict[str, Any]) -> None:
        raise RuntimeError("password=hunter2 leaked")

    async def not_json(args: dict[str, Any]) -> object:
        return object()

    async def hang(args: dict[str, Any]) -> None:
        await anyio.sleep_forever()

    table.register("bad_date", bad_date, "Raise CommandError.")
    table.register("bad_value", bad_value, "Raise ValueError.")
    table.register("stopped", stopped, "Raise ActorStopped.")
    table.register("ask_timeout", ask_timeout, "Raise AskTimeout.")
    table.register("boom", boom, "Raise RuntimeError.")
    table.register("not_json", not_json, "Return something JSON cannot carry.")
    table.register("hang", hang, "Never answer.", timeout_s=0.05)
    return table


@asynccontextmanager
async def serving(server: ControlServer) -> AsyncIterator[ControlServer]:
    """Run ``server`` in a task group for the block, then cancel it."""
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(server.run))
        yield server
        tg.cancel_scope.cancel()


class Client:
    """A line-at-a-time client over an anyio Unix stream."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send(data)

    async def reply(self) -> dict[str, Any]:
        line = await self.reader.receive_until(b"\n", 1 << 20)
        decoded = json.loads(line)
        assert isinstance(decoded, dict)
        return decoded

    async def request(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.send_raw(json.dumps(request).encode() + b"\n")
        return await self.reply()

    async def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await self.request({"cmd": cmd, "args": args})

    async def assert_closed(self) -> None:
        try:
            data = await self.reader.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return
        pytest.fail(f"expected the server to close, got {data!r}")


@asynccontextmanager
async def connect(path: Path) -> AsyncIterator[Client]:
    """A connected ``Client``."""
    stream = await anyio.connect_unix(path)
    async with stream:
        yield Client(stream)


def error_code(reply: dict[str, Any]) -> str:
    """The error code of a failed reply."""
    assert reply["ok"] is False
    code = reply["error"]["code"]
    assert isinstance(code, str)
    return code


# -- the protocol -------------------------------------------------------------------------


async def test_ping_round_trip(sock_path: Path) -> None:
    """A command's result comes back with ok=true."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        assert await client.call("ping") == {"ok": True, "result": "pong", "id": None}


async def test_several_requests_on_one_connection(sock_path: Path) -> None:
    """One connection carries many requests, answered in order."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        await client.send_raw(
            b'{"cmd":"ping","id":1}\n{"cmd":"echo","args":{"a":1},"id":2}\n{"cmd":"ping","id":3}\n'
        )
        replies = [await client.reply() for _ in range(3)]
    assert [r["id"] for r in replies] == [1, 2, 3]
    assert replies[1]["result"] == {"a": 1}


@pytest.mark.parametrize("request_id", [7, "abc", {"n": [1, 2]}, None])
async def test_id_is_echoed(sock_path: Path, request_id: Any) -> None:
    """The request's id comes back unchanged, on success and on error."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        ok = await client.request({"cmd": "ping", "id": request_id})
        failed = await client.request({"cmd": "nope", "id": request_id})
    assert ok["id"] == request_id
    assert failed["id"] == request_id


async def test_unknown_command_names_it_and_lists_known(sock_path: Path) -> None:
    """An unknown command is named in the error along with the known ones."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        reply = await client.call("positons")
    assert error_code(reply) == "unknown_command"
    message = reply["error"]["message"]
    assert "'positons'" in message
    assert "ping" in message
    assert "help" in message


async def test_help_lists_commands(sock_path: Path) -> None:
    """The built-in help command returns every command with its help line."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        reply = await client.call("help")
    assert reply["result"]["ping"] == "Answer pong."
    assert "help" in reply["result"]


@pytest.mark.parametrize(
    "line",
    [
        b'{"cmd": "ping"\n',
        b"not json\n",
        b"\n",
        b'{"cmd": "ping", "id": NaN}\n',
        b"[" * 100_000 + b"\n",
    ],
    ids=["truncated", "text", "empty", "nan", "deep"],
)
async def test_malformed_json_is_bad_json(sock_path: Path, line: bytes) -> None:
    """Malformed JSON gets bad_json and the connection stays usable."""
    server = ControlServer(sock_path, make_table(), max_request_bytes=200_000)
    async with serving(server), connect(sock_path) as client:
        await client.send_raw(line)
        assert error_code(await client.reply()) == "bad_json"
        assert (await client.call("ping"))["ok"] is True


async def test_invalid_utf8_is_bad_json(sock_path: Path) -> None:
    """Bytes that are not UTF-8 get bad_json."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        await client.send_raw(b'{"cmd": "\xff\xfe"}\n')
        assert error_code(await client.reply()) == "bad_json"


@pytest.mark.parametrize("line", [b"[1, 2]\n", b"42\n", b'"ping"\n', b"null\n"])
async def test_not_an_object_is_bad_json(sock_path: Path, line: bytes) -> None:
    """Valid JSON that is not an object gets bad_json."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        await client.send_raw(line)
        assert error_code(await client.reply()) == "bad_json"


@pytest.mark.parametrize(
    "request_",
    [{}, {"cmd": 1}, {"cmd": None}, {"cmd": "ping", "args": [1]}, {"cmd": "ping", "args": "x"}],
)
async def test_bad_request_shape(sock_path: Path, request_: dict[str, Any]) -> None:
    """A missing or non-string cmd, or args that are not an object, get bad_request."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        assert error_code(await client.request(request_)) == "bad_request"


async def test_random_bytes_each_get_one_error_reply(sock_path: Path) -> None:
    """Random garbage lines each get exactly one error reply and never kill the server."""
    rng = random.Random(1234)
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        for _ in range(50):
            garbage = rng.randbytes(rng.randint(1, 300)).replace(b"\n", b"x")
            await client.send_raw(garbage + b"\n")
            assert error_code(await client.reply()) in {"bad_json", "bad_request"}
        assert (await client.call("ping"))["result"] == "pong"


# -- limits -------------------------------------------------------------------------------


async def test_oversize_line_is_too_large_and_closed(sock_path: Path) -> None:
    """A line over the limit gets too_large, the connection closes, new clients are served."""
    server = ControlServer(sock_path, make_table(), max_request_bytes=1024)
    async with serving(server):
        async with connect(sock_path) as client:
            await client.send_raw(b"x" * 5000 + b"\n")
            assert error_code(await client.reply()) == "too_large"
            await client.assert_closed()
        async with connect(sock_path) as client:
            assert (await client.call("ping"))["result"] == "pong"
    assert server.stats.requests[("unknown", "too_large")] == 1


async def test_line_just_at_the_limit_is_accepted(sock_path: Path) -> None:
    """A request of exactly max_request_bytes is served."""
    request = json.dumps({"cmd": "echo", "args": {"pad": ""}}).encode()
    limit = 256
    padded = request.replace(b'""', b'"' + b"p" * (limit - len(request)) + b'"')
    assert len(padded) == limit
    server = ControlServer(sock_path, make_table(), max_request_bytes=limit)
    async with serving(server), connect(sock_path) as client:
        await client.send_raw(padded + b"\n")
        assert (await client.reply())["ok"] is True


def _blast(sock: socket.socket, size: int) -> str:
    try:
        sock.sendall(b"x" * size)
    except (BrokenPipeError, ConnectionResetError):
        return "cut off"
    return "all sent"


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


async def test_ten_megabyte_line_is_not_buffered(sock_path: Path) -> None:
    """The server stops reading a huge line early: the sender is cut off, not drained."""
    server = ControlServer(sock_path, make_table(), max_request_bytes=1024)
    async with serving(server):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect(os.fspath(sock_path))
            outcome = await anyio.to_thread.run_sync(_blast, sock, 10_000_000)
            line = await anyio.to_thread.run_sync(_read_line, sock)
        assert outcome == "cut off"
        assert json.loads(line)["error"]["code"] == "too_large"


async def test_idle_connection_is_closed(sock_path: Path) -> None:
    """A client that sends nothing is disconnected after idle_timeout_s."""
    server = ControlServer(sock_path, make_table(), idle_timeout_s=0.05)
    async with serving(server), connect(sock_path) as client:
        await client.assert_closed()


async def test_trickling_partial_line_is_closed(sock_path: Path) -> None:
    """A client that never completes its line is disconnected after idle_timeout_s."""
    server = ControlServer(sock_path, make_table(), idle_timeout_s=0.05)
    async with serving(server), connect(sock_path) as client:
        await client.send_raw(b'{"cmd": "pi')
        await client.assert_closed()


async def test_hundred_concurrent_clients_each_get_their_reply(sock_path: Path) -> None:
    """100 clients at once each get the reply to their own request."""
    replies: dict[int, Any] = {}

    async def one(n: int) -> None:
        async with connect(sock_path) as client:
            reply = await client.request({"cmd": "echo", "args": {"n": n}, "id": n})
            replies[n] = (reply["id"], reply["result"]["n"])

    async with (
        serving(ControlServer(sock_path, make_table(), max_clients=128)),
        anyio.create_task_group() as tg,
    ):
        for n in range(100):
            tg.start_soon(one, n)
    assert replies == {n: (n, n) for n in range(100)}


async def test_extra_clients_over_max_get_unavailable(sock_path: Path) -> None:
    """A connection beyond max_clients gets unavailable and is closed; a freed slot is reused."""
    server = ControlServer(sock_path, make_table(), max_clients=2)
    async with serving(server), connect(sock_path) as first, connect(sock_path) as second:
        assert (await first.call("ping"))["ok"] is True
        assert (await second.call("ping"))["ok"] is True
        async with connect(sock_path) as third:
            assert error_code(await third.reply()) == "unavailable"
            await third.assert_closed()
        await first.stream.send_eof()
        await first.assert_closed()
        async with connect(sock_path) as fourth:
            assert (await fourth.call("ping"))["ok"] is True
    assert server.stats.connections_refused["max_clients"] == 1


async def test_half_open_client_leaves_nothing_behind(sock_path: Path) -> None:
    """A client that shuts down writing is answered, then its connection is closed."""
    server = ControlServer(sock_path, make_table())
    async with serving(server), connect(sock_path) as client:
        await client.send_raw(b'{"cmd": "ping"}\n')
        await client.stream.send_eof()
        assert (await client.reply())["result"] == "pong"
        await client.assert_closed()
        assert server.stats.connections_active == 0


async def test_hanging_handler_times_out_as_unavailable(sock_path: Path) -> None:
    """A handler that never returns gets unavailable after its timeout."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        reply = await client.call("hang")
        assert error_code(reply) == "unavailable"
        assert "hang" in reply["error"]["message"]
        assert (await client.call("ping"))["ok"] is True


async def test_other_clients_are_served_while_a_handler_is_stuck(sock_path: Path) -> None:
    """One slow handler does not stop other clients from being answered."""
    entered = anyio.Event()
    release = anyio.Event()

    async def slow(args: dict[str, Any]) -> str:
        entered.set()
        await release.wait()
        return "done"

    table = make_table()
    table.register("slow", slow, "Wait for the test.")
    async with serving(ControlServer(sock_path, table)), connect(sock_path) as stuck:
        await stuck.send_raw(b'{"cmd": "slow"}\n')
        await entered.wait()
        async with connect(sock_path) as other:
            assert (await other.call("ping"))["result"] == "pong"
        release.set()
        assert (await stuck.reply())["result"] == "done"


# -- handler errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        ("bad_date", "bad_args"),
        ("bad_value", "bad_args"),
        ("stopped", "unavailable"),
        ("ask_timeout", "unavailable"),
        ("boom", "internal"),
        ("not_json", "internal"),
    ],
)
async def test_handler_errors_map_to_codes(sock_path: Path, cmd: str, code: str) -> None:
    """Each kind of handler failure maps to its error code."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        assert error_code(await client.call(cmd)) == code


async def test_command_error_message_names_the_arg(sock_path: Path) -> None:
    """CommandError's message, naming the argument, reaches the client."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        reply = await client.call("bad_date")
    assert reply["error"]["message"] == "asof: expected YYYY-MM-DD"


async def test_internal_error_is_logged_but_not_leaked(sock_path: Path) -> None:
    """An unexpected exception is logged with its traceback; the client sees a generic message."""
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        with capture_logs() as logs:
            reply = await client.call("boom")
    text = json.dumps(reply)
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    failures = [e for e in logs if e["event"] == "control_command_failed"]
    assert failures
    assert failures[0]["cmd"] == "boom"
    assert failures[0]["exc_info"] is True


async def test_on_request_hook_gets_bounded_labels(sock_path: Path) -> None:
    """The hook sees known command names or "unknown", with the outcome."""
    seen: list[tuple[str, str]] = []

    def hook(cmd: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        seen.append((cmd, outcome))

    server = ControlServer(sock_path, make_table(), on_request=hook)
    async with serving(server), connect(sock_path) as client:
        await client.call("ping")
        await client.call("a-random-name-12345")
        await client.send_raw(b"garbage\n")
        await client.reply()
        await client.call("stopped")
    assert seen == [
        ("ping", "ok"),
        ("unknown", "unknown_command"),
        ("unknown", "bad_json"),
        ("stopped", "unavailable"),
    ]
    assert server.stats.requests[("ping", "ok")] == 1
    assert server.stats.connections_total == 1


# -- the socket file ----------------------------------------------------------------------


async def test_socket_mode_is_0600(sock_path: Path) -> None:
    """Without a group the socket file is 0600."""
    async with serving(ControlServer(sock_path, make_table())):
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)


async def test_socket_mode_is_0660_with_group(sock_path: Path) -> None:
    """With mode_group the socket file is 0660 and owned by that group."""
    group = grp.getgrgid(os.getgid())
    async with serving(ControlServer(sock_path, make_table(), mode_group=group.gr_name)):
        st = os.stat(sock_path)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == group.gr_gid


async def test_unknown_group_is_a_clear_error(sock_path: Path) -> None:
    """A group that does not exist is refused before binding."""
    server = ControlServer(sock_path, make_table(), mode_group="no-such-group-xyzzy")
    with pytest.raises(ControlSocketError, match="no-such-group-xyzzy"):
        await server.run()
    assert not sock_path.exists()


async def test_missing_parent_dir_is_created_0700(short_dir: Path) -> None:
    """A missing parent directory is created private to us."""
    path = short_dir / "run" / "t.sock"
    async with serving(ControlServer(path, make_table())), connect(path) as client:
        assert (await client.call("ping"))["ok"] is True
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


async def test_stale_socket_file_is_replaced(sock_path: Path) -> None:
    """A socket file nobody listens on is removed and replaced."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(os.fspath(sock_path))
    assert sock_path.exists()
    async with serving(ControlServer(sock_path, make_table())), connect(sock_path) as client:
        assert (await client.call("ping"))["ok"] is True


async def test_live_socket_refuses_a_second_server(sock_path: Path) -> None:
    """A second server on a live socket fails clearly and leaves the first one alone."""
    async with serving(ControlServer(sock_path, make_table())):
        before = os.stat(sock_path).st_ino
        with pytest.raises(ControlSocketError, match="another daemon is listening on"):
            await ControlServer(sock_path, make_table()).run()
        assert os.stat(sock_path).st_ino == before
        async with connect(sock_path) as client:
            assert (await client.call("ping"))["ok"] is True


async def test_regular_file_is_not_replaced(sock_path: Path) -> None:
    """A regular file at the socket path is left alone and reported."""
    sock_path.write_text("precious")
    with pytest.raises(ControlSocketError, match="not a socket"):
        await ControlServer(sock_path, make_table()).run()
    assert sock_path.read_text() == "precious"


async def test_too_long_path_is_a_clear_error(short_dir: Path) -> None:
    """A path longer than AF_UNIX allows is reported, not mangled."""
    path = short_dir / ("x" * 120)
    with pytest.raises(ControlSocketError, match="longer than"):
        await ControlServer(path, make_table()).run()


async def test_cancellation_removes_the_socket_file(sock_path: Path) -> None:
    """Cancelling the server removes its socket file."""
    async with serving(ControlServer(sock_path, make_table())):
        assert sock_path.exists()
    assert not sock_path.exists()


async def test_cancellation_leaves_a_successors_socket(sock_path: Path) -> None:
    """On exit the server does not remove a socket file that is no longer its own."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as successor:
        async with serving(ControlServer(sock_path, make_table())):
            sock_path.unlink()
            successor.bind(os.fspath(sock_path))
        assert sock_path.exists()


# -- who may connect ----------------------------------------------------------------------


def _foreign(uid: int, gid: int) -> PeerCredentials:
    return PeerCredentials(pid=4242, uid=uid, gid=gid)


async def test_foreign_peer_is_forbidden(sock_path: Path) -> None:
    """A peer with another uid gets forbidden, is closed, and a warning is logged."""
    uid = os.geteuid() + 1000
    server = ControlServer(
        sock_path, make_table(), peer_credentials=lambda _sock: _foreign(uid, uid)
    )
    with capture_logs() as logs:
        async with serving(server), connect(sock_path) as client:
            await client.send_raw(b'{"cmd": "ping"}\n')
            assert error_code(await client.reply()) == "forbidden"
            await client.assert_closed()
    warnings = [e for e in logs if e["event"] == "control_peer_forbidden"]
    assert warnings[0]["uid"] == uid
    assert warnings[0]["log_level"] == "warning"
    assert server.stats.connections_refused["forbidden"] == 1


async def test_peer_in_the_group_is_allowed(sock_path: Path) -> None:
    """A foreign uid whose gid is the socket's group may use the socket."""
    group = grp.getgrgid(os.getgid())
    uid = os.geteuid() + 1000
    server = ControlServer(
        sock_path,
        make_table(),
        mode_group=group.gr_name,
        peer_credentials=lambda _sock: _foreign(uid, group.gr_gid),
    )
    async with serving(server), connect(sock_path) as client:
        assert (await client.call("ping"))["result"] == "pong"


def _supplementary_member() -> tuple[grp.struct_group, pwd.struct_passwd] | None:
    """A group and a user who belongs to it only as a supplementary member, if any exist."""
    for group in grp.getgrall():
        for name in group.gr_mem:
            with contextlib.suppress(KeyError):
                user = pwd.getpwnam(name)
                if user.pw_gid != group.gr_gid and user.pw_uid not in (0, os.geteuid()):
                    return group, user
    return None


async def test_supplementary_group_member_is_allowed(sock_path: Path) -> None:
    """A foreign uid whose supplementary groups include the socket's group may connect."""
    found = _supplementary_member()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs a user with a supplementary group (as Debian's base image has)")
        pytest.skip("no user with a supplementary group on this machine")
    group, user = found
    server = ControlServer(
        sock_path,
        make_table(),
        mode_group=group.gr_name,
        peer_credentials=lambda _sock: _foreign(user.pw_uid, user.pw_gid),
    )
    async with serving(server), connect(sock_path) as client:
        assert (await client.call("ping"))["result"] == "pong"


async def test_foreign_peer_outside_the_group_is_forbidden(sock_path: Path) -> None:
    """With a group configured, a foreign uid outside it is still forbidden."""
    group = grp.getgrgid(os.getgid())
    server = ControlServer(
        sock_path,
        make_table(),
        mode_group=group.gr_name,
        peer_credentials=lambda _sock: _foreign(NOBODY, NOBODY),
    )
    async with serving(server), connect(sock_path) as client:
        assert error_code(await client.reply()) == "forbidden"


async def test_root_peer_is_allowed(sock_path: Path) -> None:
    """Root may use the socket whoever runs the daemon."""
    server = ControlServer(sock_path, make_table(), peer_credentials=lambda _sock: _foreign(0, 0))
    async with serving(server), connect(sock_path) as client:
        assert (await client.call("ping"))["result"] == "pong"


_CHILD = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES")
    sys.exit(0)
data = b""
while not data.endswith(b"\\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"""


def _run_as_nobody(path: Path) -> str:
    done = subprocess.run(
        [os.fspath(SYSTEM_PYTHON), "-I", "-c", _CHILD, os.fspath(path)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
    )
    return done.stdout.strip()


async def test_real_foreign_user_is_refused(short_dir: Path, sock_path: Path) -> None:
    """A real process running as nobody is refused: by file mode, then by SO_PEERCRED."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root so this test can setuid to nobody")
        pytest.skip("needs root to run a child as nobody (outside CI)")
    if not SYSTEM_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SYSTEM_PYTHON} is needed to run a child as nobody")
        pytest.skip(f"{SYSTEM_PYTHON} (readable by nobody) is missing")
    short_dir.chmod(0o711)
    with capture_logs() as logs:
        async with serving(ControlServer(sock_path, make_table())):
            assert await anyio.to_thread.run_sync(_run_as_nobody, sock_path) == "EACCES"
            sock_path.chmod(0o666)
            reply = json.loads(await anyio.to_thread.run_sync(_run_as_nobody, sock_path))
    assert reply["error"]["code"] == "forbidden"
    assert any(e["event"] == "control_peer_forbidden" and e["uid"] == NOBODY for e in logs)


# -- the command table --------------------------------------------------------------------


def test_register_rejects_duplicates_and_bad_names() -> None:
    """A name can be registered once, must have no whitespace, and needs one help line."""
    table = CommandTable()
    table.register("ping", _ping, "Answer pong.")
    with pytest.raises(ValueError, match="already registered"):
        table.register("ping", _ping, "Again.")
    with pytest.raises(ValueError, match="whitespace"):
        table.register("two words", _ping, "Bad name.")
    with pytest.raises(ValueError, match="one line"):
        table.register("multi", _ping, "line one\nline two")
    assert table.names() == ["help", "ping"]
    assert "ping" in table


def test_command_error_prefixes_the_arg() -> None:
    """CommandError(message, arg=...) reads 'arg: message'."""
    assert str(CommandError("must be positive", arg="limit")) == "limit: must be positive"
    assert str(CommandError("strategy 'x' is unknown")) == "strategy 'x' is unknown"
