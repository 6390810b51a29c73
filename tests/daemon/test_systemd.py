"""SystemdNotifier against real AF_UNIX datagram sockets standing in for systemd."""

from __future__ import annotations

import importlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.systemd import SystemdNotifier


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in tmp_path and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, str(path)


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace and its ``@name`` NOTIFY_SOCKET value."""
    name = f"tradingd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        yield sock, "@" + name


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def _assert_nothing_queued(sock: socket.socket) -> None:
    # sendto is synchronous: anything sent is already queued, so no wait is needed.
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


def test_ready_sends_ready_datagram(receiver: tuple[socket.socket, str]) -> None:
    """ready() sends READY=1 to the path in NOTIFY_SOCKET."""
    sock, address = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False)
    assert notifier.enabled
    assert notifier.ready() is True
    assert _recv(sock) == "READY=1"


def test_abstract_namespace_socket(abstract_receiver: tuple[socket.socket, str]) -> None:
    """A NOTIFY_SOCKET starting with '@' addresses the abstract namespace."""
    sock, address = abstract_receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False)
    assert notifier.ready() is True
    assert _recv(sock) == "READY=1"


def test_status_sends_one_line(receiver: tuple[socket.socket, str]) -> None:
    """status() sends STATUS=<text> with newlines flattened to spaces."""
    sock, address = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False)
    notifier.status("cycle 3 done")
    notifier.status("line one\nline two")
    assert _recv(sock) == "STATUS=cycle 3 done"
    assert _recv(sock) == "STATUS=line one line two"


def test_stopping_sends_stopping(receiver: tuple[socket.socket, str]) -> None:
    """stopping() sends STOPPING=1."""
    sock, address = receiver
    SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False).stopping()
    assert _recv(sock) == "STOPPING=1"


def test_reloading_sends_monotonic_usec(receiver: tuple[socket.socket, str]) -> None:
    """reloading() sends RELOADING=1 and MONOTONIC_USEC read from CLOCK_MONOTONIC."""
    sock, address = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = _recv(sock).split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_watchdog_ping_and_interval(receiver: tuple[socket.socket, str]) -> None:
    """With WATCHDOG_USEC for this pid, watchdog() sends WATCHDOG=1 and the interval is half."""
    sock, address = receiver
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier.from_env(env, use_library=False)
    assert notifier.watchdog_interval == 15.0
    assert notifier.watchdog() is True
    assert _recv(sock) == "WATCHDOG=1"


def test_watchdog_without_pid_is_enabled(receiver: tuple[socket.socket, str]) -> None:
    """An absent WATCHDOG_PID leaves the watchdog enabled."""
    _, address = receiver
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"}
    assert SystemdNotifier.from_env(env, use_library=False).watchdog_interval == 1.0


def test_watchdog_pid_of_other_process_disables_watchdog(
    receiver: tuple[socket.socket, str],
) -> None:
    """A WATCHDOG_PID naming another process disables the watchdog but not notifications."""
    sock, address = receiver
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    notifier = SystemdNotifier.from_env(env, use_library=False)
    assert notifier.watchdog_interval is None
    assert notifier.watchdog() is False
    _assert_nothing_queued(sock)
    assert notifier.ready() is True
    sock.setblocking(True)
    assert _recv(sock) == "READY=1"


def test_watchdog_unset_means_no_interval(receiver: tuple[socket.socket, str]) -> None:
    """Without WATCHDOG_USEC there is no interval and watchdog() sends nothing."""
    sock, address = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False)
    assert notifier.watchdog_interval is None
    assert notifier.watchdog() is False
    _assert_nothing_queued(sock)


def test_notify_fields_are_newline_separated(receiver: tuple[socket.socket, str]) -> None:
    """notify(**fields) sends KEY=VALUE lines in argument order."""
    sock, address = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False)
    notifier.notify(READY=1, STATUS="trading")
    assert _recv(sock) == "READY=1\nSTATUS=trading"


def test_notify_rejects_malformed_fields(receiver: tuple[socket.socket, str]) -> None:
    """notify() rejects lower-case keys and values containing newlines."""
    _, address = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False)
    with pytest.raises(ValueError, match="ready"):
        notifier.notify(ready=1)
    with pytest.raises(ValueError, match="STATUS"):
        notifier.notify(STATUS="a\nb")


def test_no_notify_socket_is_noop() -> None:
    """Without NOTIFY_SOCKET the notifier is disabled and every call returns False."""
    notifier = SystemdNotifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not any(
        [
            notifier.ready(),
            notifier.reloading(),
            notifier.stopping(),
            notifier.status("x"),
            notifier.watchdog(),
            notifier.send("READY=1"),
        ]
    )


def test_relative_socket_path_disables_with_warning() -> None:
    """A NOTIFY_SOCKET that is neither absolute nor abstract disables the notifier, logged."""
    with capture_logs() as logs:
        notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "relative.sock"})
    assert not notifier.enabled
    assert [entry["event"] for entry in logs] == ["systemd_notify_socket_unsupported"]


def test_vanished_socket_does_not_raise_and_logs_once(tmp_path: Path) -> None:
    """Sending to a socket path that no longer exists returns False and warns only once."""
    path = tmp_path / "gone.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
    path.unlink()
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(path)}, use_library=False)
    with capture_logs() as logs:
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.status("still here") is False
    assert [entry["event"] for entry in logs] == ["systemd_notify_failed"]
    assert logs[0]["log_level"] == "warning"


def test_failure_warning_rearms_after_success(tmp_path: Path) -> None:
    """After a successful send, a new failure is logged again."""
    path = tmp_path / "flaky.sock"
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(path)}, use_library=False)
    with capture_logs() as logs:
        notifier.ready()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            assert notifier.ready() is True
        path.unlink()
        notifier.ready()
    assert [entry["event"] for entry in logs] == ["systemd_notify_failed"] * 2


def test_forcing_pure_implementation_ignores_library(receiver: tuple[socket.socket, str]) -> None:
    """use_library=False never uses systemd-python."""
    _, address = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address}, use_library=False)
    assert not notifier.uses_library


def _require_systemd_python() -> None:
    try:
        importlib.import_module("systemd.daemon")
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "systemd-python is not importable under CI=true; `make test` installs it "
                "(extra 'systemd') when `pkg-config --exists libsystemd` succeeds — "
                "install libsystemd-dev and pkg-config"
            )
        pytest.skip("systemd-python not installed (needs libsystemd-dev; extra 'systemd')")


def test_library_path_sends_same_datagrams(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through systemd-python the same READY/STATUS/WATCHDOG datagrams reach the socket."""
    _require_systemd_python()
    sock, address = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = SystemdNotifier.from_env(use_library=True)
    assert notifier.uses_library
    assert notifier.ready() is True
    assert notifier.status("via library") is True
    assert notifier.watchdog() is True
    assert _recv(sock) == "READY=1"
    assert _recv(sock) == "STATUS=via library"
    assert _recv(sock) == "WATCHDOG=1"


def test_default_sender_never_blocks_on_a_full_queue(receiver: tuple[socket.socket, str]) -> None:
    """With a receiver that never reads, sends return and report False once the queue is full."""
    _sock, address = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
    assert not notifier.uses_library  # the library's sd_notify would block the event loop
    results = [notifier.watchdog() for _ in range(200)]
    assert results[0] is True
    assert results[-1] is False
