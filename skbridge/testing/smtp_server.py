"""A real SMTP server for tests (aiosmtpd) that records every mail it accepts.

It runs in the test's event loop on 127.0.0.1, port 0, and asks for a login (plain
text, as over loopback). Its next answers to a message can be set: a 4xx or 5xx reply,
or a connection dropped after the message arrived and before the server's verdict.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from skbridge.testing.lifecycle import Lifecycle

USER = "support@example.com"
PASSWORD = "smtp-app-password-1"
DROP = "drop"
"""An answer that closes the connection instead of answering."""


@dataclass(frozen=True, slots=True)
class Mail:
    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def header(self, name: str) -> str:
        return str(self.message.get(name, ""))

    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content()).replace("\r\n", "\n")

    def html(self) -> str:
        body = self.message.get_body(preferencelist=("html",))
        assert body is not None
        return str(body.get_content()).replace("\r\n", "\n")


class RecordingSMTP(Lifecycle):
    def __init__(
        self,
        user: str = USER,
        password: str = PASSWORD,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.user = user
        self.password = password
        self.tls = tls
        """Offer STARTTLS with this context, or speak TLS from the start (``implicit_tls``)."""
        self.implicit_tls = implicit_tls
        self.port = 0
        self.mails: list[Mail] = []
        self.answers: list[str] = []
        """What to answer to the next messages, in turn ("451 4.3.0 Later", DROP)."""
        self.logins_refused = 0
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        # aiosmtpd warns about its own use of a deprecated attribute on every login.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()
        wrap = self.tls if self.implicit_tls else None
        self._server = await loop.create_server(self._protocol, "127.0.0.1", 0, ssl=wrap)
        self.port = self._server.sockets[0].getsockname()[1]

    def _protocol(self) -> SMTP:
        return SMTP(
            self,
            hostname="mx.test",
            auth_require_tls=False,
            tls_context=None if self.implicit_tls else self.tls,
            authenticator=self._authenticate,
            loop=asyncio.get_running_loop(),
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        if not ok:
            self.logins_refused += 1
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # Checked here rather than with aiosmtpd's auth_required, which warns without TLS.
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = self.answers.pop(0) if self.answers else "250 2.0.0 Ok: queued"
        if answer.startswith("250") or answer == DROP:
            raw = envelope.original_content or b""
            sender = envelope.mail_from or ""
            self.mails.append(Mail(sender, list(envelope.rcpt_tos), raw))
            self._changed.set()
        if answer == DROP:
            assert server.transport is not None
            server.transport.close()
        return answer

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10,  # noqa: ASYNC109 - plain timeouts read best in tests
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_mails(
        self,
        count: int,
        timeout: float = 10,  # noqa: ASYNC109 - plain timeouts read best in tests
    ) -> list[Mail]:
        await self.wait_for(lambda: len(self.mails) >= count, timeout)
        return self.mails
