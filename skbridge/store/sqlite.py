"""The SQLite engine: one file, opened with aiosqlite, WAL, one writer and one reader.

SQLite runs in WAL mode with ``synchronous=FULL``: skbridge acknowledges work to Slack
and Telegram right after a commit, so a commit must survive power loss. Writes go
through one connection guarded by a lock (aiosqlite serialises statements, not
transactions); reads use a second connection and never see uncommitted work. A
read-only store (the operator commands, beside the daemon) opens only a ``mode=ro``
reader, which can never write and never creates a file.

Everything particular to SQLite lives here: pragmas, how its errors map onto
:mod:`skbridge.errors` (``disk full``, ``locked`` and ``read-only`` become
:class:`StoreUnavailable` so callers stop acknowledging work; a damaged file, or at open
any file the daemon cannot use as it is, becomes :class:`StoreUnusable`, explained by
:mod:`skbridge.store.sqlite_files`), migrations recorded in ``PRAGMA user_version``,
and backups with ``VACUUM INTO``. It never swallows a database error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from skbridge.errors import StoreError, StoreUnavailable, StoreUnusable, TooLate, Unstorable
from skbridge.store import Reader, Row
from skbridge.store import sqlite_files as files
from skbridge.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
"""How long a write waits for another process's lock (without a deadline)."""
BUSY_SLICE_MS = 50
"""The writer's SQLite busy timeout: one slice of that wait, so a deadline can end it."""
_UNAVAILABLE = ("full", "locked", "readonly", "read-only", "disk i/o", "unable to open", "busy")

_UNBINDABLE = (UnicodeEncodeError, OverflowError)
"""What sqlite3 raises, outside ``sqlite3.Error``, for a parameter it cannot bind: text
that does not encode as UTF-8 (a lone surrogate), an integer past 64 bits. It becomes
:class:`Unstorable`, so the malformed input is parked instead of stopping the daemon."""

_savepoints = itertools.count()


def translate(exc: sqlite3.Error, path: Path | None = None) -> StoreError:
    """Map a sqlite3 error onto skbridge's tree: transient conditions are StoreUnavailable.

    A damaged file is StoreUnusable even in the middle of work (no retry mends it), and
    names ``path`` when it is known.
    """
    if damage := files.damaged(exc):
        return damage.at(path) if path else damage
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(w in text for w in _UNAVAILABLE):
        return StoreUnavailable(str(exc))
    return StoreError(str(exc))


def _unstorable(exc: Exception) -> Unstorable:
    return Unstorable(f"value cannot be stored: {exc}")


class SqliteTx:
    """An open write transaction. Only valid inside ``SqliteStore.write()``.

    Each method is one trip to aiosqlite's thread: the write lock is held across every
    trip, so trips are what bound throughput.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        try:
            cursor = await self._conn.execute(sql, tuple(params))
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc
        return cursor.rowcount  # a finished statement's cursor holds nothing open

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(sql, [tuple(r) for r in rows])
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return next(iter(await self.all(sql, params)), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        try:
            return list(await self._conn.execute_fetchall(sql, tuple(params)))
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        name = f"s{next(_savepoints)}"
        await self._conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            await self._conn.execute(f"ROLLBACK TO {name}")
            await self._conn.execute(f"RELEASE {name}")
            raise
        await self._conn.execute(f"RELEASE {name}")


class _Reads:
    """Reads on one connection, their errors translated (a damaged file named)."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return next(iter(await self.all(sql, params)), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        try:
            return list(await self._conn.execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise translate(exc, self._path) from exc
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc


class SqliteStore(_Reads):
    """The skbridge database in one SQLite file: one writer, one reader."""

    shared = False
    """One machine, one instance: a lease an earlier run left is that run's, now over."""

    def __init__(
        self, path: Path, writer: aiosqlite.Connection | None, reader: aiosqlite.Connection
    ) -> None:
        super().__init__(reader, path)
        self.path = path
        self.where = str(path)
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
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

    @classmethod
    async def open_read_only(cls, path: Path) -> SqliteStore:
        """Open an existing database to read; a missing file is a StoreError, not a new file.

        SQLite's ``mode=ro`` URI: the connection can never write. In WAL mode it sees
        only committed work and never blocks the daemon's writer.
        """
        uri = _read_only_uri(path)
        try:
            reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise files.reading_error(path, exc) from exc
        try:
            await reader.create_function("skbridge_now", 0, _now)
            rows = await reader.execute_fetchall("PRAGMA user_version")
        except BaseException as exc:
            await _close_quietly(reader)
            if isinstance(exc, sqlite3.Error):
                raise files.reading_error(path, exc) from exc
            raise
        if not next(iter(rows), (0,))[0]:
            await _close_quietly(reader)
            raise StoreError(f"{path} is not an skbridge database (no schema)")
        return cls(path, None, reader)

    async def close(self) -> None:
        async with self._lock:
            await self._reader.close()
            if self._writer is not None:
                await self._writer.close()

    @asynccontextmanager
    async def write(self, deadline: float | None = None) -> AsyncIterator[SqliteTx]:
        """A write transaction (``BEGIN IMMEDIATE``), committed when the block ends.

        With a ``deadline`` (on the event loop's clock) the transaction is given up rather
        than committed late: :class:`TooLate` when the database stays busy until then, or
        when the work inside ends after it. Without one, a busy database is waited for
        ``BUSY_TIMEOUT_MS``.
        """
        writer = self._writer
        if writer is None:
            raise StoreError(f"{self.path} is open read-only")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                await self._lock.acquire()
        except TimeoutError:
            raise TooLate("the database was busy until the ack deadline") from None
        try:
            await _begin(writer, deadline)
            try:
                yield SqliteTx(writer)
                if deadline is not None and loop.time() > deadline:
                    raise TooLate("the work ended after the ack deadline")
                await writer.commit()
            except BaseException as exc:
                await _rollback(writer)
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc, self.path) from exc
                raise
        finally:
            self._lock.release()

    async def write_one(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self.write() as tx:
            return await tx.all(sql, params)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Reader]:
        """One read transaction on the reader: every figure from one committed state."""
        async with self._lock:
            reads = _Reads(self._reader, self.path)
            await reads.all("BEGIN")
            try:
                yield reads
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # the failure is what to report
                    await self._reader.execute("ROLLBACK")
                raise
            await reads.all("COMMIT")

    async def schema_version(self) -> int:
        row = await self.one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def integrity_check(self) -> str:
        rows = await self.all("PRAGMA integrity_check")
        return "; ".join(str(r[0]) for r in rows) or "no answer"

    async def quick_check(self) -> str:
        """SQLite's ``quick_check``: reads every page, so damage no query has met shows."""
        rows = await self.all("PRAGMA quick_check")
        return "; ".join(str(r[0]) for r in rows) or "no answer"

    async def backup_to(self, dest: Path) -> None:
        """A consistent online copy (``VACUUM INTO``: one read transaction), fsynced."""
        try:
            await self._reader.execute("VACUUM INTO ?", (str(dest),))
        except sqlite3.Error as exc:
            if "already exists" not in str(exc):
                _unlink(dest)  # a partial copy, e.g. on a full disk
            if damage := files.damaged(exc):  # read from the source: nothing to copy
                raise damage.at(self.path) from exc
            raise StoreError(f"backup to {dest} failed: {exc}") from exc
        _fsync(dest)
        _fsync(dest.parent)


def _read_only_uri(path: Path) -> str:
    """``mode=ro`` for an existing, non-empty file; anything else is refused first."""
    if not path.is_file():
        raise StoreError(
            f"no database at {path} (the daemon creates it on its first start; "
            "is store.path right?)"
        )
    files.refuse_empty(path)
    return f"{path.resolve().as_uri()}?mode=ro"


def path_of(url: str) -> Path:
    """The file of ``sqlite:///abs/path.db`` (or ``sqlite://relative.db``)."""
    return Path(url.partition("://")[2])


async def open_url(url: str, read_only: bool) -> SqliteStore:
    """The engine's entry point (:func:`skbridge.store.open_store`)."""
    if read_only:
        return await SqliteStore.open_read_only(path_of(url))
    return await SqliteStore.open(path_of(url))


async def check(url: str) -> tuple[bool, str, str]:
    """For ``skbridge check``: whether the daemon can use the file (ok, what, what to do)."""
    path = path_of(url)
    if not path.exists():
        return check_file(path)
    try:
        store = await SqliteStore.open_read_only(path)
        try:
            version = await store.schema_version()
            found = await store.quick_check()
        finally:
            await store.close()
    except StoreUnusable as exc:
        return False, f"{path}: {exc.problem}", exc.advice
    except StoreError as exc:
        return False, str(exc), "check store.path and its permissions"
    if found != "ok":
        return False, f"{path}: damaged ({found[:200]})", files.RESTORE
    if version > len(MIGRATIONS):
        newer = f"{path} has schema {version}, newer than this skbridge ({len(MIGRATIONS)})"
        return False, newer, "upgrade skbridge, or restore a backup"
    usable, problem, fix = check_file(path)
    if not usable:
        return usable, problem, fix
    return True, f"{path} opens (schema {version} of {len(MIGRATIONS)})", ""


def check_file(path: Path) -> tuple[bool, str, str]:
    """Before opening: whether the daemon could use ``path`` (ok, what, what to do)."""
    if path.exists():
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            return (
                False,
                f"{path} or its directory is not writable by this user",
                "the daemon writes the file and its -wal/-shm files beside it",
            )
        return True, str(path), ""
    existing = next(p for p in path.parents if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return (
            False,
            f"{path} does not exist and {existing} is not writable by this user",
            "create the directory for the daemon's user, or change store.path",
        )
    return True, f"{path} will be created at start", ""


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Make a copy durable before saying it was written (a directory too: its entry)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _begin(writer: aiosqlite.Connection, deadline: float | None) -> None:
    """``BEGIN IMMEDIATE``, retried while another process holds the write lock.

    The writer's own busy timeout is short (``BUSY_SLICE_MS``), so the wait can end at a
    deadline rather than when SQLite's timer does.
    """
    loop = asyncio.get_running_loop()
    limit = loop.time() + BUSY_TIMEOUT_MS / 1000 if deadline is None else deadline
    while True:
        try:
            await writer.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.Error as exc:
            if not _busy(exc) or loop.time() >= limit:
                error = translate(exc)
                if deadline is not None and isinstance(error, StoreUnavailable):
                    raise TooLate(f"{exc} until the ack deadline") from exc
                raise error from exc
        except asyncio.CancelledError:
            # BEGIN still runs in aiosqlite's thread: undo it there, right after it.
            await _discard(writer)
            raise


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


def _now() -> float:
    """``skbridge_now()``: the database's clock, which for a local file is this machine's."""
    return time.time()


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.create_function("skbridge_now", 0, _now)
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
            for statement in _statements(MIGRATIONS[version - 1].sqlite):
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
