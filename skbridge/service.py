"""The daemon: wires the parts together, owns every task, and shuts down in order.

Start: open the database, connect to Slack (identity, dispatch channel), check each
upstream, queue unfinished work, then receive. ``READY=1`` goes to systemd once Socket
Mode is connected. Stop (SIGTERM/SIGINT): stop receiving (unacked envelopes and
unconfirmed updates are redelivered later), let work in flight finish within the
deadline, then close connections and the database. A task that crashes stops the
daemon loudly, so systemd restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import httpx

from skbridge import clients, logs, retry
from skbridge.chores import Chores
from skbridge.config import Config, load_config, secrets
from skbridge.core.model import ReportOutage
from skbridge.deliver import Deliverer
from skbridge.errors import ConfigError, DeliveryError, Refused, StoreUnavailable
from skbridge.gravatar import Gravatar
from skbridge.health import Health, Outage
from skbridge.ids import SourceName
from skbridge.intake import Intake, cursor_key
from skbridge.lanes import LaneClaims
from skbridge.leases import Lease, Leases, instance_id
from skbridge.notify import Notifier
from skbridge.outbox import Outbox
from skbridge.shared_pacing import pacer_for
from skbridge.slack import errors as slack_errors
from skbridge.slack.files import SlackFiles
from skbridge.slack.socket import SocketMode
from skbridge.slack.web import SlackWeb
from skbridge.slack.workspace import Agents, Workspace
from skbridge.store import Store, Tx, figures, open_store
from skbridge.store import queries as q
from skbridge.store.persist import persist, until_stored
from skbridge.upstreams import Services, Upstream, registry

log = logging.getLogger(__name__)
T = TypeVar("T")

SHUTDOWN_DEADLINE = 8.0
RECONNECTS = "skbridge_socket_reconnects_total"
LONG_OUTAGE = 120.0
"""An outage at least this long is reported in the dispatch channel once it is over."""


class Service:
    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier({})
        self.ready = asyncio.Event()
        self.stopped = asyncio.Event()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._clock = clock
        self._state = "starting"
        self.outbox: Outbox | None = None
        self.chores: Chores | None = None
        self.db: Store | None = None
        self.upstreams: dict[SourceName, Upstream] = {}
        self.health = Health(clock)
        self.instance = instance_id()
        self.leases: Leases | None = None
        logs.add_secrets(secrets(config))

    def stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        """SIGHUP: re-read the config file; applied by the running loop."""
        self._reload.set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.stopped.set()

    async def _run(self) -> None:
        config = self.config
        self.notifier.status("opening the database")
        location = config.store.location
        db = await self._until_connected("the database", lambda: open_store(location))
        if db is None:
            return
        self.db = db
        try:
            async with clients.opened(config.slack.request_timeout) as (session, http):
                await self._serve(db, session, http)
        finally:
            await db.close()
            log.info("stopped")

    async def _serve(
        self, db: Store, session: aiohttp.ClientSession, http: httpx.AsyncClient
    ) -> None:
        config = self.config
        health = self.health
        leases = self.leases = Leases(db, self.instance, config.store.lease_seconds)
        await until_stored(leases.start, what="instance")
        workspace: Workspace | None = None

        def dispatch_channel(channel: str) -> bool:
            return bool(workspace and workspace.dispatch and workspace.dispatch.id == channel)

        pace = pacer_for(db, shared_channel=dispatch_channel)
        serial = (lambda: leases.exclusive("slack:create-channel")) if db.shared else None
        web = SlackWeb(config.slack, session, health, pace=pace, serial=serial)
        self.notifier.status("connecting to Slack")
        workspace = await self._until_connected("slack", lambda: _workspace(web, config))
        if workspace is None:
            return
        gravatar = Gravatar(config.gravatar, http)
        services = Services(
            http, session, health, avatar_for=gravatar.identicon, store=db, pace=pace
        )
        upstreams = self.upstreams = registry.build(config.sources, services)
        for upstream in upstreams.values():
            if await self._until_connected(upstream.name, upstream.check) is None:
                return
        agents = Agents(web, gravatar)
        files = SlackFiles(web, http, config.slack)
        deliverer = Deliverer(db, workspace, agents, upstreams, files, config.slack, self._clock)
        claims = LaneClaims(db, self.instance, config.store.lease_seconds)
        outbox = self.outbox = Outbox(db, deliverer, claims=claims, health=health)
        intake = Intake(
            db,
            outbox.submit,
            clock=self._clock,
            on_store_state=self._store_state,
            dispatch=lambda: workspace.dispatch.id if workspace.dispatch else None,
        )
        chores = self.chores = Chores(db, outbox.submit, lambda: self.config.slack, self._clock)
        pending = await outbox.load()
        record = functools.partial(_record_outages, health.outages, [], self._clock())
        await persist(db, record, what="outages")  # what a previous run left is over
        log.info("started", extra={"pending": pending, "sources": ",".join(upstreams)})
        socket = SocketMode(
            web,
            session,
            intake.slack_batch,
            park=intake.park_envelope,
            heartbeat=config.slack.ping_interval,
            on_state=self._socket_state,
        )

        async with asyncio.TaskGroup() as group:
            work = group.create_task(outbox.run(), name="outbox")
            receivers = [group.create_task(socket.run(), name="socket mode")]
            for name, upstream in upstreams.items():
                poll = functools.partial(_poll, db, intake, leases, upstream)
                held = leases.hold(f"upstream:{name}", poll, task=name)
                receivers.append(group.create_task(held, name=f"lease {name}"))
            helpers = [
                group.create_task(claims.keep(outbox.busy, outbox.lose, outbox.wake), name="lanes"),
                group.create_task(self._announce_ready(socket), name="ready"),
                group.create_task(self._heartbeat(), name="heartbeat"),
                group.create_task(chores.run(), name="chores"),
                group.create_task(self._reloader(workspace, deliverer), name="reload"),
                group.create_task(self._watch_health(db, outbox), name="health"),
                group.create_task(gravatar.run(), name="gravatar"),
                group.create_task(self._count_reconnects(db, socket), name="reconnects"),
            ]
            if address := config.metrics.address:
                from skbridge import metrics  # prometheus_client, only when it is served

                served = metrics.serve(db, *address)
                helpers.append(group.create_task(served, name="metrics"))
            await self._stop.wait()

            self.notifier.stopping()
            log.info("stopping", extra={"backlog": outbox.backlog})
            for task in receivers + helpers:
                task.cancel()
            await asyncio.gather(*receivers, *helpers, return_exceptions=True)
            if not await outbox.drain(SHUTDOWN_DEADLINE):
                log.warning("work in flight left for the next start")
            work.cancel()
            await _give_back(leases, claims, outbox.running)

    async def _until_connected(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T | None:
        return await _until_connected(what, self._stop, attempt, self.notifier)

    async def _announce_ready(self, socket: SocketMode) -> None:
        await socket.connected.wait()
        # What start-up built lives as long as the daemon: keep it out of every GC pass.
        gc.freeze()
        self.ready.set()
        self.notifier.ready()
        log.info("ready")

    async def _reloader(self, workspace: Workspace, deliverer: Deliverer) -> None:
        """Apply SIGHUPs: dispatch channel, auto-invite list and log level, no reconnects."""
        while True:
            await self._reload.wait()
            self._reload.clear()
            self.notifier.reloading()
            new = reload_config(self)
            if new is not None:
                try:
                    if new.slack.dispatch_channel != self.config.slack.dispatch_channel:
                        await workspace.set_dispatch(new.slack.dispatch_channel)
                    deliverer.config = new.slack
                    logs.setup(new.log.level, new.log.format)
                    if secrets(new) != secrets(self.config):
                        log.warning("token changes need a restart; keeping the running tokens")
                    self.config = new
                    log.info("configuration reloaded")
                except (ConfigError, DeliveryError) as exc:
                    log.error(
                        "reload refused; keeping the running config", extra={"error": str(exc)}
                    )
            self.notifier.ready()

    async def housekeeping_once(self) -> None:
        """Forget finished work and deduplication keys older than a week."""
        if self.chores is not None:
            await self.chores.housekeeping_once()

    async def _watch_health(self, db: Store, outbox: Outbox) -> None:
        """Keep the running outages in the database; tell dispatch when a long one ends."""
        health = self.health
        while True:
            await health.changed.wait()
            health.changed.clear()
            for outage in health.outages:
                log.warning("outage", extra={"system": outage.system, "error": outage.error})
            ended = health.take_ended()
            for outage in ended:
                log.info("outage over", extra={"system": outage.system, "error": outage.error})
            reports = [
                ReportOutage(o.system, o.since, o.until, o.error)
                for o in ended
                if o.until is not None and o.until - o.since >= LONG_OUTAGE
            ]
            record = functools.partial(_record_outages, health.outages, reports, self._clock())
            outbox.submit(await persist(db, record, what="outages"))

    async def _count_reconnects(self, db: Store, socket: SocketMode) -> None:
        """Every Socket Mode connection after the first is counted, for monitoring."""
        counted = 1
        while True:
            await socket.connected.wait()
            if socket.connections > counted:
                new, counted = socket.connections - counted, socket.connections
                record = functools.partial(_record_reconnects, by=new)
                await persist(db, record, what="reconnects")
            await socket.disconnected.wait()

    def _socket_state(self, state: str) -> None:
        self._state = state

    def _store_state(self, problem: str | None) -> None:
        self._state = f"degraded: {problem}" if problem else "connected"

    def status_line(self) -> str:
        """``connected; backlog 0``, or what is wrong: ``Slack has failed for 12 min; …``."""
        backlog = self.outbox.backlog if self.outbox else 0
        problem = self.outbox.store_problem if self.outbox else None
        outages = self.health.outages
        if outages and not problem:
            now = self._clock()
            down = "; ".join(
                f"{o.system} has failed for {o.minutes(now)} min ({o.error})" for o in outages
            )
            return f"{down}; {backlog} messages waiting"
        state = f"degraded: {problem}" if problem else self._state
        return f"{state}; backlog {backlog}"

    async def _heartbeat(self) -> None:
        """WATCHDOG=1 from the event loop itself (a stalled loop gets restarted) and STATUS=."""
        every = self.notifier.watchdog_interval or 5.0
        while True:
            self.notifier.send(WATCHDOG=1, STATUS=self.status_line())
            await asyncio.sleep(every)


async def _workspace(web: SlackWeb, config: Config) -> Workspace:
    try:
        return await Workspace.connect(web, config.slack.dispatch_channel)
    except Refused as exc:
        if exc.code in slack_errors.BAD_TOKEN:
            raise ConfigError("slack.bot_token", f"Slack refused it ({exc.code})") from None
        if exc.code in slack_errors.MISSING_SCOPE:
            raise ConfigError(
                "slack", "the app lacks a scope; reinstall it from the manifest"
            ) from None
        raise


async def _record_reconnects(tx: Tx, by: int) -> None:
    await figures.count(tx, RECONNECTS, {}, by)


async def _poll(
    db: Store, intake: Intake, leases: Leases, upstream: Upstream, lease: Lease
) -> None:
    """Receive from ``upstream`` while this instance holds its lease: every batch is
    stored only if the lease is still ours (the fence), starting from the cursor that
    the previous holder stored last."""
    intake.fences[upstream.name] = lambda tx: leases.fence(tx, lease)
    try:
        key = cursor_key(upstream.name)
        cursor = await until_stored(lambda: q.get_setting(db, key), what="cursor")
        await upstream.run(intake, cursor)
    finally:
        intake.fences.pop(upstream.name, None)


async def _give_back(leases: Leases, claims: LaneClaims, running: set[str]) -> None:
    """A clean stop: other instances take over at once. A lane still running is left to
    expire, so that whoever takes it looks before acting on its head."""
    try:
        await claims.release(claims.held - running, only_empty=False)
        await leases.release_all()
    except StoreUnavailable as exc:
        log.warning("leases left to expire", extra={"error": str(exc)})


async def _record_outages(
    outages: list[Outage], reports: list[ReportOutage], now: float, tx: Tx
) -> list[q.OutboxRow]:
    await q.set_outages(tx, outages)
    return await q.enqueue(tx, None, reports, now)


async def _until_connected(
    what: str,
    stop: asyncio.Event,
    attempt: Callable[[], Awaitable[T]],
    notifier: Notifier,
) -> T | None:
    """Retry ``attempt`` until it succeeds or the daemon is asked to stop (then None).

    Refusals that no retry can fix (a bad token) become ConfigError: exit 78.
    """
    failures = 0
    while not stop.is_set():
        try:
            return await attempt()
        except Refused as exc:
            source = registry.by_name(what)
            if source is not None and source.refuses(exc):
                said = exc.detail if source.fix_for else exc.code
                raise ConfigError(
                    source.refused_key(exc), f"{source.label} refused it ({said})"
                ) from None
            raise
        except (DeliveryError, StoreUnavailable) as exc:
            failures += 1
            delay = retry.RECONNECT.delay(failures)
            log.warning(f"cannot reach {what}", extra={"error": str(exc), "retry_in": delay})
            code = exc.code if isinstance(exc, DeliveryError) else str(exc)
            notifier.status(f"cannot reach {what} ({code}); retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
    return None


def install_signals(service: Service) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, service.stop)
    loop.add_signal_handler(signal.SIGINT, service.stop)
    loop.add_signal_handler(signal.SIGHUP, service.reload)


def reload_config(service: Service) -> Config | None:
    if service.config_path is None:
        return None
    try:
        return load_config(service.config_path)
    except ConfigError as exc:
        log.error("reload refused; keeping the running config", extra={"error": str(exc)})
        return None
