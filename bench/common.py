"""What every benchmark run shares: a bridge (the daemon or the floor) attached to a world."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench import proc
from bench.world import Customer, World, seed_database, unfinished_work, until

Bridge = Literal["daemon", "floor"]


@dataclass(frozen=True, slots=True)
class Options:
    """How a benchmark run is carried out (from the command line)."""

    quick: bool = False
    profile_dir: Path | None = None
    """Attach ``py-spy record`` to every daemon and write collapsed stacks here."""


@dataclass
class Running:
    child: proc.Child
    ready_seconds: float
    database: Path | None
    """The daemon's database (None for the floor)."""

    async def settle(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Until the daemon has finished all its work (outbox empty), so phases do not overlap.

        Posts reach the fake before their rows are marked done: after a burst the
        daemon may still be committing for a while.
        """
        if self.database is not None:
            database = self.database
            deadline = asyncio.get_running_loop().time() + timeout
            while await unfinished_work(database):
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"not within {timeout:.0f} s: daemon idle")
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)


POSTS_PER_SECOND = 1.0
CHANNELS_PER_MINUTE = 20.0
"""The daemon's production pacing (skbridge.config.SlackConfig defaults), used in every run."""


def write_config(world: World, directory: Path, *, lifted: bool = False) -> Path:
    """The harness's config for these fakes, with the daemon's real (default) Slack pacing.

    The harness turns pacing off by default for tests; benchmarks measure the daemon as
    it runs in production, except where ``lifted`` asks for the harness's (no pacing):
    to compare the daemon's own overhead with the floor's.
    """
    if lifted:
        return world.fakes(directory).write_config(directory)
    return world.fakes(directory).write_config(
        directory, posts_per_second=POSTS_PER_SECOND, channels_per_minute=CHANNELS_PER_MINUTE
    )


def floor_spec(world: World, people: Sequence[Customer], directory: Path) -> Path:
    spec = {
        "telegram_url": world.telegram.api_url,
        "telegram_token": world.telegram.token,
        "slack_api": world.slack.api_url,
        "bot_token": world.slack.bot_token,
        "app_token": world.slack.app_token,
        "channels": {str(c.chat_id): c.channel_id for c in people},
        "max_seconds": 900,
    }
    path = directory / "floor.json"
    path.write_text(json.dumps(spec))
    return path


@contextlib.asynccontextmanager
async def bridge(
    kind: Bridge,
    world: World,
    people: Sequence[Customer],
    directory: Path,
    options: Options,
    *,
    mode: Literal["upstream", "replies"] = "upstream",
    seed: bool = True,
    name: str = "run",
    kill: bool = False,
    lifted: bool = False,
) -> AsyncIterator[Running]:
    """Start the daemon (database seeded with ``people``) or the floor; stop it afterwards.

    ``kill`` ends the daemon with SIGKILL: for runs that leave a backlog on purpose;
    ``lifted`` runs it without Slack pacing (:func:`write_config`).
    """
    if kind == "daemon":
        if seed:
            await seed_database(directory / "skbridge.db", people)
        child = proc.daemon(write_config(world, directory, lifted=lifted))
    else:
        child = proc.floor(mode, floor_spec(world, people, directory))
    ready = await child.start()
    profiler: proc.Profiler | None = None
    try:
        if mode == "upstream":
            await until(lambda: world.telegram.polling, 10, f"{child.name} polling Telegram")
        else:
            await world.slack.wait_connected()
        if kind == "daemon":
            profiler = await proc.start_profiler(child.pid, options.profile_dir, name)
        yield Running(child, ready, directory / "skbridge.db" if kind == "daemon" else None)
    finally:
        if profiler is not None:
            await profiler.stop()
        if kill:
            await child.kill()
        else:
            await child.stop()
