"""Child processes: the real daemon (``python -m skbridge run -c …``) and the floor script.

Their stderr is read continuously (so a full pipe never stalls them) and kept, the last
lines of it shown if they fail. The daemon is ready when it logs
``INFO skbridge.service: ready``; the floor prints ``ready`` on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

READY_LINE = "skbridge.service: ready"
_DROP_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS")


PYCACHE = Path(tempfile.gettempdir()) / "skbench-pycache"
"""Bytecode cache for the children, outside the repository (PYTHONPYCACHEPREFIX)."""


def child_env() -> dict[str, str]:
    """Our environment without systemd's sockets or settings that would override the config.

    Children may write bytecode (to :data:`PYCACHE`), as an installed daemon has it:
    otherwise every start would compile skbridge from source.
    """
    env = {
        k: v for k, v in os.environ.items() if k not in _DROP_ENV and not k.startswith("SKBRIDGE_")
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def prime_bytecode() -> None:
    """Compile the daemon's and the floor's imports once, before anything is timed."""
    subprocess.run(
        [sys.executable, "-c", "import skbridge.cli, skbridge.service, bench.floor"],
        env=child_env(),
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)  # loaded before any fork
except OSError:
    _LIBC = None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL if the benchmark dies (Linux), never orphaned."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Child:
    """A child process whose readiness is one line of its output."""

    def __init__(self, name: str, argv: list[str], ready_marker: str, *, on_stdout: bool) -> None:
        self.name = name
        self.argv = argv
        self.ready_marker = ready_marker
        self.on_stdout = on_stdout
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: deque[str] = deque(maxlen=200)
        self.started_at = 0.0
        self.ready_at = 0.0
        self._ready = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30) -> float:  # noqa: ASYNC109
        """Spawn and wait until ready; returns seconds from spawn to the ready line."""
        self.started_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(),
            preexec_fn=_die_with_parent,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, self.on_stdout)),
            asyncio.create_task(self._read(self.proc.stderr, not self.on_stdout)),
        ]
        exited = asyncio.create_task(self.proc.wait())
        ready = asyncio.create_task(self._ready.wait())
        try:
            done, _ = await asyncio.wait(
                {exited, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
            if not exited.done():
                exited.cancel()
        if ready not in done:
            await self.kill()
            why = "exited" if exited in done else f"not ready within {timeout:.0f} s"
            raise RuntimeError(f"{self.name} {why}:\n  " + "\n  ".join(list(self.lines)[-15:]))
        return self.ready_at - self.started_at

    async def _read(self, stream: asyncio.StreamReader, marks_ready: bool) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self.lines.append(text)
            if marks_ready and not self._ready.is_set() and self.ready_marker in text:
                self.ready_at = time.monotonic()
                self._ready.set()

    async def stop(self, grace: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                return await self.kill()
        await self._finish()
        return self.proc.returncode

    async def kill(self) -> int | None:
        """SIGKILL (used where a backlog is abandoned on purpose)."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        await self._finish()
        return self.proc.returncode

    async def _finish(self) -> None:
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(reader, 5)
        self._readers = []

    def errors(self) -> list[str]:
        """Lines at WARNING or above (daemon) worth showing."""
        return [x for x in self.lines if x.startswith(("WARNING", "ERROR", "CRITICAL", "Trace"))]


def daemon(config: Path) -> Child:
    argv = [sys.executable, "-m", "skbridge", "run", "-c", str(config)]
    return Child("skbridge daemon", argv, READY_LINE, on_stdout=False)


def floor(mode: str, spec: Path) -> Child:
    argv = [sys.executable, "-m", "bench.floor", mode, str(spec)]
    return Child(f"floor ({mode})", argv, "ready", on_stdout=True)


async def start_profiler(pid: int, directory: Path | None, name: str) -> Profiler | None:
    """Attach py-spy to ``pid`` when profiling was asked for (``--profile DIR``)."""
    if directory is None:
        return None
    os.makedirs(directory, exist_ok=True)
    profiler = Profiler(pid, directory / f"{name}.txt")
    await profiler.start()
    return profiler


class Profiler:
    """``py-spy record`` attached to a child, writing collapsed stacks (optional)."""

    def __init__(self, pid: int, output: Path, rate: int = 250) -> None:
        self.output = output
        self.argv = [
            "py-spy", "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking",
            "--format", "raw", "--output", str(output),
        ]  # fmt: skip
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        await asyncio.sleep(0.3)  # let it attach

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
