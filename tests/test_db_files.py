"""Database files nobody can use as they are: damaged, truncated, empty, read-only, newer.

The daemon refuses each promptly, with one line naming the file and what to do, and
exit 78 so systemd does not restart it into the same refusal. It runs as a real process
with a deadline: these files used to make it hang until SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from skbridge.cli import EX_CONFIG, main
from skbridge.errors import StoreError, StoreUnavailable, StoreUnusable
from skbridge.ops.check import Verdict, database
from skbridge.store import sqlite as store_db
from skbridge.store.migrations import MIGRATIONS
from skbridge.store.sqlite import SqliteStore
from skbridge.testing.harness import Fakes, say

EXIT_DEADLINE = 20.0
RESTORE = "restore a copy made by `skbridge backup`"

# Root ignores file permissions through CAP_DAC_OVERRIDE. Dropped from the bounding set
# before exec, the command runs as root without it, and chmod means what it says again.
DROP_DAC = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH\n"
    "    if libc.prctl(24, cap, 0, 0, 0):  # PR_CAPBSET_DROP\n"
    "        sys.exit(77)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


@pytest.fixture
def as_user() -> list[str]:
    """A command prefix under which file permissions apply, even when the tests run as root."""
    if os.geteuid() != 0:
        return []
    prefix = [sys.executable, "-c", DROP_DAC]
    if subprocess.run([*prefix, sys.executable, "-c", ""], check=False).returncode != 0:
        pytest.skip("running as root without CAP_SETPCAP: file permissions cannot be made to apply")
    return prefix


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """Where the database goes: its own directory, writable again after the test."""
    directory = tmp_path / "state"
    directory.mkdir()
    yield directory / "skbridge.db"
    directory.chmod(0o755)


def config_for(world: Fakes, db: Path) -> Path:
    config = db.parent.parent / "config.toml"
    config.write_text(world.config_text(db, log_level="WARNING"))
    return config


async def start(
    config: Path, prefix: list[str] | None = None, command: str = "run"
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(prefix or []), sys.executable, "-m", "skbridge", command, "-c", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def exit_of(proc: asyncio.subprocess.Process) -> tuple[int, list[str]]:
    """The exit status and stderr lines; a daemon still running at the deadline fails."""
    try:
        _, err = await asyncio.wait_for(proc.communicate(), EXIT_DEADLINE)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"skbridge still running {EXIT_DEADLINE:.0f} s after the start")
    assert proc.returncode is not None
    return proc.returncode, err.decode().splitlines()


async def run_daemon(config: Path, prefix: list[str] | None = None) -> tuple[int, list[str]]:
    return await exit_of(await start(config, prefix))


# --- making bad files -----------------------------------------------------------------------


async def real_database(path: Path) -> None:
    db = await SqliteStore.open(path)
    await db.close()


def root_pages(path: Path, *names: str) -> list[int]:
    with closing(sqlite3.connect(path)) as conn:
        marks = ",".join("?" * len(names))
        sql = f"SELECT rootpage FROM sqlite_master WHERE name IN ({marks})"
        return [page for (page,) in conn.execute(sql, names)]


def garble(path: Path, pages: list[int]) -> None:
    """Overwrite whole pages with noise; page 1 (the header and the schema) stays intact."""
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    noise = random.Random(7)
    for page in pages:
        assert page > 1
        data[(page - 1) * size : page * size] = noise.randbytes(size)
    path.write_bytes(bytes(data))


def every_page_but_the_first(path: Path) -> list[int]:
    return list(range(2, path.stat().st_size // 4096 + 1))


# Each spoils a real skbridge database.


def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(16 * 1024))


def truncated(path: Path) -> None:
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


def garbled(path: Path) -> None:
    garble(path, every_page_but_the_first(path))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def newer_schema(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")


BAD_FILES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (spoiler, what the line says is wrong, what it says to do)
    "random bytes": (random_bytes, "not an SQLite database", RESTORE),
    "truncated": (truncated, "damaged (database disk image is malformed)", RESTORE),
    # SQLite's own words vary with the page it meets first (VACUUM INTO says it cannot
    # open the copy): what counts is that the file is called damaged.
    "garbled pages": (garbled, "damaged (", RESTORE),
    "zero length": (empty, "empty (0 bytes)", "delete the file if this really is a new install"),
    "newer schema": (newer_schema, "is newer than this skbridge", "upgrade skbridge"),
}


def assert_refusal(code: int, lines: list[str], db: Path, problem: str, advice: str) -> None:
    assert code == EX_CONFIG, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"skbridge: {db}: "), lines
    assert problem in lines[0]
    assert advice in lines[0]


# --- the daemon -----------------------------------------------------------------------------


async def test_a_failed_open_leaves_no_worker_thread_behind(store: Path) -> None:
    """The store's thread is not a daemon thread: one left running keeps the process alive."""
    await real_database(store)
    random_bytes(store)
    before = set(threading.enumerate())
    with pytest.raises(StoreError):
        await SqliteStore.open(store)
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=EXIT_DEADLINE)
        assert not thread.is_alive(), thread


@pytest.mark.parametrize("case", BAD_FILES)
async def test_run_refuses_a_bad_file_with_one_line_and_78(
    case: str, world: Fakes, store: Path
) -> None:
    """Each bad file stops ``skbridge run`` at once: exit 78, one line naming it and the fix."""
    spoil, problem, advice = BAD_FILES[case]
    await real_database(store)
    spoil(store)
    before = await asyncio.to_thread(store.read_bytes)
    code, lines = await run_daemon(config_for(world, store))
    assert_refusal(code, lines, store, problem, advice)
    assert await asyncio.to_thread(store.read_bytes) == before  # neither repaired nor migrated


@pytest.mark.parametrize(
    "tables",
    [
        pytest.param(("conversations", "sqlite_autoindex_conversations_1"), id="intake"),
        pytest.param(("channels", "sqlite_autoindex_channels_1"), id="delivery"),
    ],
)
async def test_damage_found_by_a_later_query_stops_the_daemon_with_one_line(
    tables: tuple[str, ...], world: Fakes, store: Path
) -> None:
    """Pages first read for a customer's message: the daemon starts, then stops with 78."""
    await real_database(store)
    garble(store, root_pages(store, *tables))
    proc = await start(config_for(world, store))
    await world.slack.wait_for(lambda: world.slack.connections_opened > 0, timeout=EXIT_DEADLINE)
    say(world, "Hello")
    code, lines = await exit_of(proc)
    assert_refusal(code, lines, store, "damaged (database disk image is malformed)", RESTORE)


async def test_a_read_only_file_is_refused(world: Fakes, store: Path, as_user: list[str]) -> None:
    """A file the daemon cannot write (it used to run, unable to store anything) is refused."""
    await real_database(store)
    os.chmod(store, 0o444)
    code, lines = await run_daemon(config_for(world, store), as_user)
    assert_refusal(code, lines, store, "read-only for this user", "permissions and ownership")


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "new install"])
async def test_a_read_only_directory_is_refused_naming_the_path(
    exists: bool, world: Fakes, store: Path, as_user: list[str]
) -> None:
    """SQLite must create -wal and -shm beside the database: the line names the directory."""
    if exists:
        await real_database(store)
    os.chmod(store.parent, 0o500)
    code, lines = await run_daemon(config_for(world, store), as_user)
    assert_refusal(code, lines, store, f"cannot create files in {store.parent}", "-wal")
    assert "permissions and ownership" in lines[0]


async def test_a_database_locked_by_another_process_is_waited_for_not_refused(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock is transient: StoreUnavailable (exit 1, systemd retries), never StoreUnusable."""
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 50)
    with closing(sqlite3.connect(store, isolation_level=None)) as locker:
        locker.execute("PRAGMA journal_mode = WAL")
        locker.execute("BEGIN IMMEDIATE")  # holds the write lock the migration needs
        with pytest.raises(StoreUnavailable, match="locked") as refused:
            await SqliteStore.open(store)
        assert not isinstance(refused.value, StoreUnusable)
        locker.execute("ROLLBACK")
    db = await SqliteStore.open(store)
    await db.close()


# --- the operator commands ------------------------------------------------------------------

DAMAGE = ["random bytes", "truncated", "garbled pages", "zero length"]


@pytest.mark.parametrize("case", DAMAGE)
@pytest.mark.parametrize("command", ["status", "backup"])
async def test_status_and_backup_answer_a_bad_file_like_the_daemon(
    command: str, case: str, world: Fakes, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status`` and ``backup`` refuse a bad file with the daemon's one line and exit 78."""
    spoil, problem, advice = BAD_FILES[case]
    await real_database(store)
    spoil(store)
    copy = store.parent.parent / "copy.db"
    argv = [command, "-c", str(config_for(world, store))]
    code = await asyncio.to_thread(main, [*argv, str(copy)] if command == "backup" else argv)
    assert_refusal(code, capsys.readouterr().err.splitlines(), store, problem, advice)
    assert not await asyncio.to_thread(copy.exists)


@pytest.mark.parametrize("case", DAMAGE)
async def test_check_names_the_bad_file_and_what_to_do(case: str, store: Path) -> None:
    """``check`` fails its database line with the same words, damaged pages included."""
    spoil, problem, advice = BAD_FILES[case]
    await real_database(store)
    spoil(store)
    result = await database(store)
    assert result.verdict is Verdict.FAIL
    assert result.detail.startswith(f"{store}: ")
    assert problem in result.detail
    assert advice in result.fix


async def test_status_in_a_read_only_directory_names_it(
    world: Fakes, store: Path, as_user: list[str]
) -> None:
    """Reading needs the -shm file beside the database: the line says so, not SQLite's words."""
    await real_database(store)
    os.chmod(store.parent, 0o500)
    code, lines = await exit_of(await start(config_for(world, store), as_user, "status"))
    assert_refusal(code, lines, store, f"cannot create files in {store.parent}", "-shm")
