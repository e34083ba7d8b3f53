"""TLS and STARTTLS to real servers, with the certificate checked as it is in production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from skbridge.config import load_config
from skbridge.errors import NotSent, Refused
from skbridge.ops.check import Verdict, run_checks
from skbridge.testing.dovecot import Dovecot, mail
from skbridge.testing.harness import Daemon, Fakes, Mailboxes, mail_channel
from skbridge.testing.smtp_server import RecordingSMTP
from skbridge.testing.tls import server_context
from skbridge.upstreams.mail.config import Endpoint
from skbridge.upstreams.mail.imap import Session


@pytest.fixture
async def tls_dovecot(dovecot: Dovecot) -> AsyncIterator[Dovecot]:
    """Dovecot offering STARTTLS and implicit TLS with a self-signed certificate (after
    the plain fixture, which fails or skips when dovecot is missing)."""
    server = Dovecot(tls=True)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def trust(monkeypatch: pytest.MonkeyPatch, cert: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))


def endpoint(server: Dovecot, security: str) -> Endpoint:
    port = server.tls_port if security == "tls" else server.port
    return Endpoint("127.0.0.1", port, security, server.user, server.password)  # type: ignore[arg-type]


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_imap_logs_in_over_tls_and_starttls(
    tls_dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch, security: str
) -> None:
    """Implicit TLS (993-style) and STARTTLS (143-style) both reach a selected mailbox."""
    trust(monkeypatch, tls_dovecot.cert)
    session = Session(endpoint(tls_dovecot, security), "INBOX")
    try:
        await session.open()
        assert session.uidvalidity > 0 and session.can_idle
        assert await session.after(0) == []
    finally:
        await session.close()


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_an_untrusted_certificate_is_refused_before_the_password(
    tls_dovecot: Dovecot, security: str
) -> None:
    """A certificate nobody vouches for stops the connection; no login is tried."""
    session = Session(endpoint(tls_dovecot, security), "INBOX")
    with pytest.raises(NotSent) as caught:
        await session.open()
    await session.close()
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.detail
    assert "Login: user=" not in tls_dovecot.log


async def test_the_daemon_runs_over_starttls_and_tls(
    world: Fakes,
    tls_dovecot: Dovecot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole path with encryption: IMAP over STARTTLS, SMTP over implicit TLS."""
    trust(monkeypatch, tls_dovecot.cert)
    context = server_context(tls_dovecot.cert, tls_dovecot.dir / "key.pem")
    async with RecordingSMTP(tls=context, implicit_tls=True) as smtp:
        boxes = Mailboxes(
            tls_dovecot.port, smtp.port, tls_dovecot.user, tls_dovecot.password,
            smtp.user, smtp.password,
        )  # fmt: skip
        text = world.config_text(tmp_path / "skbridge.db", email=boxes, telegram=False)
        text = text.replace('imap_security = "none"', 'imap_security = "starttls"')
        text = text.replace('smtp_security = "none"', 'smtp_security = "tls"')
        path = tmp_path / "config.toml"
        path.write_text(text)
        [result] = [r for r in await run_checks(load_config(path)) if r.name == "email"]
        assert result.verdict is Verdict.OK, result.line()
        assert "(starttls)" in result.detail and "(TLS) logged in" in result.detail
        daemon = Daemon(path)
        await daemon.start()
        try:
            await daemon.mail_caught_up()
            await tls_dovecot.append(mail("Over TLS"))
            channel = await mail_channel(world)
            await world.slack.send_command(channel, "UALICE", "Encrypted reply")
            [sent] = await smtp.wait_mails(1)
            assert sent.text().startswith("Encrypted reply")
        finally:
            await daemon.stop()


async def test_starttls_is_required_when_asked_for(dovecot: Dovecot) -> None:
    """A server without STARTTLS is not used in the clear when starttls was configured."""
    session = Session(endpoint(dovecot, "starttls"), "INBOX")
    with pytest.raises(Refused) as caught:
        await session.open()
    await session.close()
    assert caught.value.code == "imap_starttls"
    assert "Login: user=" not in dovecot.log
