"""What only the PostgreSQL engine does, against a real server: configuration by URL and
password, logins and schemas it refuses, migrations run once, operator commands, and a
server that is down at start or goes away while the daemon runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from skbridge import cli, logs
from skbridge.config import load_config, secrets
from skbridge.errors import ConfigError, StoreUnavailable, StoreUnusable
from skbridge.leases import Leases
from skbridge.notify import Notifier
from skbridge.ops.check import Verdict, database
from skbridge.ops.status import read_status, to_text
from skbridge.service import Service
from skbridge.store import open_store
from skbridge.store.migrations import MIGRATIONS
from skbridge.store.postgresql import masked
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    first_message,
    parked_input,
    say,
    texts,
)
from skbridge.testing.postgres import PostgresServer


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of the test's own, to stop and start."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


def without_password(url: str) -> str:
    return masked(url)


def config_with(world: Fakes, tmp_path: Path, store_lines: str) -> Path:
    text = world.config_text(tmp_path / "unused.db")
    head, _, tail = text.partition("\n[store]\n")
    path = tmp_path / "config.toml"
    path.write_text(head + "\n[store]\n" + store_lines + "\n" + tail.partition("\n")[2])
    return path


# --- configuration ---------------------------------------------------------------------


async def test_path_and_url_together_exit_78_naming_both(
    world: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``store.path`` and ``store.url`` are exclusive: one line names both keys."""
    path = config_with(world, tmp_path, f'path = "{tmp_path}/x.db"\nurl = "postgresql://a@b/c"')
    with pytest.raises(ConfigError, match=r"store\.path and store\.url"):
        load_config(path, environ={})
    assert await asyncio.to_thread(cli.main, ["check", "-c", str(path)]) == cli.EX_CONFIG
    assert "store.path and store.url are both set" in capsys.readouterr().err


def test_a_sqlite_url_is_the_same_as_a_path(world: Fakes, tmp_path: Path) -> None:
    """``url = "sqlite:///…"`` opens that file, as ``path`` would."""
    path = config_with(world, tmp_path, f'url = "sqlite://{tmp_path}/y.db"')
    config = load_config(path, environ={})
    assert config.store.location == f"sqlite://{tmp_path}/y.db"
    assert config.store.file == tmp_path / "y.db"


def test_an_unknown_scheme_is_a_config_error(world: Fakes, tmp_path: Path) -> None:
    """A URL of a database skbridge does not speak is refused at start, naming the key."""
    path = config_with(world, tmp_path, 'url = "mysql://a@b/c"')
    with pytest.raises(ConfigError, match=r"postgresql://"):
        load_config(path, environ={})


async def test_url_from_a_credential_and_password_from_the_environment(
    world: Fakes, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL may come from ``store__url``; the password from SKBRIDGE_STORE__PASSWORD."""
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "store__url").write_text(without_password(pg_url))
    password = urlsplit(pg_url).password or ""
    path = config_with(world, tmp_path, "")
    monkeypatch.setenv("SKBRIDGE_STORE__PASSWORD", password)
    config = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert password in secrets(config)
    store = await open_store(config.store.location)
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()


async def test_password_from_a_credential_file(world: Fakes, tmp_path: Path, pg_url: str) -> None:
    """The password may come from the ``store__password`` credential."""
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "store__password").write_text(urlsplit(pg_url).password or "")
    path = config_with(world, tmp_path, f'url = "{without_password(pg_url)}"')
    config = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    store = await open_store(config.store.location)
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()


async def test_a_password_in_the_url_is_masked_in_logs_and_reports(
    world: Fakes, tmp_path: Path, pg_url: str
) -> None:
    """A password in ``store.url`` never shows in a log line or in ``status``."""
    password = urlsplit(pg_url).password or ""
    config = load_config(config_with(world, tmp_path, f'url = "{pg_url}"'), environ={})
    logs.add_secrets(secrets(config))
    assert password not in logs.redact(f"could not connect to {pg_url}")
    store = await open_store(config.store.location)
    await store.close()
    assert password not in store.where
    report = to_text(await read_status(config.store.location))
    assert password not in report and without_password(pg_url) in report


# --- the engine ------------------------------------------------------------------------


async def test_a_wrong_password_or_a_missing_database_needs_the_operator(
    postgres_server: PostgresServer,
) -> None:
    """A refused login or a missing database stops the daemon with what to do (exit 78)."""
    wrong = postgres_server.url("postgres").replace(postgres_server.password, "nope")
    with pytest.raises(StoreUnusable, match="refused the login"):
        await open_store(wrong)
    with pytest.raises(StoreUnusable, match="createdb"):
        await open_store(postgres_server.url("no_such_db"))


async def test_instances_starting_together_migrate_once(pg_url: str) -> None:
    """Instances starting at once run each migration once, under the advisory lock."""
    stores = await asyncio.gather(*(open_store(pg_url) for _ in range(4)))
    rows = await stores[0].all("SELECT version FROM skbridge_schema ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    for store in stores:
        await store.close()


async def test_an_older_skbridge_refuses_a_newer_schema(pg_url: str) -> None:
    """A schema newer than the code is refused at start and by ``check``."""
    store = await open_store(pg_url)
    async with store.write() as tx:
        await tx.execute("INSERT INTO skbridge_schema (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    await store.close()
    with pytest.raises(StoreUnusable, match="newer than this skbridge"):
        await open_store(pg_url)
    result = await database(pg_url)
    assert result.verdict is Verdict.FAIL and "newer" in result.detail


async def test_check_status_and_backup_on_postgresql(
    world: Fakes, tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """check says it answers, status reads it, backup gives the pg_dump command."""
    result = await database(pg_url)
    assert result.verdict is Verdict.OK and "empty" in result.detail
    await (await open_store(pg_url)).close()
    result = await database(pg_url)
    assert result.verdict is Verdict.OK and f"schema {len(MIGRATIONS)}" in result.detail
    path = config_with(world, tmp_path, f'url = "{pg_url}"')
    assert await asyncio.to_thread(cli.main, ["check", "-c", str(path)]) == 0
    assert f"ok    database: {without_password(pg_url)} answers" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, ["status", "-c", str(path)]) == 0
    assert "conversations" in capsys.readouterr().out.lower()
    code = await asyncio.to_thread(cli.main, ["backup", "-c", str(path), str(tmp_path / "b.dump")])
    err = capsys.readouterr().err
    assert code == 1 and "pg_dump --format=custom" in err
    assert (urlsplit(pg_url).password or "") not in err


# --- a server that is not there --------------------------------------------------------


class StatusLines(Notifier):
    """Keeps every STATUS= line the daemon would send systemd."""

    def __init__(self) -> None:
        super().__init__({})
        self.lines: list[str] = []

    def status(self, text: str) -> bool:
        self.lines.append(text)
        return True


@pytest.fixture
def down_world(world: Fakes, own_server: PostgresServer) -> Fakes:
    world.store_url = own_server.create_database()
    return world


async def test_an_unreachable_server_at_start_is_waited_for_with_a_status_line(
    down_world: Fakes, own_server: PostgresServer, tmp_path: Path
) -> None:
    """A server down at start is retried, telling systemd why; work starts once it answers."""
    world = down_world
    await asyncio.to_thread(own_server.stop)
    notifier = StatusLines()
    config = load_config(world.write_config(tmp_path))
    service = Service(config, notifier=notifier)
    task = asyncio.create_task(service.run())
    try:
        await world.slack.wait_for(
            lambda: any("cannot reach the database" in line for line in notifier.lines)
        )
        assert not service.ready.is_set()
        await asyncio.to_thread(own_server.start)
        await asyncio.wait_for(service.ready.wait(), 30)
        await first_message(world, "hello")
    finally:
        service.stop()
        await asyncio.wait_for(task, 20)


async def test_a_server_that_goes_away_stops_acks_and_work_resumes(
    down_world: Fakes, own_server: PostgresServer, tmp_path: Path
) -> None:
    """Nothing is acked or confirmed while the server is down; all of it arrives after."""
    world = down_world
    daemon = Daemon(world.write_config(tmp_path))
    await daemon.start()
    try:
        channel = await first_message(world, "m0")
        await daemon.wait_idle()
        confirmed = world.telegram.confirmed_offset
        await asyncio.to_thread(own_server.stop)
        envelope = await world.slack.send_command(channel, ALICE, "while down")
        say(world, "m1")
        assert daemon.service is not None
        service = daemon.service
        await world.slack.wait_for(lambda: "degraded" in service.status_line(), timeout=30)
        assert envelope["envelope_id"] not in world.slack.acks
        assert world.telegram.confirmed_offset == confirmed

        await asyncio.to_thread(own_server.start)
        retried = await world.slack.redeliver(envelope, retry_attempt=1, new_envelope_id=False)
        await world.slack.wait_ack(retried["envelope_id"], timeout=30)
        await world.telegram.wait_for(
            lambda: world.telegram.sent_to(ADA) == ["Alice: while down"], timeout=30
        )
        await world.slack.wait_for(lambda: "m1" in texts(world.slack, channel), timeout=30)
        await world.slack.wait_for(lambda: "degraded" not in service.status_line(), timeout=30)
    finally:
        await daemon.stop()


async def test_an_instance_stalled_mid_transaction_does_not_hold_others_up(pg_url: str) -> None:
    """The server ends a transaction left open (a paused or vanished instance), so the rows
    it locked are free again and its commit fails instead of landing late."""
    stalled, other = await open_store(pg_url), await open_store(pg_url)
    a, b = Leases(stalled, "a", 30), Leases(other, "b", 30)
    lease = await a.try_take("upstream:x")
    assert lease is not None
    async with stalled.write() as tx:  # expire it, so b may take it once the lock is free
        await tx.execute("UPDATE leases SET expires_at = 0")
    wake = asyncio.Event()

    async def stall() -> None:
        async with stalled.write() as tx:
            await tx.execute("UPDATE leases SET token = token WHERE name = 'upstream:x'")
            await wake.wait()  # paused while holding the row

    stuck = asyncio.create_task(stall())
    try:
        taken = await asyncio.wait_for(b.try_take("upstream:x"), 30)
        assert taken is not None and taken.taken_over
    finally:
        wake.set()
        with pytest.raises(StoreUnavailable):
            await stuck
        await stalled.close()
        await other.close()


@pytest.fixture
async def pg_daemon(world: Fakes, tmp_path: Path, pg_url: str) -> AsyncIterator[Daemon]:
    world.store_url = pg_url
    daemon = Daemon(world.write_config(tmp_path))
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


async def test_text_holding_nul_is_parked_not_a_crash(world: Fakes, pg_daemon: Daemon) -> None:
    """PostgreSQL's text cannot hold NUL (SQLite's can): a message carrying one still
    flows (it is stored as JSON), a reply whose parts would hold it is parked at once
    and reported, and what follows flows."""
    channel = await first_message(world, "m0")
    world.telegram.customer_says(ADA, "a\x00b", first_name="Ada", last_name="Lovelace")
    say(world, "m1")
    await world.slack.wait_for(lambda: texts(world.slack, channel)[-1:] == ["m1"], timeout=20)
    bad = await world.slack.send_command(channel, ALICE, "x\x00y")
    await world.slack.wait_ack(bad["envelope_id"])
    good = await world.slack.send_command(channel, ALICE, "fine")
    await world.slack.wait_ack(good["envelope_id"])
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: fine"])
    assert pg_daemon.service is not None and pg_daemon.service.db is not None
    [(error,)] = await pg_daemon.service.db.all(
        "SELECT last_error FROM outbox WHERE state = 'parked'"
    )
    assert "NUL" in error
    assert await parked_input(pg_daemon) == []
    assert [t for t in texts(world.slack, channel) if t[:1] in ("m", "a")] == ["m0", "a\x00b", "m1"]


async def test_a_stall_between_the_statements_of_a_batch_leaves_its_locks_to_the_timeout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance stopped inside a transaction must not hold its locks for ever: the
    server ends a session left "idle in transaction" after a few seconds, but not one
    waiting in the middle of a pipeline (what psycopg's executemany sends). So between
    the statements of a batch the session is idle in transaction, each answered."""
    import psycopg

    db, watcher = await open_store(pg_url), await open_store(pg_url)
    paused, go_on = asyncio.Event(), asyncio.Event()
    execute = psycopg.AsyncCursor.execute
    calls = 0

    async def pausing(self: psycopg.AsyncCursor[object], *args: object, **kw: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:  # the batch's second statement: stall before it goes out
            paused.set()
            await go_on.wait()
        return await execute(self, *args, **kw)  # type: ignore[arg-type]

    backend: list[int] = []

    async def batch() -> None:
        async with db.write() as tx:
            row = await tx.one("SELECT pg_backend_pid()")
            assert row is not None
            backend.append(int(row[0]))
            monkeypatch.setattr(psycopg.AsyncCursor, "execute", pausing)
            await tx.execute_many(
                "INSERT INTO settings (key, value) VALUES (?, ?)", [("a", "1"), ("b", "2")]
            )

    task = asyncio.create_task(batch())
    try:
        await asyncio.wait_for(paused.wait(), 10)
        monkeypatch.setattr(psycopg.AsyncCursor, "execute", execute)
        state = await watcher.one("SELECT state FROM pg_stat_activity WHERE pid = ?", backend)
        assert state == ("idle in transaction",)
    finally:
        go_on.set()
        await task
        await db.close()
        await watcher.close()
