"""`skbridge check` and the start against the mailbox's real servers: which login fails, why."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skbridge.cli import main
from skbridge.config import load_config
from skbridge.errors import ConfigError
from skbridge.ops.check import Verdict, run_checks
from skbridge.testing.dovecot import Dovecot
from skbridge.testing.harness import Daemon, Fakes, Mailboxes
from skbridge.testing.smtp_server import RecordingSMTP


def write(world: Fakes, mailboxes: Mailboxes, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(world.config_text(tmp_path / "skbridge.db", email=mailboxes, telegram=False))
    return path


async def test_check_logs_in_to_both_servers(
    world: Fakes, mailboxes: Mailboxes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both logins work: one ok line for the mailbox, saying what was tried; exit 0."""
    path = write(world, mailboxes, tmp_path)
    code = await asyncio.to_thread(main, ["check", "-c", str(path)])
    lines = capsys.readouterr().out.splitlines()
    [line] = [line for line in lines if "  email:" in line]
    assert line.startswith("ok    email: IMAP 127.0.0.1:")
    assert "logged in as support@example.com, mailbox 'INBOX' (IDLE)" in line
    assert "SMTP 127.0.0.1:" in line and "(no TLS) logged in" in line
    assert code == 0


async def test_check_says_which_login_fails_and_why(
    world: Fakes, mailboxes: Mailboxes, smtp: RecordingSMTP, tmp_path: Path
) -> None:
    """A wrong IMAP password and a wrong SMTP one: both named, the server's words quoted,
    the key to fix named; no password printed."""
    mailboxes.imap_password = "wrong-imap-1"
    mailboxes.smtp_password = "wrong-smtp-2"
    [result] = [r for r in await run_checks(load_config(write(world, mailboxes, tmp_path)))
                if r.name == "email"]  # fmt: skip
    assert result.verdict is Verdict.FAIL
    line = result.line()
    assert "IMAP: 127.0.0.1:" in line and "refused the login: NO" in line
    assert "SMTP: 127.0.0.1:" in line and "535" in line
    assert "imap_password" in result.fix
    assert "wrong-imap-1" not in line and "wrong-smtp-2" not in line
    assert smtp.logins_refused >= 1


async def test_check_says_which_server_is_unreachable(
    world: Fakes, mailboxes: Mailboxes, dovecot: Dovecot, tmp_path: Path
) -> None:
    """The SMTP server is down while IMAP works: the line says so, and where to look."""
    mailboxes.smtp_port = 1  # nothing listens there
    [result] = [r for r in await run_checks(load_config(write(world, mailboxes, tmp_path)))
                if r.name == "email"]  # fmt: skip
    assert result.verdict is Verdict.FAIL
    assert "logged in as support@example.com" in result.detail
    assert "SMTP: cannot connect to 127.0.0.1:1" in result.detail
    assert "sources.email.smtp_host" in result.fix


async def test_a_refused_password_at_start_is_a_config_error(
    world: Fakes, mailboxes: Mailboxes, tmp_path: Path
) -> None:
    """The daemon does not start with a password the mailbox refuses: exit 78, the key named."""
    mailboxes.imap_password = "wrong-imap-1"
    daemon = Daemon(write(world, mailboxes, tmp_path))
    with pytest.raises(ConfigError) as caught:
        await daemon.start()
    assert caught.value.key == "sources.email.imap_password"
    assert "refused the login" in caught.value.problem
