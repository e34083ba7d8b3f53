"""Retry policies and health tracking: plain objects, checked without the daemon."""

from __future__ import annotations

import asyncio

from skbridge import retry
from skbridge.health import Health


def test_a_policy_that_retries_forever_never_overflows() -> None:
    """After thousands of failures the delay stays at the cap (a float power overflowed)."""
    for policy in (retry.OUTBOX, retry.RECONNECT, retry.STORE):
        delay = policy.delay(5_000)
        assert policy.maximum * (1 - policy.jitter) <= delay <= policy.maximum * (1 + policy.jitter)


def test_retry_after_wins_over_backoff() -> None:
    assert retry.OUTBOX.delay(1, retry_after=7.0) == 7.0


async def test_an_outage_starts_at_the_first_failure_and_ends_at_the_next_answer() -> None:
    """Failures after the first keep its start and error; any answer ends it and wakes waiters."""
    now = [100.0]
    health = Health(lambda: now[0])
    waiter = asyncio.create_task(health.recovered.wait())
    health.failed("Slack", "http_503")
    now[0] = 400.0
    health.failed("Slack", "timeout")
    [outage] = health.outages
    assert (outage.since, outage.error, outage.minutes(now[0])) == (100.0, "http_503", 5)
    assert not waiter.done()
    health.answered("Telegram")
    assert health.outages == [outage]
    health.answered("Slack")
    await asyncio.wait_for(waiter, 1)
    assert health.outages == []
    [ended] = health.take_ended()
    assert (ended.since, ended.until) == (100.0, 400.0)
    assert health.take_ended() == []


async def test_wait_returns_early_when_woken() -> None:
    retry.set_testing(False)
    try:
        wake = asyncio.Event()
        wake.set()
        await asyncio.wait_for(retry.wait(3600, wake=wake), 1)
    finally:
        retry.set_testing(True)
