"""Tell systemd about the daemon's state: the sd_notify(3) protocol, stdlib only.

Used by the ``Type=notify`` unit in ``systemd/skbridge.service``: READY=1 once
started, WATCHDOG=1 every :attr:`Notifier.watchdog_interval` seconds,
RELOADING=1 on SIGHUP, STOPPING=1 on shutdown, STATUS=... for ``systemctl
status``. Without ``$NOTIFY_SOCKET`` (not run by systemd) every method is a
no-op.

It must never raise on a failed send, never block the event loop (the socket
is non-blocking; a datagram that cannot be queued is dropped) and never spam
the log: the first failure is a WARNING, later ones DEBUG.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends ``KEY=value`` datagrams to ``$NOTIFY_SOCKET``, if there is one."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        path = environ.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if path.startswith("@"):  # abstract namespace: a leading NUL byte instead
            self._address = b"\0" + os.fsencode(path[1:])
        elif path.startswith("/"):
            self._address = path
        elif path:  # e.g. "vsock:..." (VMs), which we have no use for
            log.warning("unsupported NOTIFY_SOCKET %r, not notifying systemd", path)
        self._sock: socket.socket | None = None
        self._warned = False
        self._watchdog_usec = 0
        try:
            usec = int(environ.get("WATCHDOG_USEC", "0"))
            pid = environ.get("WATCHDOG_PID")
            if pid is None or int(pid) == os.getpid():
                self._watchdog_usec = max(usec, 0)
        except ValueError:
            log.warning("ignoring malformed WATCHDOG_USEC/WATCHDOG_PID")

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the timeout), None if no watchdog."""
        return self._watchdog_usec / 2_000_000 if self._watchdog_usec else None

    def send(self, **fields: str | int) -> bool:
        """Send one datagram of ``KEY=value`` lines; True if it was queued."""
        if self._address is None or not fields:
            return False
        # A newline inside a value would start a new (bogus) assignment.
        text = "".join(f"{k}={str(v).replace(chr(10), ' ')}\n" for k, v in fields.items())
        try:
            if self._sock is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                self._sock = socket.socket(socket.AF_UNIX, kind)
            self._sock.sendto(text.encode("utf-8", "replace"), self._address)
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "sd_notify to %r failed: %s", self._address, exc)
            return False
        return True

    def ready(self) -> bool:
        return self.send(READY=1)

    def reloading(self) -> bool:
        # Type=notify-reload (systemd >= 253) requires MONOTONIC_USEC (CLOCK_MONOTONIC).
        return self.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def close(self) -> None:
        """Close the socket (reopened by the next send); call at shutdown."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
