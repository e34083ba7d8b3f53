"""Opening the skbridge database read-only, for commands that run beside the daemon.

SQLite's ``mode=ro`` URI: the connection can never write, and a missing file is an
error instead of a new empty database. In WAL mode such a reader sees only committed
work and never blocks the daemon's writer.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from skbridge.errors import StoreError


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing database read-only; a missing file is a StoreError, not a new file."""
    if not path.is_file():
        raise StoreError(
            f"no database at {path} (the daemon creates it on its first start; "
            "is store.path right?)"
        )
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot read {path}: {exc}") from exc
    if not version:
        conn.close()
        raise StoreError(f"{path} is not an skbridge database (no schema)")
    return conn
