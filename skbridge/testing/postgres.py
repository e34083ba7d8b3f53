"""A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, a cluster
made with ``initdb`` in a temporary directory, listening on 127.0.0.1 only.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster belongs to the
``postgres`` system user that Debian's package creates, and every server command runs
through ``runuser``. The directory is made outside pytest's (root-only) temp tree so that
user can reach it. Nothing here touches the system cluster or its service.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

SKIP_ENV = "SKBRIDGE_SKIP_POSTGRESQL"
"""Set to 1 to skip the PostgreSQL tests where no server binaries can be installed."""
SERVER_USER = "postgres"
"""Who runs the server when the tests run as root (Debian's package creates it)."""
ADMIN = "skbridge"
_databases = itertools.count(1)


class PostgresMissing(RuntimeError):
    """No ``initdb``: Debian's ``postgresql`` package is not installed."""


def _bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if not candidates:
        raise PostgresMissing(
            "initdb not found: install Debian's postgresql package "
            f"(apt-get install postgresql), or set {SKIP_ENV}=1 to skip these tests"
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One cluster: ``start``, ``stop`` (as an outage would), ``create_database``."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="skbridge-pg-"))
        self.data = self.root / "data"
        self.password = secrets.token_urlsafe(12)
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, SERVER_USER)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            shutil.chown(pwfile, SERVER_USER)
        self._run(
            "initdb", "-D", str(self.data), "-U", ADMIN, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> None:
        # Durability settings off: these clusters die with the test run.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300 -c shared_buffers=32MB"
        )
        log = self.root / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (an outage as clients see it); ``immediate`` crashes."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        secret = f":{quote(self.password, safe='')}" if password else ""
        return f"postgresql://{ADMIN}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL (password included)."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def skipped() -> bool:
    """Whether the PostgreSQL tests are to be skipped: only when told so, never silently."""
    return os.environ.get(SKIP_ENV, "") in ("1", "true", "yes")
