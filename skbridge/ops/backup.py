"""``skbridge backup``: a consistent online copy of the database, then its integrity check.

The store makes the copy its own way while the daemon keeps writing; for SQLite that is
``VACUUM INTO`` from a read-only connection, one read transaction, so a snapshot of
committed state (never a file copy, which could catch the main file and its ``-wal`` at
different moments). The copy is then opened on its own and checked. An existing
destination is never overwritten.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from skbridge.errors import StoreError
from skbridge.store import open_store, report, sqlite_url, url_of


@dataclass(frozen=True, slots=True)
class Backup:
    dest: Path
    size: int
    schema: int
    conversations: int
    integrity: str
    """``ok``, or what the store's integrity check found."""

    @property
    def ok(self) -> bool:
        return self.integrity == "ok"


async def backup(source: Path | str, dest: Path) -> Backup:
    """Copy the store at ``source`` to ``dest`` (which must not exist) and check the copy."""
    _refuse(dest)
    store = await open_store(url_of(source), read_only=True)
    try:
        await store.backup_to(dest)
    finally:
        await store.close()
    return await inspect(dest)


async def inspect(copy: Path) -> Backup:
    """Run the integrity check on ``copy`` and count what it holds."""
    store = await open_store(sqlite_url(copy), read_only=True)
    try:
        integrity = await store.integrity_check()
        schema = await store.schema_version()
        conversations = await report.conversation_count(store)
    except StoreError as exc:
        raise StoreError(f"cannot check {copy}: {exc}") from exc
    finally:
        await store.close()
    return Backup(copy, _size(copy), schema, conversations, integrity)


def _refuse(dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        raise StoreError(f"{dest} already exists; refusing to overwrite it")
    if not dest.parent.is_dir():
        raise StoreError(f"{dest.parent} is not a directory")


def _size(path: Path) -> int:
    return path.stat().st_size


def command(source: Path | str, dest: Path) -> int:
    """``skbridge backup``: 0 when the copy was written and its integrity check says ok."""
    result = asyncio.run(backup(source, dest))
    n = result.conversations
    print(
        f"wrote {result.dest} ({result.size / 1024:.1f} KiB, schema {result.schema}, "
        f"{n} conversation{'' if n == 1 else 's'})"
    )
    print(f"integrity_check: {result.integrity}")
    return 0 if result.ok else 1
