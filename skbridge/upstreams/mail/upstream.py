"""The email upstream itself: the receiver (IMAP) and replies (SMTP), and ``check``."""

from __future__ import annotations

import asyncio
import logging

from skbridge.errors import DeliveryError
from skbridge.health import Health
from skbridge.ids import UpstreamUserId
from skbridge.store import Reader
from skbridge.store import queries as q
from skbridge.upstreams import Agent, Intake, Services
from skbridge.upstreams.mail import compose, smtp
from skbridge.upstreams.mail.config import SOURCE, EmailConfig
from skbridge.upstreams.mail.imap import Session
from skbridge.upstreams.mail.parse import Thread
from skbridge.upstreams.mail.receive import IMAP, Receiver

log = logging.getLogger(__name__)

SMTP = "Email (SMTP)"
"""The outgoing mail server, as outages name it."""


class Email:
    name = SOURCE
    label = "Email"
    shows_avatar = True

    def __init__(
        self,
        config: EmailConfig,
        health: Health | None = None,
        store: Reader | None = None,
        receiver: Receiver | None = None,
    ) -> None:
        self._config = config
        self._health = health or Health()
        self._store = store
        self._receiver = receiver or Receiver(config, self._health, store, None)

    @property
    def caught_up(self) -> asyncio.Event:
        """Set while everything in the mailbox is carried and the receiver waits for news."""
        return self._receiver.caught_up

    async def run(self, intake: Intake, cursor: str | None) -> None:
        await self._receiver.run(intake, cursor)

    def render(self, text: str, agent: Agent) -> list[str]:
        # One mail per reply, whatever its length; its Message-ID is fixed here, stored
        # with the part before it is sent, and kept by a Send again.
        return [compose.new_part(text, self._config.address)]

    async def send(self, to: UpstreamUserId, part: str, agent: Agent) -> str:
        message_id, text = compose.read_part(part)
        thread = None
        if self._store is not None:
            thread = Thread.from_json(await q.reply_context(self._store, SOURCE, to))
        message = compose.reply(self._config, to, thread, message_id, text, agent)
        with self._health.watch(SMTP):
            await smtp.send(self._config.smtp(), message, self._config.address, to)
        log.info("mail sent", extra={"message_id": message_id})
        return message_id

    async def check(self) -> str:
        """Log in to both servers; when either fails, say which and why (both, if both)."""
        said: list[str] = []
        failed: list[DeliveryError] = []
        for attempt in (self._check_imap, self._check_smtp):
            try:
                said.append(await attempt())
            except DeliveryError as exc:
                failed.append(exc)
                said.append(exc.detail or exc.code)
        if failed:
            first = failed[0]
            raise type(first)(first.code, "; ".join(said))
        return "; ".join(said)

    async def _check_imap(self) -> str:
        endpoint = self._config.imap()
        session = Session(endpoint, self._config.mailbox)
        try:
            await session.open()
        except DeliveryError as exc:
            raise type(exc)(exc.code, f"IMAP: {exc.detail}") from exc
        finally:
            await session.close()
        idle = "IDLE" if session.can_idle else "no IDLE: polling"
        return (
            f"IMAP {session.where} ({endpoint.security}) logged in as {endpoint.username}, "
            f"mailbox {self._config.mailbox!r} ({idle})"
        )

    async def _check_smtp(self) -> str:
        try:
            return await smtp.check(self._config.smtp())
        except DeliveryError as exc:
            raise type(exc)(exc.code, f"SMTP: {exc.detail}") from exc


def build(config: EmailConfig, services: Services) -> Email:
    receiver = Receiver(config, services.health, services.store, services.avatar_for)
    return Email(config, services.health, services.store, receiver)


__all__ = ["IMAP", "SMTP", "Email", "build"]
