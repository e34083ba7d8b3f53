"""Opening the database, its pragmas, migrations, and the one writer.

SQLite runs in WAL mode with ``synchronous=FULL``: skbridge acknowledges work to Slack
and Telegram right after a commit, so a commit must survive power loss. Writes go
through one connection guarded by a lock (aiosqlite serialises statements, not
transactions); reads use a second connection and never see uncommitted work.

This module never swallows a database error: ``disk full``, ``locked`` and
``read-only`` become :class:`StoreUnavailable` so callers stop acknowledging work; a
damaged file becomes :class:`StoreUnusable`, and so does, at open, any file the daemon
cannot use as it is (:mod:`skbridge.store.files` says why, naming the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from skbridge.errors import (
    StoreError,
    StoreUnavailable,
    StoreUnusable,
    TooLate,
    Unstorable,
)
from skbridge.store import files
from skbridge.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
"""How long a write waits for another process's lock (without a deadline)."""
BUSY_SLICE_MS = 50
"""The writer's SQLite busy timeout: one slice of that wait, so a deadline can end it."""
_UNAVAILABLE = ("full", "locked", "readonly", "read-only", "disk i/o", "unable to open", "busy")

Row = sqlite3.Row

_UNBINDABLE = (UnicodeEncodeError, OverflowError)
"""What sqlite3 raises, outside ``sqlite3.Error``, for a parameter it cannot bind: text
that does not encode as UTF-8 (a lone surrogate), an integer past 64 bits. It becomes
:class:`Unstorable`, so the malformed input is parked instead of stopping the daemon."""


def translate(exc: sqlite3.Error) -> StoreError:
    """Map a sqlite3 error onto skbridge's tree: transient conditions are StoreUnavailable.

    A damaged file is StoreUnusable even in the middle of work: no retry mends it.
    """
    if damage := files.damaged(exc):
        return damage
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(w in text for w in _UNAVAILABLE):
        return StoreUnavailable(str(exc))
    return StoreError(str(exc))


def _unstorable(exc: Exception) -> Unstorable:
    return Unstorable(f"value cannot be stored: {exc}")


class Tx:
    """An open write transaction. Only valid inside ``Database.write()``.

    Each method is one trip to aiosqlite's thread: the write lock is held across every
    trip, so trips are what bound throughput.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the last inserted rowid."""
        try:
            row = await self._conn.execute_insert(sql, tuple(params))
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc
        return int(row[0]) if row else 0

    async def changes(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        try:
            cursor = await self._conn.execute(sql, tuple(params))
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc
        return cursor.rowcount  # a finished statement's cursor holds nothing open

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return next(iter(await self.all(sql, params)), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        try:
            return list(await self._conn.execute_fetchall(sql, tuple(params)))
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc


class Database:
    """The skbridge database: one writer, one reader, both on the same file."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating if needed) and migrate the database at ``path``.

        Raises StoreUnusable when the file needs the operator (damaged, empty, read-only,
        newer schema) and StoreUnavailable when waiting may help (locked, disk full).
        """
        try:
            files.refuse_empty(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            files.refuse_unwritable(path)
            writer = await _connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise _open_failed(path, exc) from exc
        try:
            await _migrate(writer, path)
            await writer.execute(f"PRAGMA busy_timeout = {BUSY_SLICE_MS}")
            reader = await _connect(path)
        except BaseException as exc:
            await _close_quietly(writer)
            if isinstance(exc, sqlite3.Error):
                raise _open_failed(path, exc) from exc
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        async with self._lock:
            await self._reader.close()
            await self._writer.close()

    @asynccontextmanager
    async def write(self, deadline: float | None = None) -> AsyncIterator[Tx]:
        """A write transaction (``BEGIN IMMEDIATE``), committed when the block ends.

        With a ``deadline`` (on the event loop's clock) the transaction is given up rather
        than committed late: :class:`TooLate` when the database stays busy until then, or
        when the work inside ends after it. Without one, a busy database is waited for
        ``BUSY_TIMEOUT_MS``.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                await self._lock.acquire()
        except TimeoutError:
            raise TooLate("the database was busy until the ack deadline") from None
        try:
            await self._begin(deadline)
            try:
                yield Tx(self._writer)
                if deadline is not None and loop.time() > deadline:
                    raise TooLate("the work ended after the ack deadline")
                await self._writer.commit()
            except BaseException as exc:
                await _rollback(self._writer)
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc) from exc
                raise
        finally:
            self._lock.release()

    async def _begin(self, deadline: float | None) -> None:
        """``BEGIN IMMEDIATE``, retried while another process holds the write lock.

        The writer's own busy timeout is short (``BUSY_SLICE_MS``), so the wait can end
        at a deadline rather than when SQLite's timer does.
        """
        loop = asyncio.get_running_loop()
        limit = loop.time() + BUSY_TIMEOUT_MS / 1000 if deadline is None else deadline
        while True:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.Error as exc:
                if not _busy(exc) or loop.time() >= limit:
                    error = translate(exc)
                    if deadline is not None and isinstance(error, StoreUnavailable):
                        raise TooLate(f"{exc} until the ack deadline") from exc
                    raise error from exc
            except asyncio.CancelledError:
                # BEGIN still runs in aiosqlite's thread: undo it there, right after it.
                await _discard(self._writer)
                raise

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """Read one row from committed state."""
        try:
            rows = await self._reader.execute_fetchall(sql, tuple(params))
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc
        return next(iter(rows), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Read rows from committed state."""
        try:
            return list(await self._reader.execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc

    async def backup_to(self, dest: Path) -> None:
        """A consistent online copy (``VACUUM INTO``), safe while the daemon runs."""
        try:
            await self._reader.execute("VACUUM INTO ?", (str(dest),))
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def integrity_check(self) -> str:
        row = await self.one("PRAGMA integrity_check")
        return str(row[0]) if row else "no answer"


def _busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _open_failed(path: Path, exc: sqlite3.Error | OSError) -> StoreError:
    """What ``open`` raises: about the file itself when it is, and always naming it."""
    if found := files.opening_error(path, exc):
        return found
    if isinstance(exc, OSError):
        return StoreUnavailable(f"cannot open {path}: {exc.strerror}")
    if isinstance(translate(exc), StoreUnavailable):
        return StoreUnavailable(f"cannot open {path}: {exc}")
    return StoreError(f"cannot open {path}: {exc}")


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        # The connection's worker thread is not a daemon thread: left open, it keeps the
        # process alive after the error has been reported.
        await _close_quietly(conn)
        raise
    return conn


async def _discard(conn: aiosqlite.Connection) -> None:
    """Roll back a transaction that may or may not have begun."""
    with contextlib.suppress(sqlite3.OperationalError):  # it had not: nothing to undo
        await conn.execute("ROLLBACK")


async def _close_quietly(conn: aiosqlite.Connection) -> None:
    """Close after a failure: the failure, not the close, is what the caller must hear."""
    with contextlib.suppress(sqlite3.Error):
        await conn.close()


async def _rollback(conn: aiosqlite.Connection) -> None:
    if not conn.in_transaction:
        return  # SQLite already rolled back (e.g. on SQLITE_FULL)
    try:
        await conn.rollback()
    except sqlite3.Error:
        log.exception("rollback failed")


async def _migrate(conn: aiosqlite.Connection, path: Path) -> None:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    current = int(row[0]) if row else 0
    if current > len(MIGRATIONS):
        raise StoreUnusable(
            f"schema version {current} is newer than this skbridge ({len(MIGRATIONS)})",
            "upgrade skbridge, or restore a copy made by `skbridge backup`",
            path,
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[version - 1]):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {version}")
            await conn.commit()
        except BaseException:
            await _rollback(conn)
            raise
        log.info("database migrated", extra={"version": version})


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise StoreError(f"incomplete statement in migration: {buffer.strip()[:60]}")
    return statements
