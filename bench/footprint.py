"""Benchmark 4: memory and start-up with 1k, 10k and 100k stored conversations.

Before the daemon starts, the database is created with the daemon's own migrations and
filled with open conversations and their channels (through the store). A few hundred
of them, spread over the table, also exist in the fake Slack: the load is theirs.

* ready: from spawning ``python -m skbridge run`` to its ``skbridge.service: ready``
  line (database open, Slack connected, Telegram answered; Socket Mode up);
* RSS at start: VmRSS one second after ready, idle;
* RSS under load: the largest VmRSS sampled every 0.2 s while the paced load (the
  upstream benchmark's, 200 msg/s) runs and drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import proc
from bench.common import Options, write_config
from bench.upstream import paced
from bench.world import Customer, customers, seed_database, until, with_channels, world


@dataclass(frozen=True, slots=True)
class Plan:
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    active: int = 500
    rate: float = 200.0
    seconds: float = 6.0
    settle: float = 1.0

    @classmethod
    def for_options(cls, options: Options) -> Plan:
        return cls(seconds=3.0) if options.quick else cls()


async def sample_rss(pid: int, into: list[float], every: float = 0.2) -> None:
    while True:
        with contextlib.suppress(OSError, RuntimeError):
            into.append(proc.rss_mb(pid))
        await asyncio.sleep(every)


async def one_size(size: int, plan: Plan, options: Options, name: str) -> dict[str, float]:
    async with world() as w:
        step = size // plan.active
        chosen = [c for c in customers(size) if c.number % step == 0][: plan.active]
        active: list[Customer] = with_channels(w, chosen)
        with tempfile.TemporaryDirectory(prefix="skbench-") as tmp:
            directory = Path(tmp)
            stored = await seed_database(
                directory / "skbridge.db", active, extra=size - len(active)
            )
            assert stored == size
            child = proc.daemon(write_config(w, directory))
            ready = await child.start()
            profiler: proc.Profiler | None = None
            try:
                await until(lambda: w.telegram.polling, 10, "daemon polling Telegram")
                profiler = await proc.start_profiler(child.pid, options.profile_dir, name)
                await asyncio.sleep(plan.settle)
                at_start = proc.rss_mb(child.pid)
                samples: list[float] = []
                sampler = asyncio.create_task(sample_rss(child.pid, samples))
                try:
                    found = await paced(w, active, plan.rate, plan.seconds, "f")
                finally:
                    sampler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sampler
            finally:
                if profiler is not None:
                    await profiler.stop()
                await child.stop()
    return {
        "ready_s": ready,
        "rss_start": at_start,
        "rss_load": max(samples, default=at_start),
        "lat_p99": found["lat_p99"],
    }


async def run(options: Options, name: str) -> dict[str, float]:
    plan = Plan.for_options(options)
    metrics: dict[str, float] = {}
    for size in plan.sizes:
        found = await one_size(size, plan, options, f"{name}-{size}")
        metrics.update({f"c{size}_{k}": v for k, v in found.items()})
    return metrics
