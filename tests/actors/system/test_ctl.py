"""tradectl against a real ControlServer running in the test's event loop."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from structlog.testing import capture_logs

from actors.system.ctl import (
    EXIT_DAEMON_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_USAGE,
    LOCAL_SOCKET,
    MAX_REPLY_BYTES,
    default_socket_path,
    for_people,
    main,
    render,
)
from daemon.control import CommandError, CommandTable, ControlServer

STATUS = {
    "state": "running",
    "equity": 100234.5,
    "kill_switch": {"tripped": False, "reason": None},
    "actors": [
        {"name": "risk", "state": "running", "restarts": 0},
        {"name": "data_feed", "state": "stopped", "restarts": 12},
    ],
    "strategies": ["trend", "mean_reversion"],
}

POSITIONS = [
    {"symbol": "AAPL", "qty": 10, "strategy": "trend"},
    {"symbol": "MSFT", "qty": 250, "strategy": "mean_reversion"},
]

ECHOED = [
    "run-cycle",
    "halt",
    "resume",
    "pause-entries",
    "resume-entries",
    "disable",
    "enable",
    "reload",
    "why-no-trade",
]


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    """Keep the server's structlog lines out of the stdout tradectl writes to."""
    with capture_logs():
        yield


@pytest.fixture
def sock_path() -> Iterator[Path]:
    """A socket path short enough for AF_UNIX (tmp_path can exceed 107 bytes)."""
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="ctl-"))
    yield directory / "t.sock"
    shutil.rmtree(directory, ignore_errors=True)


def fake_table() -> CommandTable:
    """Commands standing in for the ones the lead wires to actors."""
    table = CommandTable()

    async def ping(args: dict[str, Any]) -> str:
        return "pong"

    async def status(args: dict[str, Any]) -> dict[str, Any]:
        return STATUS

    async def positions(args: dict[str, Any]) -> list[dict[str, Any]]:
        return POSITIONS

    async def echo(args: dict[str, Any]) -> dict[str, Any]:
        return args

    async def fail(args: dict[str, Any]) -> None:
        raise CommandError("expected YYYY-MM-DD", arg="asof")

    async def nothing(args: dict[str, Any]) -> None:
        return None

    async def hang(args: dict[str, Any]) -> None:
        await anyio.sleep_forever()

    table.register("ping", ping, "Answer pong.")
    table.register("status", status, "The daemon's state.")
    table.register("positions", positions, "Open positions.")
    table.register("fail", fail, "Fail with bad_args.")
    table.register("nothing", nothing, "Return null.")
    table.register("hang", hang, "Never answer.")
    for name in ECHOED:
        table.register(name, echo, f"Echo the args of {name}.")
    return table


@asynccontextmanager
async def serving(path: Path) -> AsyncIterator[ControlServer]:
    """A ControlServer with the fake table, running for the block."""
    server = ControlServer(path, fake_table())
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(server.run))
        yield server
        tg.cancel_scope.cancel()


@asynccontextmanager
async def raw_server(path: Path, reply: bytes) -> AsyncIterator[None]:
    """A server that answers any request line with ``reply``, verbatim."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await BufferedByteReceiveStream(stream).receive_until(b"\n", 1 << 20)
                await stream.send(reply)

    listener = await anyio.create_unix_listener(path)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield
        tg.cancel_scope.cancel()


async def ctl(path: Path, *argv: str) -> int:
    """Run ``tradectl --socket PATH argv...`` in a worker thread."""
    return await anyio.to_thread.run_sync(main, ["--socket", str(path), *argv])


async def test_ping_prints_pong(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plain string result is printed as is."""
    async with serving(sock_path):
        assert await ctl(sock_path, "ping") == EXIT_OK
    assert capsys.readouterr().out == "pong\n"


async def test_status_is_rendered_for_people(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Status prints aligned key: value lines, nested blocks and a table of records."""
    async with serving(sock_path):
        assert await ctl(sock_path, "status") == EXIT_OK
    assert capsys.readouterr().out == (
        "state:       running\n"
        "equity:      $100,234.50\n"
        "kill_switch:\n"
        "  tripped: false\n"
        "  reason:  -\n"
        "actors:\n"
        "  name       state    restarts\n"
        "  ---------  -------  --------\n"
        "  risk       running         0\n"
        "  data_feed  stopped        12\n"
        "strategies:  trend, mean_reversion\n"
    )


@pytest.mark.parametrize(
    "argv", [["--json", "status"], ["status", "--json"]], ids=["before", "after"]
)
async def test_json_prints_the_raw_result(
    sock_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """--json, before or after the subcommand, prints the result as sorted, indented JSON."""
    async with serving(sock_path):
        assert await ctl(sock_path, *argv) == EXIT_OK
    out = capsys.readouterr().out
    assert out == json.dumps(STATUS, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize(
    ("argv", "args"),
    [
        (["run-cycle", "--asof", "2024-03-01"], {"asof": "2024-03-01"}),
        (["run-cycle"], {}),
        (["run-cycle", "--force"], {"force": True}),
        (
            ["run-cycle", "--asof", "2024-03-01", "--force", "--allow-entries", "--wait"],
            {"asof": "2024-03-01", "force": True, "allow_entries": True, "wait": True},
        ),
        (["halt", "broker", "looks", "wrong"], {"reason": "broker looks wrong"}),
        (["disable", "trend"], {"strategy": "trend"}),
        (["enable", "mean_reversion"], {"strategy": "mean_reversion"}),
        (["resume"], {}),
        (["pause-entries"], {}),
        (["resume-entries"], {}),
        (["reload"], {}),
    ],
)
async def test_subcommands_map_to_requests(
    sock_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], args: dict[str, Any]
) -> None:
    """Each subcommand sends its own name as cmd with its arguments mapped to args."""
    async with serving(sock_path) as server:
        assert await ctl(sock_path, "--json", *argv) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == args
    assert server.stats.requests[(argv[0], "ok")] == 1


async def test_call_passes_any_command_through(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`call CMD key=value key:=json` sends strings and JSON values to any command."""
    async with serving(sock_path):
        code = await ctl(
            sock_path, "--json", "call", "why-no-trade", "symbol=AAPL", "limit:=3", "n:=[1,2]"
        )
    assert code == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"symbol": "AAPL", "limit": 3, "n": [1, 2]}


async def test_call_renders_records_as_a_table(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A list of records prints as a column-aligned table with numbers right-aligned."""
    async with serving(sock_path):
        assert await ctl(sock_path, "call", "positions") == EXIT_OK
    assert capsys.readouterr().out == (
        "symbol  qty  strategy\n"
        "------  ---  --------------\n"
        "AAPL     10  trend\n"
        "MSFT    250  mean_reversion\n"
    )


async def test_null_result_prints_ok(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A command that returns nothing prints ok."""
    async with serving(sock_path):
        assert await ctl(sock_path, "call", "nothing") == EXIT_OK
    assert capsys.readouterr().out == "ok\n"


async def test_daemon_error_exits_1(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ok=false reply prints `error: code: message` to stderr and exits 1."""
    async with serving(sock_path):
        assert await ctl(sock_path, "call", "fail") == EXIT_DAEMON_ERROR
    captured = capsys.readouterr()
    assert captured.err == "error: bad_args: asof: expected YYYY-MM-DD\n"
    assert captured.out == ""


async def test_unknown_command_exits_1(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A command the daemon does not know is reported with the known ones."""
    async with serving(sock_path):
        assert await ctl(sock_path, "call", "funnel") == EXIT_DAEMON_ERROR
    assert capsys.readouterr().err.startswith("error: unknown_command: unknown command 'funnel'")


def test_missing_socket_exits_3(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No socket file means the daemon is not running: exit 3 with a clear message."""
    assert main(["--socket", str(sock_path), "status"]) == EXIT_NOT_RUNNING
    assert capsys.readouterr().err == (
        f"tradingd is not running (no control socket at {sock_path})\n"
    )


def test_stale_socket_exits_3(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A socket file nobody listens on also means the daemon is not running."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(sock_path))
        assert main(["--socket", str(sock_path), "ping"]) == EXIT_NOT_RUNNING
    assert "tradingd is not running" in capsys.readouterr().err


@pytest.mark.parametrize("asof", ["2024-13-01", "20240301", "yesterday", "2024-02-30"])
def test_bad_date_exits_2(sock_path: Path, capsys: pytest.CaptureFixture[str], asof: str) -> None:
    """An invalid --asof is a usage error, caught before connecting."""
    assert main(["--socket", str(sock_path), "run-cycle", "--asof", asof]) == EXIT_USAGE
    assert f"invalid date {asof!r}: expected YYYY-MM-DD" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["call", "x", "novalue"],
        ["call", "x", "n:=notjson"],
        ["call", "x", "=v"],
        ["call", "x", "a=1", "a=2"],
        ["halt"],
        ["--timeout", "0", "ping"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2(sock_path: Path, argv: list[str]) -> None:
    """Malformed command lines exit 2 without contacting the daemon."""
    assert main(["--socket", str(sock_path), *argv]) == EXIT_USAGE


def test_allow_entries_without_force_exits_2_naming_the_flag(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run-cycle --allow-entries` alone is a usage error that names the flag it needs."""
    assert main(["--socket", str(sock_path), "run-cycle", "--allow-entries"]) == EXIT_USAGE
    assert "--allow-entries needs --force" in capsys.readouterr().err


async def test_timeout_exits_4(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No reply within --timeout exits 4."""
    async with serving(sock_path):
        assert await ctl(sock_path, "--timeout", "0.1", "call", "hang") == EXIT_PROTOCOL
    assert "no reply from tradingd within 0.1s" in capsys.readouterr().err


@pytest.mark.parametrize(
    "reply",
    [b"not json\n", b"[1]\n", b'{"ok": false}\n', b'{"ok": true, "id": "other"}\n', b""],
    ids=["text", "list", "no-error", "wrong-id", "closed"],
)
async def test_malformed_reply_exits_4(
    sock_path: Path, capsys: pytest.CaptureFixture[str], reply: bytes
) -> None:
    """A reply that is not a well-formed answer to our request exits 4."""
    async with raw_server(sock_path, reply):
        assert await ctl(sock_path, "ping") == EXIT_PROTOCOL
    assert capsys.readouterr().err.startswith("error: ")


async def test_oversized_reply_exits_4(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A reply larger than the cap is refused rather than buffered without end."""
    async with raw_server(sock_path, b"x" * (MAX_REPLY_BYTES + 2 * 65536)):
        assert await ctl(sock_path, "ping") == EXIT_PROTOCOL
    assert "reply larger than" in capsys.readouterr().err


async def test_socket_from_environment(
    sock_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --socket, $TRADINGD_SOCKET is used."""
    monkeypatch.setenv("TRADINGD_SOCKET", str(sock_path))
    async with serving(sock_path):
        assert await anyio.to_thread.run_sync(main, ["ping"]) == EXIT_OK
    assert capsys.readouterr().out == "pong\n"


def test_default_socket_path_precedence(tmp_path: Path) -> None:
    """$TRADINGD_SOCKET, then $RUNTIME_DIRECTORY, then the system socket, then ./var/run."""
    system = tmp_path / "tradingd.sock"
    env = {"TRADINGD_SOCKET": "/x/a.sock", "RUNTIME_DIRECTORY": "/run/t:/run/u"}
    assert default_socket_path(env, system_socket=system) == Path("/x/a.sock")
    del env["TRADINGD_SOCKET"]
    assert default_socket_path(env, system_socket=system) == Path("/run/t/tradingd.sock")
    assert default_socket_path({}, system_socket=system) == LOCAL_SOCKET
    system.touch()
    assert default_socket_path({}, system_socket=system) == system


def test_render_scalars_lists_and_empties() -> None:
    """Rendering covers null, scalars, plain lists and empty containers."""
    assert render(None) == "ok"
    assert render(3) == "3"
    assert render(["a", "b"]) == "a\nb"
    assert render([]) == "(none)"
    assert render({}) == "(none)"
    assert render({"a": [], "b": {}, "c": [[1, 2]]}) == "a: (none)\nb: (none)\nc: [[1,2]]"
    assert render([{"a": 1}, {"b": None}]) == "a  b\n-  -\n1  -\n-  -"


def test_render_formats_money_percents_and_shares_by_field_name() -> None:
    """Status for people: money to the cent, fractions as percents to 0.1 %, shares whole,
    NaN a dash, unknown floats to 4 decimals, ints as they are."""
    status = {
        "pid": 4456,
        "uptime_s": 3.3456789,
        "account": {
            "equity": 99919.0,
            "day_pnl": -81.0,
            "day_pnl_pct": -0.00081,
            "drawdown_from_peak": -0.0123456,
            "peak_equity": math.nan,
            "positions": [
                {"symbol": "UNH", "qty": 16.0, "mark": 517.74, "unrealized_pnl": -102.12},
                {"symbol": "NEE", "qty": 160, "mark": None, "unrealized_pnl": 16.2649},
            ],
        },
    }
    assert render(status) == (
        "pid:      4456\n"
        "uptime_s: 3.3457\n"
        "account:\n"
        "  equity:             $99,919.00\n"
        "  day_pnl:            -$81.00\n"
        "  day_pnl_pct:        -0.1%\n"
        "  drawdown_from_peak: -1.2%\n"
        "  peak_equity:        —\n"
        "  positions:\n"
        "    symbol  qty  mark     unrealized_pnl\n"
        "    ------  ---  -------  --------------\n"
        "    UNH      16  $517.74        -$102.12\n"
        "    NEE     160        -         +$16.26"
    )


def test_why_no_trade_details_read_as_their_reason_means_them() -> None:
    """A rejection's details are one line: its limit a percent for heat, dollars for notional."""
    result = {
        "cycle": {"run_id": "r1", "asof": "2026-11-23", "status": "completed", "reason": ""},
        "blocked_by": [],
        "strategies": {"momentum": {"summary": "2 signals, 0 executed"}},
        "rejections": [
            {
                "run_id": "r1",
                "symbol": "MS",
                "reason": "heat_limit",
                "details": {"heat_after": 0.3823, "limit": 0.3, "trade_value": 9333.85},
            },
            {
                "run_id": "r1",
                "symbol": "HD",
                "reason": "max_order_notional",
                "details": {"notional": 25123.456, "limit": 25000},
            },
        ],
    }
    lines = for_people("why-no-trade", result).splitlines()
    assert lines[-2:] == [
        "  MS      heat_limit          heat_after=38.2%, limit=30.0%, trade_value=$9,333.85",
        "  HD      max_order_notional  notional=$25,123.46, limit=$25,000.00",
    ]
