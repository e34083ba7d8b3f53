"""``skbridge backup``: a consistent online copy of the database, then its integrity check.

The copy is made with SQLite's ``VACUUM INTO`` from a read-only connection: one read
transaction, so it is a snapshot of committed state, taken while the daemon keeps
writing (WAL readers do not block the writer). Never a file copy, which could catch
the main file and its ``-wal`` at different moments. An existing destination is never
overwritten.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from skbridge.errors import StoreError
from skbridge.ops.readonly import connect_read_only
from skbridge.store import files


@dataclass(frozen=True, slots=True)
class Backup:
    dest: Path
    size: int
    schema: int
    conversations: int
    integrity: str
    """``ok``, or what ``PRAGMA integrity_check`` found."""

    @property
    def ok(self) -> bool:
        return self.integrity == "ok"


def backup(source: Path, dest: Path) -> Backup:
    """Copy ``source`` to ``dest`` (which must not exist) and check the copy."""
    if dest.exists() or dest.is_symlink():
        raise StoreError(f"{dest} already exists; refusing to overwrite it")
    if not dest.parent.is_dir():
        raise StoreError(f"{dest.parent} is not a directory")
    with closing(connect_read_only(source)) as conn:
        try:
            conn.execute("VACUUM INTO ?", (str(dest),))
        except sqlite3.Error as exc:
            if "already exists" not in str(exc):
                dest.unlink(missing_ok=True)  # a partial copy, e.g. on a full disk
            if damage := files.damaged(exc):  # read from the source: nothing to copy
                raise damage.at(source) from exc
            raise StoreError(f"backup to {dest} failed: {exc}") from exc
    _fsync(dest)
    _fsync(dest.parent)
    return inspect(dest)


def inspect(copy: Path) -> Backup:
    """Run ``PRAGMA integrity_check`` on ``copy`` and count what it holds."""
    with closing(connect_read_only(copy)) as conn:
        try:
            problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
            schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conversations = int(conn.execute("SELECT count(*) FROM conversations").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreError(f"cannot check {copy}: {exc}") from exc
    return Backup(
        dest=copy,
        size=copy.stat().st_size,
        schema=schema,
        conversations=conversations,
        integrity="; ".join(problems) or "no answer",
    )


def _fsync(path: Path) -> None:
    """Make the copy durable before saying it was written (a directory too: its entry)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def command(source: Path, dest: Path) -> int:
    """``skbridge backup``: 0 when the copy was written and its integrity check says ok."""
    result = backup(source, dest)
    n = result.conversations
    print(
        f"wrote {result.dest} ({result.size / 1024:.1f} KiB, schema {result.schema}, "
        f"{n} conversation{'' if n == 1 else 's'})"
    )
    print(f"integrity_check: {result.integrity}")
    return 0 if result.ok else 1
