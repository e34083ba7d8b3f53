"""Fixtures: the fakes, a config file pointing at them, and the real daemon.

The store engine is a fixture too (``store_engine``): modules that list
``STORE_ENGINES = ("sqlite", "postgresql")`` run each test on both, against a real
PostgreSQL server started once per session (a fresh database per test).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from skbridge import retry
from skbridge.store import sqlite_url
from skbridge.testing import postgres
from skbridge.testing.harness import Daemon, Fakes, fakes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_engine" in metafunc.fixturenames:
        engines = getattr(metafunc.module, "STORE_ENGINES", ("sqlite",))
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long chaos soak test")
