"""``skbridge store copy --to postgresql://…``: move an installation to a server.

Reads the configured store (read-only, one snapshot) and writes every row of every
table into a new, empty PostgreSQL database in one transaction: all of it or nothing.
The tables and their columns are read from the destination's catalog after its
migrations ran, so tables added by later migrations are copied without a list to keep
here; foreign keys decide the order. What only a running instance means (leases, lane
claims, instances, pacing) is not copied. The daemon must be stopped first: work it
stored after the snapshot would be left behind.
"""

from __future__ import annotations

import asyncio
import graphlib
import time
from dataclasses import dataclass

from skbridge.errors import StoreError
from skbridge.store import Reader, Store, Tx, open_store, scheme
from skbridge.store.migrations import MIGRATIONS
from skbridge.store.postgresql import masked

RUNTIME = frozenset({"skbridge_schema", "leases", "lanes", "instances", "pacing"})
"""Tables whose rows belong to running instances, not to the installation."""
CHUNK = 1000
"""Rows per INSERT (fewer for wide tables: PostgreSQL binds at most 65,535 values)."""
STOPPED_FOR = 60.0
"""An instance seen this recently may still be running: refuse to copy from under it."""


@dataclass(frozen=True, slots=True)
class Copied:
    source: str
    dest: str
    rows: dict[str, int]


async def _columns(dest: Store) -> dict[str, list[str]]:
    rows = await dest.all(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    )
    found: dict[str, list[str]] = {}
    for table, column in rows:
        if table not in RUNTIME:
            found.setdefault(str(table), []).append(str(column))
    return found


async def _order(dest: Store, tables: list[str]) -> list[str]:
    """Tables referenced by others first."""
    edges = await dest.all(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"
    )
    graph: dict[str, set[str]] = {t: set() for t in tables}
    for table, referenced in edges:
        if table in graph and referenced in graph and table != referenced:
            graph[table].add(referenced)
    return list(graphlib.TopologicalSorter(graph).static_order())


async def _refuse_unless_empty(dest: Store, tables: list[str]) -> None:
    for table in tables:
        if await dest.one(f'SELECT 1 FROM "{table}" LIMIT 1'):
            raise StoreError(
                f"{dest.where} already holds skbridge data (table {table}); "
                "copy into a new, empty database"
            )


async def _refuse_running(source: Reader, where: str) -> None:
    row = await source.one("SELECT min(skbridge_now() - seen_at) FROM instances")
    if row and row[0] is not None and float(row[0]) < STOPPED_FOR:
        raise StoreError(f"skbridge is running on {where} (seen {row[0]:.0f} s ago); stop it first")


async def _copy_table(source: Reader, tx: Tx, table: str, columns: list[str]) -> int:
    names = ", ".join(columns)
    rows = await source.all(f"SELECT {names} FROM {table}")
    row_marks = f"({', '.join('?' * len(columns))})"
    per = min(CHUNK, 65_535 // len(columns))
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        values = ", ".join([row_marks] * len(chunk))
        await tx.execute(
            f"INSERT INTO {table} ({names}) VALUES {values}",
            [value for row in chunk for value in row],
        )
    if "id" in columns:  # identity columns go on after the copied ids
        await tx.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"coalesce(max(id), 0) + 1, false) FROM {table}"
        )
    return len(rows)


async def copy(source_url: str, dest_url: str) -> Copied:
    if scheme(dest_url) not in ("postgresql", "postgres"):
        raise StoreError("--to takes a postgresql:// URL (the server and database to fill)")
    source = await open_store(source_url, read_only=True)
    try:
        if await source.schema_version() != len(MIGRATIONS):
            raise StoreError(
                f"{source.where} has schema {await source.schema_version()}, this skbridge "
                f"{len(MIGRATIONS)}: start this version on it once, stop it, then copy"
            )
        await _refuse_running(source, source.where)
        dest = await open_store(dest_url)
        try:
            columns = await _columns(dest)
            tables = await _order(dest, sorted(columns))
            await _refuse_unless_empty(dest, tables)
            counts: dict[str, int] = {}
            async with source.snapshot() as snapshot, dest.write() as tx:
                for table in tables:
                    counts[table] = await _copy_table(snapshot, tx, table, columns[table])
        finally:
            await dest.close()
    finally:
        await source.close()
    return Copied(source.where, masked(dest_url), counts)


def command(source_url: str, dest_url: str) -> int:
    started = time.monotonic()
    result = asyncio.run(copy(source_url, dest_url))
    total = sum(result.rows.values())
    print(
        f"copied {total} rows ({len(result.rows)} tables) from {result.source} to "
        f"{result.dest} in {time.monotonic() - started:.1f} s"
    )
    print(f'next: set [store] url = "{result.dest}" (password apart), remove path, start skbridge')
    return 0
