"""Receiving from the support mailbox: IMAP IDLE, each batch stored with its cursor.

The cursor is the mailbox's UIDVALIDITY, the highest UID carried and the day that mail
arrived, as JSON. It is stored by the intake in the same transaction as the mail it
covers (each keyed by its Message-ID, else by UIDVALIDITY and UID), so a crash, a
reconnect or a mail delivered twice is carried once. The very first start stores a
cursor at UIDNEXT before anything else, so the mailbox's history never floods Slack
(``import_days`` asks for recent mail). A new UIDVALIDITY (the server rebuilt its
index) rescans from the day before the last carried mail; Message-IDs already stored
are not posted again. Nothing in the mailbox is deleted, moved or marked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from skbridge import retry
from skbridge.errors import DeliveryError, Refused
from skbridge.health import Health
from skbridge.ids import UpstreamUserId
from skbridge.store import Reader
from skbridge.store import queries as q
from skbridge.upstreams import Arrival, Intake
from skbridge.upstreams.mail import parse
from skbridge.upstreams.mail.config import SOURCE, EmailConfig
from skbridge.upstreams.mail.imap import Session
from skbridge.upstreams.mail.parse import Thread, Where

log = logging.getLogger(__name__)

IMAP = "Email (IMAP)"
"""The mailbox, as outages name it."""
IDLE_RENEW = 300.0
"""Seconds an IDLE lasts before it is renewed: well under RFC 2177's 29 minutes and
the idle timeouts of the routers in between, and how soon a dead connection is seen."""
POLL_EVERY = 60.0
"""Seconds between NOOP polls on a server without IDLE."""
BATCH = 20
"""Mails fetched and stored per transaction."""
SIZE_LIMIT = 25 * 1024 * 1024
"""Mails larger than this are parked with their header, not read."""


@dataclass(frozen=True, slots=True)
class Cursor:
    uidvalidity: int
    uid: int
    """The highest UID carried (or, at the first start, the last one left alone)."""
    day: str
    """ISO day the newest carried mail arrived: where a rescan starts."""

    def dump(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def load(cls, text: str | None) -> Cursor | None:
        try:
            return cls(**json.loads(text)) if text else None
        except (TypeError, ValueError):
            log.warning("email cursor unreadable; starting from new mail", extra={"cursor": text})
            return None


class Receiver:
    def __init__(
        self,
        config: EmailConfig,
        health: Health,
        store: Reader | None,
        avatar_for: Callable[[str], str | None] | None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._config = config
        self._health = health
        self._store = store
        self._avatar_for = avatar_for
        self._today = today
        self.caught_up = asyncio.Event()
        """Set while the receiver has carried everything and waits for news (tests)."""

    async def run(self, intake: Intake, cursor: str | None) -> None:
        state = Cursor.load(cursor)
        failures = 0
        while True:
            session = Session(self._config.imap(), self._config.mailbox)
            try:
                await session.open()
                self._health.answered(IMAP)
                failures = 0
                state = await self._catch_up(session, intake, state)
                while True:
                    self.caught_up.set()
                    await session.wait_for_news(IDLE_RENEW if session.can_idle else POLL_EVERY)
                    self.caught_up.clear()
                    state = await self._catch_up(session, intake, state)
            except DeliveryError as exc:
                failures += 1
                if isinstance(exc, Refused):
                    self._health.answered(IMAP)
                    log.error("the mailbox refused us", extra={"error": str(exc)})
                else:
                    self._health.failed(IMAP, exc.code)
                    log.warning("mailbox connection failed", extra={"error": str(exc)})
                await retry.wait(retry.RECONNECT.delay(failures))
            finally:
                self.caught_up.clear()
                await session.close()

    async def _catch_up(self, session: Session, intake: Intake, state: Cursor | None) -> Cursor:
        """Carry every mail the cursor has not covered yet."""
        if state is None:
            state = await self._first_start(session, intake)
        if state.uidvalidity != session.uidvalidity:
            since = date.fromisoformat(state.day) - timedelta(days=1)
            log.warning(
                "mailbox UIDVALIDITY changed; rescanning",
                extra={"was": state.uidvalidity, "now": session.uidvalidity, "since": str(since)},
            )
            fresh = Cursor(session.uidvalidity, 0, state.day)
            state = await self._carry(session, intake, await session.since(since), fresh, state)
            if state.uid < session.uidnext - 1:
                state = dataclasses.replace(state, uid=session.uidnext - 1)
                await intake.upstream_batch(SOURCE, [], state.dump())
        return await self._carry(session, intake, await session.after(state.uid), state)

    async def _first_start(self, session: Session, intake: Intake) -> Cursor:
        last = session.uidnext - 1
        uids: list[int] = []
        if self._config.import_days:
            since = self._today() - timedelta(days=self._config.import_days)
            uids = [u for u in await session.since(since) if u <= last]
        start = Cursor(
            session.uidvalidity, min(uids) - 1 if uids else last, self._today().isoformat()
        )
        await intake.upstream_batch(SOURCE, [], start.dump())
        log.info(
            "first start: carrying mail from here on",
            extra={"uid": start.uid, "imported": len(uids), "mailbox": self._config.mailbox},
        )
        return start

    async def _carry(
        self,
        session: Session,
        intake: Intake,
        uids: list[int],
        state: Cursor,
        rescan_of: Cursor | None = None,
    ) -> Cursor:
        """Fetch ``uids`` in batches, each stored with the cursor that covers it."""
        for start in range(0, len(uids), BATCH):
            batch = uids[start : start + BATCH]
            meta = await session.sizes(batch)
            arrivals: list[Arrival] = []
            day = state.day
            subjects: dict[str, str] = {}
            for uid in batch:
                if uid not in meta:
                    continue  # expunged since the search
                size, arrived = meta[uid]
                if arrived is not None:
                    day = max(day, arrived.isoformat())
                fetched = await session.fetch(uid, size, SIZE_LIMIT)
                if fetched.body is None:
                    continue
                where = Where(session.uidvalidity, uid)
                if size > SIZE_LIMIT:
                    arrivals.append(parse.too_large(where, size, fetched.body))
                    continue
                if rescan_of and _seen_before(fetched.body, arrived, rescan_of):
                    continue
                arrival = parse.parse_mail(
                    fetched.body, where, self._config.address, self._avatar_for
                )
                arrivals.append(await self._with_subject(arrival, subjects))
            state = Cursor(session.uidvalidity, max(state.uid, batch[-1]), day)
            await intake.upstream_batch(SOURCE, arrivals, state.dump())
            log.info("mail carried", extra={"mails": len(arrivals), "uid": state.uid})
        return state

    async def _with_subject(self, arrival: Arrival, subjects: dict[str, str]) -> Arrival:
        """The first mail of a conversation, or of a new topic, shows its subject."""
        message = arrival.message
        if message is None:
            return arrival
        thread = Thread.from_json(message.context)
        sender = message.customer.upstream_id
        if sender in subjects:
            previous: str | None = subjects[sender]
        else:
            previous = await self._previous_subject(sender)
        subject = thread.subject if thread else ""
        subjects[sender] = subject
        if not parse.new_topic(subject, previous):
            return arrival
        text = f"Subject: {subject}\n\n{message.text}"
        return dataclasses.replace(arrival, message=dataclasses.replace(message, text=text))

    async def _previous_subject(self, sender: UpstreamUserId) -> str | None:
        if self._store is None:
            return None
        thread = Thread.from_json(await q.reply_context(self._store, SOURCE, sender))
        return thread.subject if thread else None


def _seen_before(raw: bytes, arrived: date | None, before: Cursor) -> bool:
    """In a rescan, a mail without a Message-ID cannot be told apart by its new UID: one
    that arrived by the day the last carried mail did is taken as carried already."""
    if parse.message_id_of(raw) is not None:
        return False  # its Message-ID is remembered: the intake carries it once
    return arrived is not None and arrived.isoformat() <= before.day
