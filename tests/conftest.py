"""Fixtures: the fakes, a config file pointing at them, and the real daemon."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from skbridge import retry
from skbridge.testing import dovecot as imap
from skbridge.testing.dovecot import Dovecot, DovecotMissing
from skbridge.testing.harness import Daemon, Fakes, Mailboxes, fakes
from skbridge.testing.smtp_server import RecordingSMTP


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
async def world() -> AsyncIterator[Fakes]:
    async with fakes() as f:
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
