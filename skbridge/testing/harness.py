"""A workspace of fakes and the real daemon pointed at them, for tests, the demo and benchmarks.

Everything speaks the real protocols over loopback: the daemon under test is the real
:class:`~skbridge.service.Service` built from a real config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skbridge.config import Config, load_config
from skbridge.ids import SourceName
from skbridge.service import Service
from skbridge.testing.fake_gravatar import FakeGravatar
from skbridge.testing.fake_slack import FakeSlack, Message
from skbridge.testing.fake_telegram import FakeTelegram
from skbridge.upstreams.mail.upstream import Email

OWNER = "UOWNER"
ALICE = "UALICE"
BOB = "UBOB"
ALICE_EMAIL = "Alice@Example.com "
DISPATCH = "support"
LEASE_SECONDS = 3
"""Leases in PostgreSQL test configs: short, so another instance takes over in seconds."""
ADA = 1001
"""The Telegram user ID of the customer most tests talk to."""


@dataclass
class Fakes:
    slack: FakeSlack
    telegram: FakeTelegram
    gravatar: FakeGravatar
    dispatch_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    store_url: str | None = None
    """A database URL for every config written (PostgreSQL); None: an SQLite file."""

    def config_text(
        self,
        db_path: Path,
        *,
        dispatch: str = DISPATCH,
        user_token: bool = False,
        poll_timeout: int = 20,
        log_level: str = "INFO",
        posts_per_second: float = 10_000,
        channels_per_minute: float = 600_000,
        ping_interval: float = 10.0,
        telegram_timeout: float = 5,
        email: Mailboxes | None = None,
        telegram: bool = True,
    ) -> str:
        """A config for the fakes; Slack pacing is effectively off unless rates are given.

        ``email``: a real IMAP and SMTP server to add as the ``[sources.email]`` upstream.
        """
        user = f'user_token = "{self.slack.user_token}"\n' if user_token else ""
        sources = email.config_text() if email else ""
        if telegram:
            sources += (
                "\n[sources.telegram]\n"
                f'bot_token = "{self.telegram.token}"\n'
                f'api_url = "{self.telegram.api_url}"\n'
                f"poll_timeout = {poll_timeout}\n"
                f"request_timeout = {telegram_timeout}\n"
            )
        return (
            "[slack]\n"
            f'bot_token = "{self.slack.bot_token}"\n'
            f'app_token = "{self.slack.app_token}"\n'
            f"{user}"
            f'dispatch_channel = "{dispatch}"\n'
            f'api_url = "{self.slack.api_url}"\n'
            "request_timeout = 5\n"
            f"ping_interval = {ping_interval}\n"
            f"posts_per_second = {posts_per_second}\n"
            f"channels_per_minute = {channels_per_minute}\n"
            f"{sources}"
            "\n[store]\n"
            f"{self._store_line(db_path)}\n"
            "\n[gravatar]\n"
            f'url = "{self.gravatar.url}"\n'
            "\n[log]\n"
            f'level = "{log_level}"\n'
        )

    def _store_line(self, db_path: Path) -> str:
        if self.store_url is None:
            return f'path = "{db_path}"'
        return f'url = "{self.store_url}"\nlease_seconds = {LEASE_SECONDS}'

    def write_config(self, directory: Path, **options: object) -> Path:
        path = directory / "config.toml"
        path.write_text(self.config_text(directory / "skbridge.db", **options))  # type: ignore[arg-type]
        return path


@dataclass
class Mailboxes:
    """The support mailbox's servers, as a ``[sources.email]`` table points at them."""

    imap_port: int
    smtp_port: int
    imap_user: str
    imap_password: str
    smtp_user: str
    smtp_password: str
    address: str = "support@example.com"
    display_name: str = "{agent} at Example Support"
    import_days: int = 0

    def config_text(self) -> str:
        return (
            "\n[sources.email]\n"
            f'address = "{self.address}"\n'
            'imap_host = "127.0.0.1"\n'
            f"imap_port = {self.imap_port}\n"
            'imap_security = "none"\n'
            f'imap_username = "{self.imap_user}"\n'
            f'imap_password = "{self.imap_password}"\n'
            'smtp_host = "127.0.0.1"\n'
            f"smtp_port = {self.smtp_port}\n"
            'smtp_security = "none"\n'
            f'smtp_username = "{self.smtp_user}"\n'
            f'smtp_password = "{self.smtp_password}"\n'
            f'display_name = "{self.display_name}"\n'
            f"import_days = {self.import_days}\n"
        )


@contextlib.asynccontextmanager
async def fakes(**slack_options: float | None) -> AsyncIterator[Fakes]:
    """A Slack workspace (owner, two agents, a dispatch channel), a Telegram bot, Gravatar."""
    async with (
        FakeSlack(**slack_options) as slack,  # type: ignore[arg-type]
        FakeTelegram() as telegram,
        FakeGravatar() as gravatar,
    ):
        slack.add_user(
            OWNER,
            "olivia",
            real_name="Olivia Owner",
            is_primary_owner=True,
            is_owner=True,
            email="olivia@example.com",
        )
        slack.add_user(
            ALICE,
            "alice",
            display_name="Alice",
            real_name="Alice Agent",
            email=ALICE_EMAIL.strip(),
            image_192="https://img.example/alice.png",
        )
        slack.add_user(
            BOB,
            "bob",
            display_name="Bob",
            email="bob@example.com",
            image_192="https://img.example/bob.png",
        )
        gravatar.add(ALICE_EMAIL)
        dispatch_id = slack.add_channel(DISPATCH, members=[OWNER, ALICE, BOB])
        yield Fakes(slack, telegram, gravatar, dispatch_id)


class Daemon:
    """The real service, run in this event loop, restartable."""

    def __init__(self, config_path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.config_path = config_path
        self.clock = clock
        self.service: Service | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    async def start(self, wait_ready: bool = True) -> Service:
        service = Service(self.config, config_path=self.config_path, clock=self.clock)
        self.service = service
        self._task = asyncio.create_task(service.run(), name="daemon")
        if wait_ready:
            ready = asyncio.create_task(service.ready.wait())
            done, _ = await asyncio.wait(
                {ready, self._task}, timeout=20, return_when=asyncio.FIRST_COMPLETED
            )
            if self._task in done:
                ready.cancel()
                self._task.result()
                raise RuntimeError("daemon stopped before it was ready")
            if ready not in done:
                ready.cancel()
                raise TimeoutError("daemon not ready within 20 s")
        return service

    async def stop(self) -> None:
        if self.service is None or self._task is None:
            return
        self.service.stop()
        try:
            await asyncio.wait_for(self._task, 20)
        finally:
            self.service = None
            self._task = None

    async def kill(self) -> None:
        """Stop abruptly, like a crash: cancel everything without the orderly shutdown."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.service = None
        self._task = None

    async def restart(self) -> Service:
        await self.stop()
        return await self.start()

    async def mail_caught_up(self, within: float = 10) -> None:
        """Until the email receiver has carried the mailbox and waits for news."""
        assert self.service is not None
        upstream = self.service.upstreams[SourceName("email")]
        assert isinstance(upstream, Email)
        await asyncio.wait_for(upstream.caught_up.wait(), within)

    async def wait_idle(self, within: float = 10) -> None:
        """Until the outbox has nothing left to do."""
        assert self.service is not None and self.service.outbox is not None
        await asyncio.wait_for(self.service.outbox.idle.wait(), within)


def customer_channel(slack: FakeSlack, name: str = "sk-ada-lovelace") -> str:
    channel = slack.channel_by_name(name)
    assert channel is not None, f"no channel {name}"
    return channel.id


async def mail_channel(
    world: Fakes, name: str = "sk-ada-lovelace", count: int = 1, within: float = 10
) -> str:
    """The channel ``name``, once it holds ``count`` posts."""
    await world.slack.wait_for(
        lambda: (
            world.slack.channel_by_name(name) is not None
            and len(world.slack.messages(customer_channel(world.slack, name))) >= count
        ),
        timeout=within,
    )
    return customer_channel(world.slack, name)


def texts(slack: FakeSlack, channel_id: str) -> list[str]:
    return [m.text for m in slack.messages(channel_id)]


def dispatch_notices(world: Fakes) -> list[Message]:
    return [m for m in world.slack.messages(world.dispatch_id) if m.bot_id]


async def first_message(world: Fakes, text: str = "Hello") -> str:
    world.telegram.customer_says(ADA, text, first_name="Ada", last_name="Lovelace")
    await world.slack.wait_for(
        lambda: (
            world.slack.channel_by_name("sk-ada-lovelace") is not None
            and bool(world.slack.messages(customer_channel(world.slack)))
        )
    )
    return customer_channel(world.slack)


def say(world: Fakes, text: str, user: int = ADA) -> int:
    """Ada (or ``user``, under Ada's name) writes ``text`` on Telegram; returns the update ID."""
    return world.telegram.customer_says(user, text, first_name="Ada", last_name="Lovelace")


async def archived_and_back(world: Fakes) -> tuple[str, dict[str, Any]]:
    """Ada writes, the team archives her channel, she writes again once that was acked.

    Returns her channel and the ``channel_archive`` envelope, for redelivery tests.
    """
    channel = await first_message(world)
    await world.slack.user_archives(channel, ALICE)
    archive = next(e for e in world.slack.deliveries if e["type"] == "events_api")
    await world.slack.wait_ack(archive["envelope_id"])
    say(world, "back")
    return channel, archive


async def parked_input(daemon: Daemon) -> list[tuple[str, str, str]]:
    """Every parked input of the running daemon: ``(origin, payload, error)``, oldest first."""
    assert daemon.service is not None and daemon.service.db is not None
    rows = await daemon.service.db.all(
        "SELECT origin, payload, error FROM parked_input ORDER BY id"
    )
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def button(message: Message, action: str | None = None) -> dict[str, Any]:
    """The first button of a message's actions (the one with ``action`` as its action_id)."""
    return next(
        element
        for block in message.blocks or []
        if block["type"] == "actions"
        for element in block["elements"]
        if action is None or element.get("action_id") == action
    )


async def click(
    world: Fakes, channel: str, user: str, message: Message, action: str | None = None
) -> dict[str, Any]:
    """``user`` presses a button of ``message`` in ``channel``; returns the acked envelope."""
    pressed = button(message, action)
    envelope = await world.slack.send_block_action(
        channel, user, pressed["action_id"], pressed["value"]
    )
    await world.slack.wait_ack(envelope["envelope_id"])
    return envelope


class DaemonProcess:
    """The real ``skbridge run``, as a child process; its stderr kept in a file (beside
    its config unless ``log`` says where: a pipe nobody reads would stall a chatty child)."""

    def __init__(self, config: Path, log: Path | None = None) -> None:
        self.config = config
        self.log = log or config.parent / "skbridge.stderr"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, world: Fakes) -> None:
        before = world.slack.connections_opened
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "skbridge", "run", "-c", str(self.config),
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        await world.slack.wait_for(lambda: world.slack.connections_opened > before, timeout=30)

    async def signal(self, signum: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        self.proc = None
        return code

    @property
    def stderr(self) -> str:
        """Everything the runs so far wrote to stderr."""
        return self.log.read_text() if self.log.exists() else ""

    def memory(self) -> tuple[int, int]:
        """The process's resident set now and at its peak (VmRSS, VmHWM), in bytes."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss, peak = (int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM"))
        return rss, peak

    async def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await self.proc.wait()
            self.proc = None


@contextlib.asynccontextmanager
async def write_lock_held(path: Path) -> AsyncIterator[None]:
    """Another process holds the SQLite database's write lock for the duration."""
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
        "c.execute('ROLLBACK')\n"
    )
    locker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert locker.stdout is not None and locker.stdin is not None
    try:
        assert await locker.stdout.readline() == b"locked\n"
        yield
    finally:
        locker.stdin.close()
        await locker.wait()
