"""sd_notify client: exact datagrams against real AF_UNIX sockets."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skbridge.notify import Notifier


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    # AF_UNIX datagrams are queued synchronously by sendto(), so recv() never
    # waits in a passing test; the timeout only bounds a failing one.
    sock.settimeout(5)
    return sock


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    # sun_path is at most 107 bytes; pytest's tmp_path can come close.
    path = tmp_path / "n.sock"
    if len(os.fsencode(path)) > 100:
        pytest.skip("tmp_path too long for an AF_UNIX socket path")
    return path


@pytest.fixture
def receiver(sock_path: Path) -> Iterator[socket.socket]:
    sock = _receiver(str(sock_path))
    yield sock
    sock.close()


Factory = Callable[[dict[str, str]], Notifier]


@pytest.fixture
def make() -> Iterator[Factory]:
    """Build Notifiers from an explicit environment; close them all afterwards."""
    made: list[Notifier] = []

    def factory(environ: dict[str, str]) -> Notifier:
        made.append(Notifier(environ))
        return made[-1]

    yield factory
    for n in made:
        n.close()


def _pending(sock: socket.socket) -> bytes | None:
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return None
    finally:
        sock.settimeout(timeout)


def test_messages(make: Factory, receiver: socket.socket, sock_path: Path) -> None:
    n = make({"NOTIFY_SOCKET": str(sock_path)})
    assert n.enabled
    assert n.ready() is True
    assert receiver.recv(4096) == b"READY=1\n"
    assert n.status("connected to Slack") is True
    assert receiver.recv(4096) == b"STATUS=connected to Slack\n"
    assert n.watchdog() is True
    assert receiver.recv(4096) == b"WATCHDOG=1\n"
    assert n.stopping() is True
    assert receiver.recv(4096) == b"STOPPING=1\n"
    assert n.send(STATUS="x", EXTEND_TIMEOUT_USEC=5_000_000) is True
    assert receiver.recv(4096) == b"STATUS=x\nEXTEND_TIMEOUT_USEC=5000000\n"
    assert _pending(receiver) is None
    n.close()  # idempotent: the fixture closes it again


def test_reloading_carries_monotonic_usec(
    make: Factory, receiver: socket.socket, sock_path: Path
) -> None:
    n = make({"NOTIFY_SOCKET": str(sock_path)})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = receiver.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    assert before <= int(lines[1].removeprefix("MONOTONIC_USEC=")) <= after
    assert lines[2:] == [""]


def test_newline_in_value_cannot_inject_fields(
    make: Factory, receiver: socket.socket, sock_path: Path
) -> None:
    n = make({"NOTIFY_SOCKET": str(sock_path)})
    n.status("line one\nREADY=1")
    assert receiver.recv(4096) == b"STATUS=line one READY=1\n"
    # Unencodable text (a lone surrogate) is replaced, not raised.
    assert n.status("bad \udcff byte") is True
    assert receiver.recv(4096) == b"STATUS=bad ? byte\n"


def test_abstract_namespace(make: Factory) -> None:
    name = f"skbridge-test-{uuid.uuid4().hex}"
    receiver = _receiver(b"\0" + name.encode())
    try:
        n = make({"NOTIFY_SOCKET": "@" + name})
        assert n.ready() is True
        assert receiver.recv(4096) == b"READY=1\n"
    finally:
        receiver.close()


def test_noop_without_notify_socket(make: Factory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="skbridge.notify")
    for env in ({}, {"NOTIFY_SOCKET": ""}):
        n = make(env)
        assert not n.enabled
        assert n.ready() is False
        assert n.status("x") is False
        assert n.watchdog() is False
        assert n.reloading() is False
        assert n.stopping() is False
        assert n._sock is None  # never even opened a socket
    assert caplog.records == []


def test_unsupported_address_warns_and_is_noop(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    n = make({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled
    assert n.ready() is False
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_send_failure_never_raises_and_warns_once(
    make: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="skbridge.notify")
    n = make({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert n.enabled
    assert n.ready() is False
    assert n.watchdog() is False
    assert n.stopping() is False
    levels = [r.levelno for r in caplog.records if r.name == "skbridge.notify"]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_full_receive_queue_does_not_block(
    make: Factory, receiver: socket.socket, sock_path: Path
) -> None:
    n = make({"NOTIFY_SOCKET": str(sock_path)})
    # Nobody reads: the kernel queue fills up, then sends fail (EAGAIN) at once.
    results = [n.status("x" * 1024) for _ in range(2000)]
    assert results[0] is True
    assert results[-1] is False


def test_watchdog_interval(make: Factory) -> None:
    assert make({}).watchdog_interval is None
    assert make({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    pid = str(os.getpid())
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}
    assert make(env).watchdog_interval == 15.0
    # The watchdog is meant for another process (e.g. inherited environment).
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert make(env).watchdog_interval is None
    assert make({"WATCHDOG_USEC": "0"}).watchdog_interval is None


def test_watchdog_interval_malformed(make: Factory, caplog: pytest.LogCaptureFixture) -> None:
    assert make({"WATCHDOG_USEC": "soon"}).watchdog_interval is None
    assert make({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "me"}).watchdog_interval is None
    assert make({"WATCHDOG_USEC": "-5"}).watchdog_interval is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
