"""Benchmark 3: a burst of new customers under Slack's real limits.

The fake Slack enforces ``chat.postMessage`` at 1/s per channel (bursts of 4) and
``conversations.create`` at 20/min (bursts of 3), answering 429 with ``Retry-After``
beyond that, like Slack. C new customers (200 by default) each write 5 messages at
once; every customer needs a channel first. The run ends when all C x 5 messages are
in their channels, and checks that none is lost, doubled or out of order.

The shortest time the limits allow, from the burst's arrival: creation k can happen
at ``max(0, (k - 3) / (20/60))`` s, so the last channel exists after
``(C - 3) x 3`` s; its 5 messages then need ``(5 - 4) / 1`` s more (burst 4, then 1/s).
The dispatch channel's notices (one per customer, 1/s) fit in the creation time, and
the invitations are not rate limited. Efficiency = shortest / measured.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import proc
from bench.common import Options, write_config
from bench.world import Customer, World, customers, say, until, world

CREATE_PER_MINUTE = 20.0
CREATE_BURST = 3
"""The fake Slack's conversations.create bucket (its burst is fixed at 3)."""
POST_RATE = 1.0
POST_BURST = 4


@dataclass(frozen=True, slots=True)
class Plan:
    customers: int = 200
    per_customer: int = 5


def shortest_seconds(customers: int, per_customer: int) -> float:
    last_create = max(0.0, (customers - CREATE_BURST) / (CREATE_PER_MINUTE / 60))
    last_posts = max(0.0, (per_customer - POST_BURST) / POST_RATE)
    dispatch = max(0.0, (customers - POST_BURST) / POST_RATE)  # one notice per customer
    return max(last_create + last_posts, dispatch)


def check_order(world: World, people: list[Customer], per_customer: int) -> dict[str, int]:
    """Per customer: its channel must show exactly its messages 0..n-1, once each, in order."""
    lost = doubled = misordered = 0
    for c in people:
        channel = world.slack.channel_by_name(c.channel_name)
        texts = [m.text for m in channel.messages] if channel else []
        mine = [t for t in texts if t.startswith(f"L-{c.number}-")]
        expected = [f"L-{c.number}-{k}" for k in range(per_customer)]
        lost += len(set(expected) - set(mine))
        doubled += len(mine) - len(set(mine))
        if not set(expected) - set(mine) and len(mine) == len(set(mine)) and mine != expected:
            misordered += 1
    return {"lost": lost, "doubled": doubled, "misordered": misordered}


async def progress(world: World, total: int, start: float) -> None:
    while True:
        await asyncio.sleep(60)
        done = world.slack.received_by_phase["L"]
        print(
            f"    limits: {done}/{total} delivered, {len(world.slack.created_at)} channels, "
            f"{world.slack.ratelimited} x 429 after {time.monotonic() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )


async def run(options: Options, name: str, plan: Plan) -> dict[str, float]:
    shortest = shortest_seconds(plan.customers, plan.per_customer)
    limits = {"post_rate": POST_RATE, "post_burst": POST_BURST}
    async with world(create_per_minute=CREATE_PER_MINUTE, **limits) as w:
        people = customers(plan.customers, first_name="Lim")
        for c in people:
            w.telegram.register_chat(c.chat_id, first_name=c.first_name, last_name=c.last_name)
        with tempfile.TemporaryDirectory(prefix="skbench-") as tmp:
            child = proc.daemon(write_config(w, Path(tmp)))
            await child.start()
            profiler: proc.Profiler | None = None
            try:
                await until(lambda: w.telegram.polling, 10, "daemon polling Telegram")
                profiler = await proc.start_profiler(child.pid, options.profile_dir, name)
                total = plan.customers * plan.per_customer
                start = time.monotonic()
                for k in range(plan.per_customer):
                    for c in people:
                        say(w, c, f"L-{c.number}-{k}")
                reporter = asyncio.create_task(progress(w, total, start))
                try:
                    await until(
                        lambda: w.slack.received_by_phase["L"] >= total,
                        2 * shortest + 180,
                        f"{total} messages under limits",
                        poll=0.1,
                    )
                finally:
                    reporter.cancel()
                received = [t for text, t in w.slack.received_at.items() if text.startswith("L-")]
                measured = max(received) - start
                created = w.slack.created_at
            finally:
                if profiler is not None:
                    await profiler.stop()
                await child.stop()
        statuses = Counter(c.method for c in w.slack.calls if c.status == 429)
        return {
            "customers": plan.customers,
            "messages": total,
            "seconds": measured,
            "shortest": shortest,
            "efficiency": shortest / measured,
            "last_create": (max(created) - start) if created else float("nan"),
            "create_bound": max(0.0, (plan.customers - CREATE_BURST) * 60 / CREATE_PER_MINUTE),
            "ratelimited": w.slack.ratelimited,
            "ratelimited_posts": statuses["chat.postMessage"],
            "ratelimited_creates": statuses["conversations.create"],
            **check_order(w, people, plan.per_customer),
            "duplicates": w.slack.duplicates,
        }
