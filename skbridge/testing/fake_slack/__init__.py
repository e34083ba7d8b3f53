"""An in-process fake Slack speaking the real protocols over loopback.

It serves the Web API (``/api/<method>``, the subset skbridge uses, with Slack's error
codes, pagination, rate limiting and fault injection) and Socket Mode (``/link/``
websockets with hello / envelopes / acks / disconnects) on ``127.0.0.1``, so the test
suite, the demo and the benchmarks drive skbridge through the real slack_sdk and aiohttp
clients instead of mocks::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        ...
        await slack.wait_for(lambda: len(slack.posts) == 1)
"""

from .fake import FakeSlack
from .state import Call, Channel, Message, User

__all__ = ["Call", "Channel", "FakeSlack", "Message", "User"]
