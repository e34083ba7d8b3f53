"""The SQLite engine: one file, WAL, one writer, one reader and one thread.

SQLite runs in WAL mode with ``synchronous=FULL``: skbridge acknowledges work to Slack
and Telegram right after a commit, so a commit must survive power loss. Writes go
through one connection guarded by a lock (one transaction at a time); reads use a
second connection and never see uncommitted work. A read-only store (the operator
commands, beside the daemon) opens only a ``mode=ro`` reader, which can never write and
never creates a file.

Statements run on the event loop, with the standard library's ``sqlite3``: a statement
on a small database in memory takes microseconds, less than the hop to a thread and
back, and in WAL mode no read waits for the writer. What can take long runs in the
store's one thread: each commit (its fsync), opening and migrating, backups and full
checks. So a write transaction costs one trip to the thread however many statements it
holds, and the writer never lets SQLite wait on the loop: its busy timeout is 0, and
``BEGIN IMMEDIATE`` is retried here while another process holds the write lock.

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
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from skbridge.errors import StoreError, StoreUnavailable, StoreUnusable, TooLate, Unstorable
from skbridge.store import Reader, Row
from skbridge.store import sqlite_files as files
from skbridge.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
"""How long a write waits for another process's lock (without a deadline)."""
BUSY_SLICE_MS = 50
"""The longest pause between two tries for the write lock."""
BUSY_FIRST_PAUSE = 0.001
_UNAVAILABLE = ("full", "locked", "readonly", "read-only", "disk i/o", "unable to open", "busy")

_UNBINDABLE = (UnicodeEncodeError, OverflowError)
"""What sqlite3 raises, outside ``sqlite3.Error``, for a parameter it cannot bind: text
that does not encode as UTF-8 (a lone surrogate), an integer past 64 bits. It becomes
:class:`Unstorable`, so the malformed input is parked instead of stopping the daemon."""

_savepoints = itertools.count()
T = TypeVar("T")


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

    Statements run right here, on the event loop: each takes microseconds (the pages are
    in memory, and the transaction already holds the write lock, so nothing waits).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        try:
            return self._conn.execute(sql, tuple(params)).rowcount
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, [tuple(r) for r in rows])
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return next(iter(await self.all(sql, params)), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        name = f"s{next(_savepoints)}"
        self._conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._conn.execute(f"ROLLBACK TO {name}")
            self._conn.execute(f"RELEASE {name}")
            raise
        self._conn.execute(f"RELEASE {name}")


class _Reads:
    """Reads on one connection, their errors translated (a damaged file named).

    In WAL mode a read never waits for the writer: it runs on the event loop too.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return next(iter(await self.all(sql, params)), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self._path) from exc
        except _UNBINDABLE as exc:
            raise _unstorable(exc) from exc


class SqliteStore(_Reads):
    """The skbridge database in one SQLite file: one writer, one reader, one thread.

    The thread does what may take long: opening and migrating, each commit (its fsync),
    backups and full checks. A write transaction is therefore one trip to the thread,
    however many statements it holds.
    """

    shared = False
    """One machine, one instance: a lease an earlier run left is that run's, now over."""

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection | None,
        reader: sqlite3.Connection,
        thread: ThreadPoolExecutor,
    ) -> None:
        super().__init__(reader, path)
        self.path = path
        self.where = str(path)
        self._writer = writer
        self._reader = reader
        self._thread = thread
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating if needed) and migrate the database at ``path``.

        Raises StoreUnusable when the file needs the operator (damaged, empty, read-only,
        newer schema) and StoreUnavailable when waiting may help (locked, disk full).
        """
        thread = _thread()
        try:
            writer, reader = await _in(thread, _open_sync, path)
        except BaseException:
            thread.shutdown(wait=True)
            raise
        return cls(path, writer, reader, thread)

    @classmethod
    async def open_read_only(cls, path: Path) -> SqliteStore:
        """Open an existing database to read; a missing file is a StoreError, not a new file.

        SQLite's ``mode=ro`` URI: the connection can never write. In WAL mode it sees
        only committed work and never blocks the daemon's writer.
        """
        thread = _thread()
        try:
            reader = await _in(thread, _open_read_only_sync, path)
        except BaseException:
            thread.shutdown(wait=True)
            raise
        return cls(path, None, reader, thread)

    async def close(self) -> None:
        async with self._lock:
            self._reader.close()
            if self._writer is not None:
                self._writer.close()
            self._thread.shutdown(wait=True)

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
                await _in(self._thread, writer.execute, "COMMIT")
            except BaseException as exc:
                _rollback(writer)
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
                    self._reader.execute("ROLLBACK")
                raise
            await reads.all("COMMIT")

    async def schema_version(self) -> int:
        row = await self.one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def integrity_check(self) -> str:
        return await self._check("integrity_check")

    async def quick_check(self) -> str:
        """SQLite's ``quick_check``: reads every page, so damage no query has met shows."""
        return await self._check("quick_check")

    async def _check(self, pragma: str) -> str:
        """A check reads every page: in the thread, on a connection of its own, so the
        reads on the event loop never wait for it."""

        def check() -> str:
            with contextlib.closing(
                _connect(_read_only_uri(self.path), uri=True, pragmas=False)
            ) as c:
                rows = c.execute(f"PRAGMA {pragma}").fetchall()
            return "; ".join(str(r[0]) for r in rows) or "no answer"

        try:
            return await _in(self._thread, check)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    async def backup_to(self, dest: Path) -> None:
        """A consistent online copy (``VACUUM INTO``: one read transaction), fsynced."""
        await _in(self._thread, _backup_sync, self.path, dest)


def _thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="skbridge-sqlite")


async def _in(thread: ThreadPoolExecutor, work: Callable[..., T], *args: Any) -> T:
    """Run ``work`` in the store's thread. Cancelled meanwhile, it still waits for the
    work to end (a commit cannot be called back), then passes the cancellation on."""
    future = asyncio.get_running_loop().run_in_executor(thread, work, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        raise


def _open_sync(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    try:
        files.refuse_empty(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        files.refuse_unwritable(path)
        writer = _connect(path)
    except (sqlite3.Error, OSError) as exc:
        raise _open_failed(path, exc) from exc
    try:
        _migrate(writer, path)
        writer.execute("PRAGMA busy_timeout = 0")  # the event loop never waits in SQLite
        reader = _connect(path)
    except BaseException as exc:
        writer.close()
        if isinstance(exc, sqlite3.Error):
            raise _open_failed(path, exc) from exc
        raise
    return writer, reader


def _open_read_only_sync(path: Path) -> sqlite3.Connection:
    uri = _read_only_uri(path)
    try:
        reader = _connect(uri, uri=True, pragmas=False)
    except sqlite3.Error as exc:
        raise files.reading_error(path, exc) from exc
    try:
        rows = reader.execute("PRAGMA user_version").fetchall()
    except BaseException as exc:
        reader.close()
        if isinstance(exc, sqlite3.Error):
            raise files.reading_error(path, exc) from exc
        raise
    if not next(iter(rows), (0,))[0]:
        reader.close()
        raise StoreError(f"{path} is not an skbridge database (no schema)")
    return reader


def _backup_sync(source: Path, dest: Path) -> None:
    try:
        with contextlib.closing(_connect(_read_only_uri(source), uri=True, pragmas=False)) as conn:
            conn.execute("VACUUM INTO ?", (str(dest),))
    except sqlite3.Error as exc:
        if "already exists" not in str(exc):
            _unlink(dest)  # a partial copy, e.g. on a full disk
        if damage := files.damaged(exc):  # read from the source: nothing to copy
            raise damage.at(source) from exc
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


async def _begin(writer: sqlite3.Connection, deadline: float | None) -> None:
    """``BEGIN IMMEDIATE``, retried while another process holds the write lock.

    The writer's busy timeout is 0, so SQLite never waits on the event loop; the wait
    happens here, between tries, and can end at a deadline.
    """
    loop = asyncio.get_running_loop()
    limit = loop.time() + BUSY_TIMEOUT_MS / 1000 if deadline is None else deadline
    pause = BUSY_FIRST_PAUSE
    while True:
        try:
            writer.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.Error as exc:
            if not _busy(exc) or loop.time() >= limit:
                error = translate(exc)
                if deadline is not None and isinstance(error, StoreUnavailable):
                    raise TooLate(f"{exc} until the ack deadline") from exc
                raise error from exc
        await asyncio.sleep(min(pause, max(0.0, limit - loop.time())))
        pause = min(pause * 2, BUSY_SLICE_MS / 1000)


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


def _connect(where: Path | str, *, uri: bool = False, pragmas: bool = True) -> sqlite3.Connection:
    """A connection any thread may use (one at a time: the store's lock sees to it)."""
    conn = sqlite3.connect(where, uri=uri, isolation_level=None, check_same_thread=False)
    try:
        conn.create_function("skbridge_now", 0, _now)
        if pragmas:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _rollback(conn: sqlite3.Connection) -> None:
    if not conn.in_transaction:
        return  # SQLite already rolled back (e.g. on SQLITE_FULL), or never began
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.exception("rollback failed")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    row = conn.execute("PRAGMA user_version").fetchone()
    current = int(row[0]) if row else 0
    if current > len(MIGRATIONS):
        raise StoreUnusable(
            f"schema version {current} is newer than this skbridge ({len(MIGRATIONS)})",
            "upgrade skbridge, or restore a copy made by `skbridge backup`",
            path,
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[version - 1].sqlite):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
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
