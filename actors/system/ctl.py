"""``tradectl``: steer a running tradingd through its control socket.

Each invocation connects, sends one JSON request line, reads one reply line and
prints the result for people (aligned ``key: value`` lines, tables for lists of
records) or, with ``--json``, as indented JSON.

Subcommand -> request (``cmd`` is the subcommand's own name)::

    ping, status, pause-entries, resume-entries, reload   args {}
    run-cycle [--asof YYYY-MM-DD] [--force [--allow-entries]] [--wait]
                                       {"asof": "...", "force": true, "allow_entries": true,
                                        "wait": true} (each only when given)
    halt REASON...                     {"reason": "the words joined"}
    resume [SWITCH]                    {"switch": "..."} (default: trading_halted)
    flatten [--yes] [STRATEGY|SYMBOL]  {"target": "..."} (only when given)
    disable STRATEGY / enable STRATEGY {"strategy": "..."}
    backup                             {} (the backup file and its size)
    call CMD [key=value | key:=json ...]   any other command, e.g. positions

``run-cycle`` and ``plan`` default to the daemon's current trading date
(``actors.market.calendar.trading_date``: after the close, the next session). A date
whose cycle completed is done: ``run-cycle`` is refused (exit 1, the message
names the completed run and when) unless ``--force``, which re-runs exits and
stop checks only; ``--allow-entries`` (with ``--force``) lets it enter too.

Commands that cannot surprise:

- ``run-cycle --asof DATE`` with a date other than the daemon's current trading
  date is refused before anything is sent (exit 2: that date's signals would
  trade at today's prices) unless ``--force``. The client asks ``status`` for
  the daemon's clock and applies the NYSE calendar (``schedule.calendar``'s
  default); a daemon whose ``status`` has no ``now`` is not checked.
- ``flatten`` asks ``flatten N positions? [y/N]`` on a terminal; otherwise it
  needs ``--yes`` and, without it, sends nothing (exit 2). A "no" sends nothing
  (exit 1).
- ``resume [SWITCH]`` prints what it cleared and every switch still active;
  ``why-no-trade`` prints the last cycle, the switches or breakers that blocked
  it, and per strategy "no signals" or what became of its signals.
- Output piped into ``head`` ends quietly: no traceback, exit 141 (128 + SIGPIPE).

Exit codes: 0 ok; 1 the daemon answered with an error, or a confirmation was
declined; 2 usage, or a refusal made before sending (above); 3 the daemon is
not running; 4 timeout, protocol or permission trouble; 141 stdout was a pipe
its reader closed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from actors.reports import numbers

SYSTEM_SOCKET: Final = Path("/run/tradingd/tradingd.sock")
LOCAL_SOCKET: Final = Path("var/run/tradingd.sock")
SOCKET_FILENAME: Final = "tradingd.sock"
DEFAULT_TIMEOUT_S: Final = 35.0
MAX_REPLY_BYTES: Final = 16 * 1024 * 1024

EXIT_OK: Final = 0
EXIT_DAEMON_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_RUNNING: Final = 3
EXIT_PROTOCOL: Final = 4
EXIT_DECLINED: Final = 1
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE: what a shell shows for a tool `| head` stopped

#: The calendar ``run-cycle --asof`` is checked on (the daemon's ``schedule.calendar`` default).
CLIENT_CALENDAR: Final = "XNYS"

_DATE_SHAPE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_RECV_CHUNK: Final = 65536


class CtlError(Exception):
    """Talking to the daemon failed; ``exit_code`` says how ``main`` should exit."""

    exit_code: int = EXIT_PROTOCOL


class DaemonNotRunning(CtlError):
    """No control socket, or nobody listening on it."""

    exit_code = EXIT_NOT_RUNNING

    def __init__(self, path: Path) -> None:
        super().__init__(f"tradingd is not running (no control socket at {path})")
        self.path = path


class ProtocolError(CtlError):
    """The daemon's answer was not a well-formed reply, or came too late."""


def default_socket_path(
    environ: Mapping[str, str] | None = None, *, system_socket: Path = SYSTEM_SOCKET
) -> Path:
    """``$TRADINGD_SOCKET``, else ``$RUNTIME_DIRECTORY/tradingd.sock``, else the
    system socket if it exists, else ``./var/run/tradingd.sock``."""
    env = os.environ if environ is None else environ
    if explicit := env.get("TRADINGD_SOCKET"):
        return Path(explicit)
    if runtime_dir := env.get("RUNTIME_DIRECTORY"):
        # systemd may list several directories separated by colons; ours is the first.
        return Path(runtime_dir.split(":")[0]) / SOCKET_FILENAME
    if system_socket.exists():
        return system_socket
    return LOCAL_SOCKET


def request(
    path: Path, cmd: str, args: Mapping[str, Any], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Send one request and return the daemon's reply (``ok``, ``result``/``error``, ``id``).

    Raises ``DaemonNotRunning`` or ``CtlError``/``ProtocolError`` (timeouts included).
    """
    request_id = secrets.token_hex(6)
    line = json.dumps({"cmd": cmd, "args": dict(args), "id": request_id}).encode() + b"\n"
    deadline = time.monotonic() + timeout_s
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            _connect(sock, path, deadline)
            sock.settimeout(_remaining(deadline))
            sock.sendall(line)
            raw = _receive_line(sock, deadline)
    except TimeoutError:
        raise ProtocolError(f"no reply from tradingd within {timeout_s:g}s ({path})") from None
    except OSError as exc:
        raise ProtocolError(f"lost the connection to tradingd ({path}): {exc.strerror}") from None
    return _parse_reply(raw, request_id)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _connect(sock: socket.socket, path: Path, deadline: float) -> None:
    sock.settimeout(_remaining(deadline))
    try:
        sock.connect(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise DaemonNotRunning(path) from None
    except PermissionError:
        raise CtlError(
            f"permission denied on {path}: run as the daemon's user or a member of its group"
        ) from None
    except TimeoutError:
        raise
    except OSError as exc:
        raise CtlError(f"cannot connect to {path}: {exc.strerror}") from None


def _receive_line(sock: socket.socket, deadline: float) -> bytes:
    buffer = bytearray()
    while True:
        newline = buffer.find(b"\n")
        if newline >= 0:
            return bytes(buffer[:newline])
        if len(buffer) > MAX_REPLY_BYTES:
            raise ProtocolError(f"reply larger than {MAX_REPLY_BYTES} bytes")
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(_RECV_CHUNK)
        if not chunk:
            raise ProtocolError("tradingd closed the connection without a complete reply")
        buffer.extend(chunk)


def _parse_reply(raw: bytes, request_id: str) -> dict[str, Any]:
    try:
        reply = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("tradingd sent a reply that is not JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ProtocolError("tradingd sent a reply without a boolean 'ok'")
    error = reply.get("error")
    if not reply["ok"] and not (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    ):
        raise ProtocolError("tradingd sent an error reply without code and message")
    # A refusal (forbidden, too many clients) is sent before any request is read.
    if reply.get("id") not in (request_id, None):
        raise ProtocolError("tradingd answered a different request")
    return reply


# -- rendering for people --------------------------------------------------------------


def render(result: Any) -> str:
    """A readable rendering: ``key: value`` lines, indented nesting, tables for records.

    Numbers are formatted by their field's name (``actors.reports.numbers.by_key``, as
    the digest's are): ``equity`` "$99,919.00", ``day_pnl_pct`` "-0.1%", ``shares``
    "16"; a float nothing is known about to at most 4 decimals. ``--json`` is raw.
    """
    if result is None:
        return "ok"
    return "\n".join(line.rstrip() for line in _render(result, 0))


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return numbers.plain(value)
    if isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
        return ", ".join(_scalar(v) for v in value) if value else "(none)"
    if isinstance(value, dict) and not value:
        return "(none)"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _field(key: str, value: Any, reason: Any = None) -> str:
    """A value of the field ``key``: a number by what the name says, a record on one line."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return numbers.by_key(key, value, reason if isinstance(reason, str) else None)
    if isinstance(value, dict) and value:
        return numbers.details(value, reason if isinstance(reason, str) else None)
    return _scalar(value)


def _render(value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    if _is_records(value):
        return _table(value, pad)
    if isinstance(value, list):
        return [pad + "(none)"] if not value else [pad + _scalar(item) for item in value]
    if not isinstance(value, dict):
        return [pad + _scalar(value)]
    if not value:
        return [pad + "(none)"]
    width = max(len(str(key)) for key in value) + 1
    lines: list[str] = []
    for key, item in value.items():
        label = f"{key}:"
        if (isinstance(item, dict) and item) or _is_records(item):
            lines.append(pad + label)
            lines.extend(_render(item, depth + 1))
        else:
            lines.append(f"{pad}{label:<{width}} {_field(str(key), item)}")
    return lines


def _table(records: list[dict[str, Any]], pad: str) -> list[str]:
    columns: list[str] = []
    for record in records:
        columns.extend(str(key) for key in record if str(key) not in columns)
    cells = [
        [_field(column, record.get(column), record.get("reason")) for column in columns]
        for record in records
    ]
    numeric = [
        all(
            isinstance(record.get(column), int | float) and not isinstance(record.get(column), bool)
            for record in records
            if record.get(column) is not None
        )
        for column in columns
    ]
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(columns)]

    def line(row: Sequence[str], align_numbers: bool) -> str:
        parts = [
            cell.rjust(widths[i]) if align_numbers and numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return pad + "  ".join(parts)

    return [
        line(columns, align_numbers=False),
        pad + "  ".join("-" * width for width in widths),
        *(line(row, align_numbers=True) for row in cells),
    ]


# -- the command line ------------------------------------------------------------------


def _iso_date(text: str) -> str:
    try:
        if not _DATE_SHAPE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: expected YYYY-MM-DD") from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: expected seconds > 0")
    return value


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _add_global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    # In subcommands the defaults are suppressed, so `tradectl status --json` and
    # `tradectl --json status` both work without one overriding the other.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if in_subcommand else value

    parser.add_argument(
        "--socket",
        type=Path,
        default=default(None),
        metavar="PATH",
        help="control socket (default: $TRADINGD_SOCKET, $RUNTIME_DIRECTORY/tradingd.sock, "
        f"{SYSTEM_SOCKET} if it exists, else ./{LOCAL_SOCKET})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the raw result JSON"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=default(DEFAULT_TIMEOUT_S),
        metavar="SECONDS",
        help=f"give up waiting after this long (default: {DEFAULT_TIMEOUT_S:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``tradectl`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="tradectl", description="Steer a running tradingd through its control socket."
    )
    _add_global_options(parser, in_subcommand=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _add_global_options(sub, in_subcommand=True)
        return sub

    _add_control_commands(add)
    _add_portfolio_commands(add)
    return parser


#: Adds one subcommand (name, help) to ``tradectl`` and returns its parser.
_AddCommand = Callable[[str, str], argparse.ArgumentParser]


def _add_control_commands(add: _AddCommand) -> None:
    """The subcommands that steer the daemon: cycles, halts, strategies, reload."""
    add("ping", "check that the daemon answers")
    add("status", "show the daemon's state")
    run_cycle = add("run-cycle", "run a trading cycle now")
    run_cycle.add_argument(
        "--asof",
        type=_iso_date,
        metavar="YYYY-MM-DD",
        help="trading date (default: the current one; after the close, the next session)",
    )
    run_cycle.add_argument(
        "--force",
        action="store_true",
        help="run an --asof other than the current trading date, or re-run a date whose"
        " cycle completed (exits and stop checks only)",
    )
    run_cycle.add_argument(
        "--allow-entries", action="store_true", help="with --force: new entries too"
    )
    run_cycle.add_argument(
        "--wait", action="store_true", help="wait for the cycle to finish and show its outcome"
    )
    add("halt", "stop trading (trips the manual kill switch)").add_argument(
        "reason", nargs="+", metavar="REASON", help="why, for the log and the alert"
    )
    add(
        "resume", "clear a latched kill switch (default: the halt); show those still active"
    ).add_argument(
        "switch",
        nargs="?",
        type=_non_empty,
        metavar="SWITCH",
        help="e.g. reconciliation_failed, daily_drawdown (default: trading_halted)",
    )
    add("pause-entries", "stop opening new positions (exits and stops still run)")
    add("resume-entries", "allow new positions again")
    add("disable", "disable a strategy").add_argument(
        "strategy", type=_non_empty, metavar="STRATEGY"
    )
    add("enable", "enable a strategy").add_argument("strategy", type=_non_empty, metavar="STRATEGY")
    add("reload", "reload the configuration")


def _add_portfolio_commands(add: _AddCommand) -> None:
    """The subcommands about positions, orders, reconciliation, reports and raw calls."""
    add("positions", "open positions per strategy, and open orders")
    add("why-no-trade", "why signals of the last run were not traded").add_argument(
        "strategy", nargs="?", metavar="STRATEGY", help="only this strategy"
    )
    add("reconcile", "reconcile with the broker now and show the differences")
    add("adopt", "take the broker's positions and cash as the truth").add_argument(
        "reason", nargs="+", metavar="REASON", help="why, for the log"
    )
    flatten = add("flatten", "sell every position, or one strategy's or one symbol's")
    flatten.add_argument("target", nargs="?", metavar="STRATEGY|SYMBOL")
    flatten.add_argument(
        "--yes", action="store_true", help="do not ask (needed when stdin is not a terminal)"
    )
    add("plan", "dry run of a cycle: the orders it would place").add_argument(
        "--asof",
        type=_iso_date,
        metavar="YYYY-MM-DD",
        help="trading date (default: the current one; after the close, the next session)",
    )
    add("orders", "order intents").add_argument(
        "--asof", type=_iso_date, metavar="YYYY-MM-DD", help="only this trading date"
    )
    add("pending", "signals waiting for heat or cash")
    add("report", "the digest of a session as text").add_argument(
        "--date", type=_iso_date, metavar="YYYY-MM-DD", help="the session (default: the last)"
    )
    add("replay", "re-run a past session and show where live differed").add_argument(
        "date", type=_iso_date, metavar="YYYY-MM-DD"
    )
    add("funnel", "the signal funnel of a run (default: the last)").add_argument(
        "run", nargs="?", metavar="RUN", help="a run id"
    )
    add("signals", "the signals of a run (default: the last)").add_argument(
        "run", nargs="?", metavar="RUN", help="a run id"
    )
    add("backup", "back up the state database now and print the file (big ones: --timeout)")
    call = add("call", "send any command, e.g. `tradectl call positions`")
    call.add_argument("cmd", type=_non_empty, metavar="CMD")
    call.add_argument(
        "pairs",
        nargs="*",
        metavar="ARG",
        help="key=value (a string) or key:=JSON (a number, list, true, ...)",
    )


def _parse_pairs(parser: argparse.ArgumentParser, pairs: Sequence[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            parser.error(f"argument {pair!r}: expected key=value or key:=JSON")
        parsed: Any = value
        if key.endswith(":"):
            key = key[:-1]
            try:
                parsed = json.loads(value)
            except ValueError:
                parser.error(f"argument {pair!r}: {value!r} is not JSON")
        if not key:
            parser.error(f"argument {pair!r}: empty key")
        if key in args:
            parser.error(f"argument {pair!r}: {key!r} given twice")
        args[key] = parsed
    return args


def _to_request(
    parser: argparse.ArgumentParser, ns: argparse.Namespace
) -> tuple[str, dict[str, Any]]:
    command: str = ns.command
    if command == "call":
        return ns.cmd, _parse_pairs(parser, ns.pairs)
    if command == "run-cycle":
        if ns.allow_entries and not ns.force:
            parser.error("--allow-entries needs --force (it only applies to a forced re-run)")
        args: dict[str, Any] = {} if ns.asof is None else {"asof": ns.asof}
        for flag in ("force", "allow_entries", "wait"):
            if getattr(ns, flag):
                args[flag] = True
        return command, args
    if command in ("funnel", "signals"):
        return command, {} if ns.run is None else {"run": ns.run}
    if command == "why-no-trade":
        return command, {} if ns.strategy is None else {"strategy": ns.strategy}
    if command == "adopt":
        return command, {"reason": " ".join(ns.reason)}
    if command == "flatten":
        return command, {} if ns.target is None else {"target": ns.target}
    if command == "resume":
        return command, {} if ns.switch is None else {"switch": ns.switch}
    if command == "report":
        return command, {} if ns.date is None else {"date": ns.date}
    if command == "replay":
        return command, {"date": ns.date}
    if command in ("plan", "orders"):
        return command, {} if ns.asof is None else {"asof": ns.asof}
    if command == "halt":
        return command, {"reason": " ".join(ns.reason)}
    if command in ("disable", "enable"):
        return command, {"strategy": ns.strategy}
    return command, {}


def guard_broken_pipe(run: Callable[[], int]) -> int:
    """``run()``, ending quietly when stdout is a pipe whose reader left (``| head``).

    What was not written is dropped: stdout is pointed at /dev/null so the flush
    at exit cannot fail again, and the exit status is 141 (128 + SIGPIPE), what a
    shell shows for a tool the closed pipe stopped. ``tradingd`` uses it too.
    """
    try:
        code = run()
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # stdout without a file descriptor (captured)
            pass
        return EXIT_BROKEN_PIPE
    return code


def main(argv: list[str] | None = None) -> int:
    """Run ``tradectl``; returns the exit code."""
    return guard_broken_pipe(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
        cmd, args = _to_request(parser, ns)
    except SystemExit as exc:
        # argparse exits on usage errors and --help; main returns codes instead.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    path: Path = ns.socket if ns.socket is not None else default_socket_path()
    try:
        refused = _before_sending(path, ns)
        if refused is not None:
            return refused
        reply = request(path, cmd, args, timeout_s=ns.timeout)
    except CtlError as exc:
        message = str(exc) if isinstance(exc, DaemonNotRunning) else f"error: {exc}"
        print(message, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    if not reply["ok"]:
        error = reply["error"]
        print(f"error: {error['code']}: {error['message']}", file=sys.stderr)
        return EXIT_DAEMON_ERROR
    result = reply.get("result")
    if ns.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(for_people(cmd, result))
    return EXIT_OK


# -- checks made before a request is sent ----------------------------------------------


class DaemonRefused(CtlError):
    """The daemon answered a request made for a check with an error."""

    exit_code = EXIT_DAEMON_ERROR


def _ask(path: Path, cmd: str, timeout_s: float) -> Any:
    """The result of ``cmd`` (no args); ``DaemonRefused`` when the daemon answers an error."""
    reply = request(path, cmd, {}, timeout_s=timeout_s)
    if not reply["ok"]:
        error = reply["error"]
        raise DaemonRefused(f"{cmd}: {error['code']}: {error['message']}")
    return reply.get("result")


def _before_sending(path: Path, ns: argparse.Namespace) -> int | None:
    """An exit code when the command must not be sent (refused or declined), else None."""
    if ns.command == "flatten" and not ns.yes:
        return _confirm_flatten(path, ns)
    if ns.command == "run-cycle" and ns.asof is not None and not ns.force:
        return _check_asof(path, ns.asof, ns.timeout)
    return None


def _confirm_flatten(path: Path, ns: argparse.Namespace) -> int | None:
    """Ask on a terminal; refuse without ``--yes`` anywhere else. None: go ahead."""
    if not sys.stdin.isatty():
        print(
            "tradectl: flatten sells positions at market: confirm with --yes"
            " (stdin is not a terminal); nothing sent",
            file=sys.stderr,
        )
        return EXIT_USAGE
    target: str | None = (ns.target or "").strip() or None
    result = _ask(path, "positions", ns.timeout)
    rows = result.get("positions", []) if isinstance(result, dict) else []
    count = sum(
        1
        for r in rows
        if isinstance(r, dict)
        and int(r.get("shares") or 0) > 0
        and (target is None or r.get("strategy") == target or r.get("symbol") == target.upper())
    )
    noun = "position" if count == 1 else "positions"
    where = f" of {target}" if target else ""
    print(f"flatten {count} {noun}{where}? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return None
    print("flatten cancelled; nothing sent", file=sys.stderr)
    return EXIT_DECLINED


def _check_asof(path: Path, asof: str, timeout_s: float) -> int | None:
    """Refuse an ``--asof`` other than the daemon's current trading date. None: go ahead."""
    status = _ask(path, "status", timeout_s)
    now_text = status.get("now") if isinstance(status, dict) else None
    try:
        now = dt.datetime.fromisoformat(str(now_text))
    except ValueError:
        return None  # a daemon that does not say its time: it checks what it can itself
    if now.tzinfo is None:
        return None
    from actors.market.calendar import ExchangeCalendar, trading_date  # pandas: only here

    calendar = ExchangeCalendar(CLIENT_CALENDAR)
    current = trading_date(now, calendar)
    if asof == current.isoformat():
        return None
    print(
        f"tradectl: --asof {asof} is not the current trading date {current}"
        f" (daemon time {now.astimezone(calendar.tz):%Y-%m-%d %H:%M %Z}): its signals would"
        " trade at today's prices; nothing sent (--force runs it anyway)",
        file=sys.stderr,
    )
    return EXIT_USAGE


# -- replies of particular commands, for people ------------------------------------------


def for_people(cmd: str, result: Any) -> str:
    """``render(result)``, with ``resume`` and ``why-no-trade`` replies told as sentences."""
    if isinstance(result, dict):
        if cmd == "resume" and "still_active" in result:
            return _resume_text(result)
        if cmd == "why-no-trade" and "strategies" in result:
            return render(_why_view(result))
    return render(result)


def _resume_text(result: dict[str, Any]) -> str:
    switch = result.get("switch")
    done = f"cleared {switch}" if result.get("changed") else f"{switch} was not active"
    still = [str(name) for name in result.get("still_active") or []]
    return f"{done}\nstill active: {', '.join(still) if still else 'none'}"


def _why_view(result: dict[str, Any]) -> dict[str, Any]:
    """The why-no-trade reply as what to read first: the cycle, its blocks, each strategy."""
    cycle = result.get("cycle")
    if not isinstance(cycle, dict):
        return {"cycle": "no cycle has run yet"}
    reason = f": {cycle['reason']}" if cycle.get("reason") else ""
    blocks = [
        f"{b.get('switch')} ({b.get('reason')})" if b.get("reason") else str(b.get("switch"))
        for b in result.get("blocked_by") or []
        if isinstance(b, dict)
    ]
    strategies = result.get("strategies") or {}
    view: dict[str, Any] = {
        "cycle": f"{cycle.get('run_id')} (trading date {cycle.get('asof')}):"
        f" {cycle.get('status')}{reason}",
        "blocked by": ", ".join(blocks) if blocks else "no kill switch or breaker",
        "strategies": {
            name: entry.get("summary") if isinstance(entry, dict) else entry
            for name, entry in strategies.items()
        }
        or "none ran in this cycle",
    }
    rows = [
        {k: v for k, v in row.items() if k != "run_id"}
        for row in result.get("rejections") or []
        if isinstance(row, dict)
    ]
    if rows:
        view["rejections"] = rows
    return view


if __name__ == "__main__":
    sys.exit(main())
