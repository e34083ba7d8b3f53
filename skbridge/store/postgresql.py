"""The PostgreSQL engine: a server several skbridge instances share.

Driver: psycopg 3, its asyncio API and its pool (psycopg_pool). Chosen over asyncpg
because it adapts parameters the way the engine-neutral queries expect (text sent
untyped, so the server infers it; ``None`` anywhere), maps every SQLSTATE onto a named
exception class, and its pool replaces connections the server dropped on its own, so
an outage needs no reconnection code here. Connections run in autocommit; this module
says ``BEGIN`` and ``COMMIT`` itself, as the SQLite engine does.

Write transactions run side by side, on connections of the pool, within one instance
as between instances: the queries are written for that (``ON CONFLICT`` for
everything two writers may insert at once, conditional updates where two may change
one row), and PostgreSQL's row locks order the rest. A deadlock or serialisation
failure is :class:`StoreUnavailable`, retried like any outage.

Everything particular to PostgreSQL lives here: ``?`` placeholders translated once
per statement, how psycopg's errors map onto :mod:`skbridge.errors` (a lost or
refused connection, a deadlock, a full disk: :class:`StoreUnavailable`; a value the
server cannot take, such as text holding NUL: :class:`Unstorable`), and migrations
recorded in ``skbridge_schema``, run under an advisory lock so instances
starting together migrate once. Backups are ``pg_dump``'s job.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from skbridge.errors import StoreError, StoreUnavailable, StoreUnusable, TooLate, Unstorable
from skbridge.store import Reader, Row
from skbridge.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for the server to answer a new connection, or for a free one."""
POOL_SIZE = 6
IDLE_IN_TRANSACTION = "5s"
"""The server ends a session that leaves a transaction open this long. skbridge never
waits on anything but the database inside a transaction, so only an instance that
stalled or died mid-transaction (paused, cut off, powered off) is ended, and the rows
it had locked (a lease, a pacing slot) are free again well before its leases expire."""
MIGRATION_LOCK = 0x736B62726964
"""The advisory lock key migrations run under (``skbrid`` in ASCII)."""
_INT64 = range(-(2**63), 2**63)
_savepoints = itertools.count()
_UNBINDABLE = (UnicodeEncodeError, OverflowError, psycopg.DataError)
"""Parameters the server (or psycopg, before sending) refuses: text that is not UTF-8 or
holds NUL, numbers out of range. The input holding them is malformed: Unstorable."""
_GONE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, OSError)
"""Connection refused or lost, the server shutting down, a deadlock or serialisation
failure, a full disk (class 53): waiting may help."""
_DAMAGE = (pg.DataCorrupted, pg.IndexCorrupted)
RESTORE = "restore from a pg_dump backup, or see the server's log"


@functools.lru_cache(maxsize=2048)
def translate_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled), outside quotes."""
    out: list[str] = []
    for part in re.split(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")", sql):
        if part[:1] in ("'", '"'):
            out.append(part.replace("%", "%%"))
        else:
            out.append(part.replace("%", "%%").replace("?", "%s"))
    return "".join(out)


def _params(params: Iterable[Any]) -> tuple[Any, ...]:
    values = tuple(params)
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
            raise Unstorable(f"value cannot be stored: integer {value} is past 64 bits")
    return values


def translate(exc: BaseException) -> StoreError:
    """Map a driver error onto skbridge's tree."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, _UNBINDABLE):
        return Unstorable(f"value cannot be stored: {exc}")
    if isinstance(exc, _DAMAGE):
        return StoreUnusable(f"the database reports damage ({exc})", RESTORE)
    if isinstance(exc, pg.IdleInTransactionSessionTimeout):
        return StoreUnavailable(f"the server ended a transaction left open too long: {exc}")
    if isinstance(exc, pg.ReadOnlySqlTransaction):
        return StoreUnavailable(f"the server takes no writes: {exc}")
    if isinstance(exc, _GONE):
        return StoreUnavailable(_first_line(exc) or type(exc).__name__)
    return StoreError(_first_line(exc))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""


def masked(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class _Reads:
    """Reads on one connection (inside a transaction), errors translated."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return next(iter(await self.all(sql, params)), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        try:
            cursor = await self._conn.execute(translate_sql(sql), _params(params))
            return list(await cursor.fetchall()) if cursor.description else []
        except (psycopg.Error, *_UNBINDABLE, *_GONE) as exc:
            raise translate(exc) from exc


class PostgresTx(_Reads):
    """An open write transaction. Only valid inside ``PostgresStore.write()``."""

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        try:
            cursor = await self._conn.execute(translate_sql(sql), _params(params))
        except (psycopg.Error, *_UNBINDABLE, *_GONE) as exc:
            raise translate(exc) from exc
        return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Each row's statement is answered before the next goes out.

        psycopg's ``executemany`` pipelines them, and a client that stalls mid-pipeline
        (stopped, or its machine gone) keeps its locks with no time limit: the server
        waits for the rest of the batch and is not "idle in transaction", so the
        timeout that frees a stalled instance's locks never starts.
        """
        query = translate_sql(sql)
        try:
            async with self._conn.cursor() as cursor:
                for row in rows:
                    await cursor.execute(query, _params(row))
        except (psycopg.Error, *_UNBINDABLE, *_GONE) as exc:
            raise translate(exc) from exc

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        name = f"s{next(_savepoints)}"
        await self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            await self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            await self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        await self.execute(f"RELEASE SAVEPOINT {name}")


class PostgresStore:
    """The skbridge database on a PostgreSQL server, through a small pool."""

    shared = True
    """Several instances may use it at once (leases decide who does what)."""

    def __init__(self, url: str, pool: AsyncConnectionPool[Any], read_only: bool) -> None:
        self.url = url
        self.where = masked(url)
        self._pool = pool
        self._read_only = read_only

    @classmethod
    async def open(cls, url: str, *, read_only: bool = False) -> PostgresStore:
        """Connect, then (unless ``read_only``) migrate under the advisory lock.

        Raises StoreUnavailable while the server cannot be reached (the caller retries),
        StoreUnusable when only the operator can help (wrong password, no such database,
        a newer schema).
        """
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={
                "autocommit": True,
                "connect_timeout": int(CONNECT_TIMEOUT),
                "application_name": "skbridge",
            },
            configure=_configure,
            timeout=CONNECT_TIMEOUT,
            # Give up on a dead server soon: a later request starts a fresh attempt at
            # once, instead of waiting out a long backoff after the server is back.
            reconnect_timeout=CONNECT_TIMEOUT,
            open=False,
            name="skbridge",
        )
        where = masked(url)
        try:
            # Connect once by hand first: the pool would only log why it cannot.
            probe = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)
            )
            await probe.close()
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
            store = cls(url, pool, read_only)
            if read_only:
                await store._require_schema()
            else:
                await store._migrate()
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, (psycopg.Error, *_GONE)):
                raise _open_failed(where, exc) from exc
            raise
        return store

    async def close(self) -> None:
        await self._pool.close()

    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return next(iter(await self.all(sql, params)), None)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        try:
            async with self._pool.connection() as conn:
                return await _Reads(conn).all(sql, params)
        except (psycopg.Error, *_GONE) as exc:
            raise translate(exc) from exc

    @asynccontextmanager
    async def write(self, deadline: float | None = None) -> AsyncIterator[PostgresTx]:
        """A write transaction, committed when the block ends.

        With a ``deadline`` (event loop clock) the transaction is given up rather than
        committed late: :class:`TooLate` when no connection or turn comes in time, or
        the work inside ends after it.
        """
        if self._read_only:
            raise StoreError(f"{self.where} is open read-only")
        loop = asyncio.get_running_loop()
        timeout = CONNECT_TIMEOUT if deadline is None else max(0.0, deadline - loop.time())
        try:
            conn = await self._pool.getconn(timeout=timeout)
        except PoolTimeout as exc:
            if deadline is not None:
                raise TooLate("no database connection until the ack deadline") from exc
            raise StoreUnavailable(f"no connection to {self.where}") from exc
        try:
            tx = PostgresTx(conn)
            await tx.execute("BEGIN")
            try:
                yield tx
                if deadline is not None and loop.time() > deadline:
                    raise TooLate("the work ended after the ack deadline")
                await tx.execute("COMMIT")
            except BaseException:
                await _rollback(conn)
                raise
        finally:
            await self._pool.putconn(conn)

    async def write_one(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Autocommit on a connection of its own: no turn behind this instance's writes,
        and ``synchronous_commit`` off (the row is worth nothing after a crash)."""
        if self._read_only:
            raise StoreError(f"{self.where} is open read-only")
        try:
            async with self._pool.connection() as conn:
                reads = _Reads(conn)
                await reads.all("BEGIN")
                try:
                    await reads.all("SET LOCAL synchronous_commit = off")
                    rows = await reads.all(sql, params)
                    await reads.all("COMMIT")
                except BaseException:
                    await _rollback(conn)
                    raise
                return rows
        except (psycopg.Error, *_GONE) as exc:
            raise translate(exc) from exc

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Reader]:
        """One ``REPEATABLE READ`` read-only transaction: every figure from one state."""
        try:
            async with self._pool.connection() as conn:
                reads = _Reads(conn)
                await reads.all("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    yield reads
                finally:
                    await conn.execute("ROLLBACK")
        except (psycopg.Error, *_GONE) as exc:
            raise translate(exc) from exc

    async def schema_version(self) -> int:
        row = await self.one("SELECT coalesce(max(version), 0) FROM skbridge_schema")
        return int(row[0]) if row else 0

    async def integrity_check(self) -> str:
        """PostgreSQL checks pages itself; this reads every table through, so damage that
        no query has met yet shows, and confirms the schema is whole."""
        version = await self.schema_version()
        if version != len(MIGRATIONS):
            return f"schema {version}, expected {len(MIGRATIONS)}"
        tables = await self.all(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        for (table,) in tables:
            await self.one(f'SELECT count(*) FROM "{table}"')
        return "ok"

    async def backup_to(self, dest: Path) -> None:
        raise StoreError(backup_advice(self.where, dest))

    async def _require_schema(self) -> None:
        row = await self.one("SELECT to_regclass('skbridge_schema') IS NOT NULL")
        if not row or not row[0]:
            raise StoreError(f"{self.where} is not an skbridge database (no schema)")

    async def _migrate(self) -> None:
        """Bring the schema up to date, once however many instances start together."""
        async with self.write() as tx:
            # Held until commit: an instance starting alongside waits here, then finds
            # the work done.
            await tx.one("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS skbridge_schema ("
                "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            row = await tx.one("SELECT coalesce(max(version), 0) FROM skbridge_schema")
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise StoreUnusable(
                    f"{self.where} has schema version {current}, newer than this skbridge "
                    f"({len(MIGRATIONS)})",
                    "upgrade skbridge on this machine too (new code first on every "
                    "instance), or restore a pg_dump backup",
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                await tx.execute(MIGRATIONS[version - 1].postgresql)
                await tx.execute("INSERT INTO skbridge_schema (version) VALUES (?)", (version,))
                log.info("database migrated", extra={"version": version})


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'")


async def _rollback(conn: psycopg.AsyncConnection[Any]) -> None:
    """Undo an open transaction; a connection that broke has nothing left to undo."""
    if conn.broken or conn.closed:
        return
    try:
        await conn.execute("ROLLBACK")
    except psycopg.Error:
        log.exception("rollback failed")


def backup_advice(where: str, dest: Path) -> str:
    """What ``skbridge backup`` says on PostgreSQL: the server's own tool does it."""
    return (
        f"backups of {where} are made with pg_dump, not skbridge: "
        f"pg_dump --format=custom --file={dest} '{where}' "
        "(password from PGPASSWORD or ~/.pgpass; restore with pg_restore)"
    )


def _open_failed(where: str, exc: BaseException) -> StoreError:
    if isinstance(exc, (pg.InvalidPassword, pg.InvalidAuthorizationSpecification)):
        return StoreUnusable(
            f"{where} refused the login ({_first_line(exc)})",
            "check store.url's user and the password (SKBRIDGE_STORE__PASSWORD or the "
            "store__password credential)",
        )
    if isinstance(exc, pg.InvalidCatalogName):
        return StoreUnusable(
            f"{where}: {_first_line(exc)}", "create it first: createdb -O <user> <database>"
        )
    text = str(exc)
    if "password authentication failed" in text or "no password supplied" in text:
        return StoreUnusable(
            f"{where} refused the login (password authentication failed)",
            "check store.url's user and the password (SKBRIDGE_STORE__PASSWORD or the "
            "store__password credential)",
        )
    if "does not exist" in text and "database" in text:
        return StoreUnusable(
            f"{where}: {_first_line(exc)}", "create it first: createdb -O <user> <database>"
        )
    error = translate(exc)
    if isinstance(error, StoreUnavailable):
        return StoreUnavailable(f"cannot reach {where}: {_first_line(exc)}")
    return StoreError(f"cannot open {where}: {error}")


async def open_url(url: str, read_only: bool) -> PostgresStore:
    """The engine's entry point (:func:`skbridge.store.open_store`)."""
    return await PostgresStore.open(url, read_only=read_only)


async def check(url: str) -> tuple[bool, str, str]:
    """For ``skbridge check``: whether the daemon can use the server (ok, what, what to do)."""
    where = masked(url)
    try:
        store = await PostgresStore.open(url, read_only=True)
    except StoreUnusable as exc:
        return False, exc.problem, exc.advice
    except StoreUnavailable as exc:
        return False, str(exc), "is the server running and reachable from here?"
    except StoreError as exc:
        if "no schema" in str(exc):
            return True, f"{where} answers (empty: the daemon creates the schema)", ""
        return False, str(exc), "check store.url"
    try:
        version = await store.schema_version()
    finally:
        await store.close()
    if version > len(MIGRATIONS):
        newer = f"{where} has schema {version}, newer than this skbridge ({len(MIGRATIONS)})"
        return False, newer, "upgrade skbridge"
    return True, f"{where} answers (schema {version} of {len(MIGRATIONS)})", ""
