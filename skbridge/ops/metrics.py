"""``skbridge metrics``: the monitoring metrics, read from the database, printed once."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from skbridge import metrics
from skbridge.store import open_store, url_of


async def read(where: Path | str) -> bytes:
    store = await open_store(url_of(where), read_only=True)
    try:
        async with store.snapshot() as r:
            return await metrics.render(r)
    finally:
        await store.close()


def command(where: Path | str) -> int:
    """0 with the metrics on stdout; StoreError when the database cannot be read."""
    sys.stdout.write((asyncio.run(read(where))).decode())
    return 0
