"""All state, behind one small interface; this package is the only code that speaks SQL.

A :class:`Store` is opened from a URL (``sqlite:///var/lib/skbridge/skbridge.db``,
``postgresql://skbridge@db.internal/skbridge``); the
engine for its scheme (:data:`ENGINES`) owns everything particular to one database:
connections, pragmas, how its errors map onto :mod:`skbridge.errors`, how migrations
are recorded, backups. The typed queries of :mod:`~skbridge.store.queries` and
:mod:`~skbridge.store.report` are written once, against :class:`Tx` and
:class:`Reader`, in SQL every engine runs (``?`` placeholders, ``RETURNING``, and
``skbridge_now()``: the database's clock, in seconds since the epoch).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

Row = Sequence[Any]
"""A result row, read by position."""


class Reader(Protocol):
    async def one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row of a query, if any."""

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query."""


class Tx(Reader, Protocol):
    """An open write transaction; only valid inside :meth:`Store.write`."""

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns how many rows it changed."""

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested unit of work: an exception leaving it undoes only its statements."""


class Store(Reader, Protocol):
    """The database: reads from committed state, and write transactions."""

    where: str
    """What to call it in messages: the file, or the server without its password."""
    shared: bool
    """Whether other instances, on other machines, may use it at the same time."""

    def write(self, deadline: float | None = None) -> AbstractAsyncContextManager[Tx]:
        """A write transaction, committed when the block ends; with a ``deadline`` (event
        loop clock) it is given up rather than committed late (TooLate)."""

    async def write_one(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """One statement committed on its own, its rows returned; for bookkeeping whose
        loss in a crash costs nothing (shared pacing), so it may skip the wait for the
        other writes of this instance where the engine allows."""

    def snapshot(self) -> AbstractAsyncContextManager[Reader]:
        """Reads that all see one committed state (a report's figures agree)."""

    async def schema_version(self) -> int: ...

    async def integrity_check(self) -> str:
        """``ok``, or what the engine's own check found."""

    async def backup_to(self, dest: Path) -> None:
        """A consistent copy at ``dest``, made while the daemon runs."""

    async def close(self) -> None: ...


def sqlite_url(path: Path) -> str:
    """The URL of an SQLite file: ``sqlite:///abs/path.db`` (``sqlite://rel.db``)."""
    return f"sqlite://{path}"


def url_of(where: Path | str) -> str:
    """A store URL from a URL, or from the path of an SQLite file."""
    return sqlite_url(where) if isinstance(where, Path) else where


def scheme(url: str) -> str:
    return url.partition(":")[0].lower()


class Engine(Protocol):
    """What a database engine module provides (:mod:`skbridge.store.sqlite`)."""

    async def open_url(self, url: str, read_only: bool) -> Store: ...

    async def check(self, url: str) -> tuple[bool, str, str]:
        """For ``skbridge check``: whether the daemon can use it (ok, what, what to do)."""


ENGINES = {
    "sqlite": "skbridge.store.sqlite",
    "postgresql": "skbridge.store.postgresql",
    "postgres": "skbridge.store.postgresql",
}
"""URL scheme: the module of its engine."""


def engine(url: str) -> Engine:
    """The engine for ``url``'s scheme; ConfigError for a scheme skbridge does not know."""
    # Imported here, and only the one asked for: the engines import the interface above,
    # and an SQLite installation need not load a PostgreSQL driver.
    module = ENGINES.get(scheme(url))
    if module is None:
        from skbridge.errors import ConfigError

        known = ", ".join(f"{name}://" for name in ENGINES)
        raise ConfigError("store", f"unknown database URL scheme {scheme(url)!r} (known: {known})")
    found: Engine = importlib.import_module(module)
    return found


async def open_store(url: str, *, read_only: bool = False) -> Store:
    """Open (and, unless ``read_only``, create and migrate) the store at ``url``.

    ``read_only`` never writes, never migrates and never creates: a missing database
    is a StoreError. Raises StoreUnusable for a database the operator must see to.
    """
    return await engine(url).open_url(url, read_only)
