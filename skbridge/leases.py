"""Leases: which instance does what when several share one database.

A lease is a row in ``leases``: a name (``upstream:telegram``), its holder (an
instance), a fencing token and an expiry on the database's clock (``skbridge_now()``),
so instances whose clocks disagree still agree on who holds what. A holder renews well
before expiry, from a task of its own (a long poll in flight never delays it); a
standby tries again every fifth of a lease, so it takes over at most 1.2 leases after
the holder's last renewal. The token grows with every new holder: work guarded by a
lease is written only if ``fence`` finds the same token in the same transaction, so a
holder that stalled (paused, cut off) and wakes up after losing the lease writes
nothing. Locally a holder gives up a lease once a full lease has passed since the last
renewal it saw succeed, which is never later than the database's expiry.

On a store that is not shared (an SQLite file: one machine, one instance) an instance
that starts takes over every lease at once: whoever held them was this machine's
previous run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from skbridge.errors import SkbridgeError, StoreUnavailable
from skbridge.store import Store, Tx, leasing

log = logging.getLogger(__name__)

LEASE_SECONDS = 10.0
"""Default lease: a dead holder's work is taken over within 12 s (the issue asks 15)."""


class LeaseLost(SkbridgeError):
    """Another instance holds the lease now: stop the work it guarded, write nothing."""


def instance_id() -> str:
    """This process's name in the database: host, pid and a random part (pids recur)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    token: int
    taken_over: bool
    """The previous holder did not give it back: work it had in flight is in doubt."""


class Leases:
    def __init__(self, db: Store, holder: str, seconds: float = LEASE_SECONDS) -> None:
        self.db = db
        self.holder = holder
        self.seconds = seconds
        self._valid_until: dict[str, float] = {}

    @property
    def renew_every(self) -> float:
        return self.seconds / 3

    @property
    def retry_every(self) -> float:
        return self.seconds / 5

    async def start(self) -> None:
        """Record this instance; on an unshared store, end every earlier run's leases."""
        async with self.db.write() as tx:
            await leasing.register_instance(
                tx, self.holder, socket.gethostname(), os.getpid(), self.seconds * 30
            )
            if not self.db.shared:
                await leasing.end_earlier_runs(tx, self.holder)

    def valid(self, name: str) -> bool:
        """Whether this instance may still act under ``name`` (by its own clock)."""
        return asyncio.get_running_loop().time() < self._valid_until.get(name, 0.0)

    async def try_take(self, name: str) -> Lease | None:
        """The lease, if nobody else holds it now."""
        asked = asyncio.get_running_loop().time()
        async with self.db.write() as tx:
            before = await leasing.lease_holder(tx, name)
            if before is not None and before[1] and before[0] != self.holder:
                return None
            token = await leasing.take_lease(tx, name, self.holder, self.seconds)
        if token is None:
            return None
        self._valid_until[name] = asked + self.seconds
        taken_over = before is not None and before[0] not in (leasing.RELEASED, self.holder)
        return Lease(name, token, taken_over)

    async def renew(self, lease: Lease) -> bool:
        """Extend ``lease``; False once it is lost. Raises StoreUnavailable."""
        asked = asyncio.get_running_loop().time()
        async with self.db.write() as tx:
            kept = await leasing.renew_lease(tx, lease.name, self.holder, lease.token, self.seconds)
            await leasing.seen(tx, self.holder)
        if kept:
            self._valid_until[lease.name] = asked + self.seconds
            return True
        self._valid_until.pop(lease.name, None)
        return False

    async def fence(self, tx: Tx, lease: Lease) -> None:
        """Inside the transaction that does the guarded work: raise LeaseLost unless this
        instance still holds ``lease``. The row stays locked until that commit, so a
        takeover waits for it and then sees what it wrote."""
        if not await leasing.still_holds(tx, lease.name, self.holder, lease.token):
            raise LeaseLost(f"{lease.name} is held by another instance now")

    async def release(self, lease: Lease) -> None:
        self._valid_until.pop(lease.name, None)
        async with self.db.write() as tx:
            await leasing.release_lease(tx, lease.name, self.holder, lease.token)

    async def _take(self, name: str) -> Lease:
        """Wait until the lease is ours."""
        while True:
            try:
                lease = await self.try_take(name)
            except StoreUnavailable as exc:
                log.warning("lease not taken", extra={"lease": name, "error": str(exc)})
                lease = None
            if lease is not None:
                return lease
            await asyncio.sleep(self.retry_every)

    async def hold(
        self, name: str, body: Callable[[Lease], Coroutine[Any, Any, None]], task: str
    ) -> None:
        """Run ``body`` whenever this instance holds ``name``, forever: take the lease
        (waiting while another instance has it), keep it renewed, and cancel ``body`` the
        moment it is lost; then wait to take it again."""
        while True:
            lease = await self._take(name)
            log.info(
                "lease taken",
                extra={"lease": name, "token": lease.token, "taken_over": lease.taken_over},
            )
            lost: str | None = None
            try:
                async with asyncio.TaskGroup() as group:
                    work = group.create_task(body(lease), name=task)
                    keeper = group.create_task(self._keep(lease), name=f"lease {name}")
                    await work
                    keeper.cancel()
            except* LeaseLost as group_lost:
                lost = str(group_lost.exceptions[0])
            if lost is None:
                await self.release(lease)
                return
            log.warning("lease lost", extra={"lease": name, "error": lost})

    async def _keep(self, lease: Lease) -> None:
        """Renew until the lease is lost, or cannot be renewed before it runs out."""
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                if not await self.renew(lease):
                    raise LeaseLost(f"{lease.name} was taken over")
            except StoreUnavailable as exc:
                log.warning("lease not renewed", extra={"lease": lease.name, "error": str(exc)})
                if not self.valid(lease.name):
                    raise LeaseLost(f"{lease.name} could not be renewed in time") from exc

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str, poll: float = 0.05) -> AsyncIterator[None]:
        """A short section only one instance runs at a time (creating a channel)."""
        while True:
            lease = await self.try_take(name)
            if lease is not None:
                break
            await asyncio.sleep(poll)
        try:
            yield
        finally:
            with contextlib.suppress(StoreUnavailable):  # it expires on its own then
                await self.release(lease)

    async def release_all(self) -> None:
        """At a clean stop: give back every lease, so others need not wait for expiry."""
        self._valid_until.clear()
        async with self.db.write() as tx:
            await leasing.forget_instance(tx, self.holder)
