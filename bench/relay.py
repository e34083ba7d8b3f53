"""Benchmark: the daemon beside a bare relay, its Slack pacing lifted.

The same 100 customers, the same fakes and the same load for the daemon and for the
floor (:mod:`bench.floor`), with the daemon's per-channel pacing of ``chat.postMessage``
off (``lifted``), so that what separates the two is the daemon's own work: storing each
message durably before Telegram's offset moves on, routing it, posting it and marking it
done. Conversations are seeded open (no message measured is a customer's first).

Phases, in one daemon: a warm-up (one message per customer), a paced run (200 msg/s
round-robin over the 100 customers, 2 msg/s each) for added latency, and a burst
(3,000 messages queued at once, 30 per customer) for throughput. Targets are ratios to
the floor measured in the same run: added latency p99 <= 3x, burst >= 0.8x.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import Bridge, Options, bridge
from bench.proc import rss_mb
from bench.upstream import burst, paced
from bench.world import customers, with_channels, world


@dataclass(frozen=True, slots=True)
class Plan:
    customers: int = 100
    rate: float = 200.0
    seconds: float = 10.0
    per_customer: int = 30

    @classmethod
    def for_options(cls, options: Options) -> Plan:
        return cls(seconds=5.0) if options.quick else cls()


async def run(kind: Bridge, options: Options, name: str) -> dict[str, float]:
    """One run: warm-up, the paced phase, the burst; returns its metrics."""
    plan = Plan.for_options(options)
    async with world() as w:
        people = with_channels(w, customers(plan.customers))
        with tempfile.TemporaryDirectory(prefix="skbench-") as tmp:
            async with bridge(
                kind, w, people, Path(tmp), options, name=name, lifted=True
            ) as running:
                metrics: dict[str, float] = {"ready_s": running.ready_seconds}
                await burst(w, people, 1, "w")
                await running.settle()
                found = await paced(w, people, plan.rate, plan.seconds, "p")
                metrics.update({f"paced_{k}": v for k, v in found.items()})
                await running.settle()
                found = await burst(w, people, plan.per_customer, "q")
                metrics.update({f"burst_{k}": v for k, v in found.items()})
                metrics["duplicates"] = w.slack.duplicates
                if kind == "daemon":
                    metrics["rss_mb"] = rss_mb(running.child.pid)
    return metrics
