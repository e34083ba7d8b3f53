"""Opening the skbridge database read-only, for commands that run beside the daemon.

SQLite's ``mode=ro`` URI: the connection can never write, and a missing file is an
error instead of a new empty database. In WAL mode such a reader sees only committed
work and never blocks the daemon's writer. A file that cannot be read is explained the
way the daemon explains it (:mod:`skbridge.store.files`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from skbridge.errors import StoreError, StoreUnusable
from skbridge.store import files


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing database read-only; a missing file is a StoreError, not a new file."""
    if not path.is_file():
        raise StoreError(
            f"no database at {path} (the daemon creates it on its first start; "
            "is store.path right?)"
        )
    files.refuse_empty(path)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise files.reading_error(path, exc) from exc
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        conn.close()
        raise files.reading_error(path, exc) from exc
    if not version:
        conn.close()
        raise StoreError(f"{path} is not an skbridge database (no schema)")
    return conn


def refuse_damage(conn: sqlite3.Connection, path: Path) -> None:
    """SQLite's ``quick_check``: reads every page, so damage no query has met yet shows."""
    try:
        found = "; ".join(str(row[0]) for row in conn.execute("PRAGMA quick_check"))
    except sqlite3.Error as exc:
        raise files.reading_error(path, exc) from exc
    if found != "ok":
        raise StoreUnusable(f"damaged ({found[:200]})", files.RESTORE, path)
