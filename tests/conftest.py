"""Fixtures: the fakes, a config file pointing at them, and the real daemon.

The store engine is a fixture too (``store_engine``): modules that list
``STORE_ENGINES = ("sqlite", "postgresql")`` run each test on both, against a real
PostgreSQL server started once per session (a fresh database per test);
``@pytest.mark.engines("sqlite")`` narrows one test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from skbridge import retry
from skbridge.store import Store, open_store, sqlite_url
from skbridge.testing import dovecot as imap
from skbridge.testing import postgres
from skbridge.testing.dovecot import Dovecot, DovecotMissing
from skbridge.testing.harness import Daemon, DaemonProcess, Fakes, Mailboxes, fakes
from skbridge.testing.smtp_server import RecordingSMTP


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_engine" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("engines")
        engines = only.args if only else getattr(metafunc.module, "STORE_ENGINES", ("sqlite",))
        metafunc.parametrize("store_engine", engines, indirect=True)


@pytest.fixture
def store_engine(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.PostgresServer]:
    """One real PostgreSQL cluster for the session; missing binaries fail, never skip,
    unless SKBRIDGE_SKIP_POSTGRESQL=1 says so."""
    if postgres.skipped():
        pytest.skip(f"{postgres.SKIP_ENV} is set")
    server = postgres.PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def store_url(store_engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store for one test: an SQLite file, or a new PostgreSQL database."""
    if store_engine == "postgresql":
        server: postgres.PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database()
    return sqlite_url(tmp_path / "skbridge.db")


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Store]:
    """The store at ``store_url``, open (modules that need another store define their own)."""
    store = await open_store(store_url)
    yield store
    await store.close()


@pytest.fixture(autouse=True)
def restore_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """``main`` points logging at the captured stderr; put pytest's handlers back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    retry.set_testing(True)
    yield
    retry.set_testing(False)


@pytest.fixture
async def world(store_engine: str, request: pytest.FixtureRequest) -> AsyncIterator[Fakes]:
    """The fakes; their configs point at a fresh PostgreSQL database on that engine."""
    async with fakes() as f:
        if store_engine == "postgresql":
            f.store_url = request.getfixturevalue("store_url")
        yield f


@pytest.fixture
def config_path(world: Fakes, tmp_path: Path) -> Path:
    return world.write_config(tmp_path)


@pytest.fixture
async def daemon(config_path: Path) -> AsyncIterator[Daemon]:
    d = Daemon(config_path)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


@pytest.fixture
async def dovecot() -> AsyncIterator[Dovecot]:
    """A real IMAP server. Missing dovecot fails the test unless SKBRIDGE_SKIP_DOVECOT=1."""
    server = Dovecot()
    try:
        await server.start()
    except DovecotMissing as exc:
        await server.stop()
        if os.environ.get(imap.SKIP_ENV) == "1":
            pytest.skip(str(exc))
        pytest.fail(f"{exc} (or set {imap.SKIP_ENV}=1 to skip these tests)")
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def smtp() -> AsyncIterator[RecordingSMTP]:
    async with RecordingSMTP() as server:
        yield server


@pytest.fixture
def mailboxes(dovecot: Dovecot, smtp: RecordingSMTP) -> Mailboxes:
    return Mailboxes(
        dovecot.port, smtp.port, dovecot.user, dovecot.password, smtp.user, smtp.password
    )


@pytest.fixture
def email_config(world: Fakes, mailboxes: Mailboxes, tmp_path: Path) -> Path:
    """A config with the mailbox as the only upstream."""
    path = tmp_path / "config.toml"
    path.write_text(world.config_text(tmp_path / "skbridge.db", email=mailboxes, telegram=False))
    return path


@pytest.fixture
async def email_daemon(email_config: Path) -> AsyncIterator[Daemon]:
    d = Daemon(email_config)
    await d.start()
    await d.mail_caught_up()  # the first start's cursor is stored: mail from now on counts
    try:
        yield d
    finally:
        await d.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long chaos soak test")


@pytest.fixture
async def process(world: Fakes, tmp_path: Path) -> AsyncIterator[DaemonProcess]:
    """A real ``skbridge run`` child on the fakes, killed at the end if still running."""
    p = DaemonProcess(world.write_config(tmp_path, poll_timeout=5))
    yield p
    await p.kill()
