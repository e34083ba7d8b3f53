"""Database files nobody can use as they are: damaged, truncated, empty, read-only, newer.

The daemon refuses each promptly: these files used to make it hang until SIGKILL, so
every wait has a deadline.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from skbridge.errors import StoreError
from skbridge.store.db import Database

EXIT_DEADLINE = 20.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """Where the database goes: its own directory, writable again after the test."""
    directory = tmp_path / "state"
    directory.mkdir()
    yield directory / "skbridge.db"
    directory.chmod(0o755)


async def real_database(path: Path) -> None:
    db = await Database.open(path)
    await db.close()


def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(16 * 1024))


# --- the daemon -----------------------------------------------------------------------------


async def test_a_failed_open_leaves_no_worker_thread_behind(store: Path) -> None:
    """aiosqlite's worker is not a daemon thread: one left running kept the process alive."""
    await real_database(store)
    random_bytes(store)
    before = set(threading.enumerate())
    with pytest.raises(StoreError):
        await Database.open(store)
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=EXIT_DEADLINE)
        assert not thread.is_alive(), thread
