"""What is wrong with a database file, in one line an operator can act on.

Used by the SQLite engine (:mod:`skbridge.store.sqlite`) for the daemon and the
operator commands alike, so both name the file and say what to do instead of SQLite's
bare "unable to open database file" or a traceback. A damaged or unwritable file is
:class:`StoreUnusable` (no retry fixes it); a lock or a full disk stays
:class:`StoreUnavailable` (waiting may).

This module only looks at files and classifies errors; it never repairs, deletes or
creates anything.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from skbridge.errors import StoreError, StoreUnusable

RESTORE = (
    "stop skbridge, move the file and its -wal and -shm files aside, "
    "and restore a copy made by `skbridge backup`"
)
_ACCESS = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}
_ACCESS_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def _code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code (extended codes carry it in the low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def damaged(exc: sqlite3.Error) -> StoreUnusable | None:
    """The refusal for a damaged file or one that is not a database at all, else None."""
    code = _code(exc)
    if code == sqlite3.SQLITE_NOTADB:
        return StoreUnusable("not an SQLite database (damaged or overwritten)", RESTORE)
    if code == sqlite3.SQLITE_CORRUPT:
        # SQLite's own words vary with the statement (VACUUM INTO blames the copy):
        # the code is what is known.
        return StoreUnusable("damaged (database disk image is malformed)", RESTORE)
    return None


def refuse_empty(path: Path) -> None:
    """A zero-length file here was not made by skbridge just now: likely a truncated database.

    SQLite creates the file at its first open and skbridge has the header written at once
    (``journal_mode = WAL``): only a crash in that instant leaves one empty. Taking it for
    a new install would silently start over where a database was lost.
    """
    if path.is_file() and path.stat().st_size == 0:
        raise StoreUnusable(
            "empty (0 bytes), yet skbridge did not just create it (a truncated database?)",
            "restore a copy made by `skbridge backup`, or delete the file if this really "
            "is a new install",
            path,
        )


def refuse_unwritable(path: Path) -> None:
    """The daemon must write the file and create its -wal and -shm files beside it.

    A read-only file opens without complaint and fails only at the first write, so ask
    the file system before SQLite does.
    """
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreUnusable(*_directory_problem(path), path)
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreUnusable(
            "read-only for this user",
            "check the file's permissions and ownership: the daemon's user must write it",
            path,
        )


def _directory_problem(path: Path) -> tuple[str, str]:
    name = path.name
    return (
        f"cannot create files in {path.parent} (SQLite keeps {name}-wal and {name}-shm "
        "beside the database)",
        "check the directory's permissions and ownership: the daemon's user must write in it",
    )


def reading_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """For the operator commands: what a failed read of ``path`` means, naming the file."""
    return opening_error(path, exc) or StoreError(f"cannot read {path}: {exc}")


def opening_error(path: Path, exc: sqlite3.Error | OSError) -> StoreError | None:
    """The refusal for an error met while opening ``path``, or None if it is not about the file.

    Permissions are looked up again to say which one is missing; when none is, SQLite's
    own words are kept.
    """
    if isinstance(exc, OSError):
        if exc.errno not in _ACCESS_ERRNOS:
            return None
        return StoreUnusable(
            f"cannot create or enter its directory ({exc.strerror}: {exc.filename})",
            "create it for the daemon's user, or change store.path",
            path,
        )
    if found := damaged(exc):
        return found.at(path)
    if _code(exc) not in _ACCESS:
        return None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return StoreUnusable(*_directory_problem(path), path)
    return StoreUnusable(
        f"cannot open ({exc})",
        "check store.path, and the permissions and ownership of the file and its directory",
        path,
    )
