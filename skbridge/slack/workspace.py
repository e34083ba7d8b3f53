"""What skbridge knows of its Slack workspace: itself, the dispatch channel, owner, agents."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable

from skbridge.errors import ConfigError, Refused
from skbridge.gravatar import Gravatar
from skbridge.ids import ChannelId, SlackUserId
from skbridge.slack.manifest import BOT_SCOPES
from skbridge.slack.web import Identity, SlackChannel, SlackUser, SlackWeb
from skbridge.upstreams import Agent

log = logging.getLogger(__name__)

_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")
USER_TTL = 3600.0


class Workspace:
    def __init__(self, web: SlackWeb, identity: Identity, dispatch: SlackChannel | None) -> None:
        self.web = web
        self.identity = identity
        self.dispatch = dispatch
        self._owner: SlackUserId | None = None
        self._owner_known = False

    @classmethod
    async def connect(cls, web: SlackWeb, dispatch_channel: str) -> Workspace:
        identity = await web.auth_test()
        missing = [scope for scope in BOT_SCOPES if scope not in identity.scopes]
        if identity.scopes and missing:
            log.warning(
                "the app lacks scopes the manifest asks for; reinstall it from "
                "`skbridge manifest` (skbridge check says more)",
                extra={"missing": ",".join(missing)},
            )
        workspace = cls(web, identity, None)
        await workspace.set_dispatch(dispatch_channel)
        return workspace

    async def set_dispatch(self, name_or_id: str) -> None:
        """Find the dispatch channel and join it if we can; say clearly when we cannot."""
        key = "slack.dispatch_channel"
        channel = await find_dispatch(self.web, name_or_id)
        if channel is None:
            raise ConfigError(key, f"no channel {name_or_id!r} in this workspace; create it first")
        if channel.is_archived:
            raise ConfigError(key, f"#{channel.name} is archived; unarchive it or pick another")
        if not channel.is_member:
            if channel.is_private:
                log.error(
                    "cannot join the private dispatch channel; invite the app to it "
                    "(/invite @skbridge in the channel)",
                    extra={"channel": channel.id},
                )
            else:
                await self.web.join(channel.id)
                log.info("joined the dispatch channel", extra={"channel": channel.id})
        self.dispatch = channel
        log.info("dispatch channel", extra={"channel": channel.id, "channel_name": channel.name})

    async def owner(self) -> SlackUserId | None:
        """The workspace's primary owner, looked up once."""
        if not self._owner_known:
            self._owner = await self.web.primary_owner()
            self._owner_known = True
            if self._owner is None:
                log.warning("no primary owner found; owner auto-invite is off")
        return self._owner

    def channel_url(self, channel_id: str) -> str:
        return f"{self.identity.team_url.rstrip('/')}/archives/{channel_id}"


async def find_dispatch(web: SlackWeb, name_or_id: str) -> SlackChannel | None:
    """The channel named (or with the ID) ``name_or_id``, if the bot can see it."""
    try:
        if _CHANNEL_ID.match(name_or_id):
            return await web.channel(ChannelId(name_or_id))
        return await web.find_channel(name_or_id)
    except Refused as exc:
        if exc.code == "channel_not_found":
            return None
        raise


class Agents:
    """Agents' names and avatars: Gravatar first, the Slack profile picture second."""

    def __init__(
        self, web: SlackWeb, gravatar: Gravatar, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._web = web
        self._gravatar = gravatar
        self._clock = clock
        self._users: dict[SlackUserId, tuple[float, SlackUser]] = {}

    async def user(self, user_id: SlackUserId) -> SlackUser:
        cached = self._users.get(user_id)
        now = self._clock()
        if cached and cached[0] > now:
            return cached[1]
        user = await self._web.user(user_id)
        self._users[user_id] = (now + USER_TTL, user)
        return user

    async def agent(self, user_id: SlackUserId, *, avatar: bool = True) -> Agent:
        """Who ``user_id`` is to customers; ``avatar=False`` skips the picture."""
        user = await self.user(user_id)
        if not avatar:
            return Agent(name=user.name, avatar_url=None)
        picture = await self._gravatar.avatar(user.email) or user.image_url
        return Agent(name=user.name, avatar_url=picture)

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """Display names for mentioned users; an unknown user is left out."""
        names: dict[str, str] = {}
        for user_id in user_ids:
            try:
                names[user_id] = (await self.user(SlackUserId(user_id))).name
            except Refused:
                continue
        return names
