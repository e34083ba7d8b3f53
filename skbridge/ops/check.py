"""``skbridge check``: try every token and setting against the live services.

Each check gives one :class:`Result`: ok, FAIL (with what to do about it) or skip.
Nothing is changed: the dispatch channel is looked at, never joined, and the Socket
Mode connection is closed as soon as Slack's ``hello`` arrives (an envelope is only
ever sent after it). Every printed line passes through :func:`skbridge.logs.redact`,
so a token never reaches the terminal, even inside a library's error text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import aiohttp

from skbridge import clients, logs, store
from skbridge.config import Config, SlackConfig, secrets
from skbridge.errors import DeliveryError, Refused
from skbridge.health import Health
from skbridge.slack import errors as slack_errors
from skbridge.slack.manifest import BOT_SCOPES, USER_SCOPES
from skbridge.slack.web import Identity, SlackWeb
from skbridge.slack.workspace import find_dispatch
from skbridge.store import url_of
from skbridge.upstreams import Services, Source, Upstream, registry

T = TypeVar("T")

REINSTALL = "reinstall the app from `skbridge manifest`"
HELLO_TIMEOUT = 10.0


class Verdict(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""
    """What to do about a failure."""

    def line(self) -> str:
        text = f"{self.verdict.value:<4}  {self.name}: {self.detail}"
        if self.fix:
            text += f". Fix: {self.fix}"
        return logs.redact(text)


def ok(name: str, detail: str) -> Result:
    return Result(name, Verdict.OK, detail)


def fail(name: str, detail: str, fix: str) -> Result:
    return Result(name, Verdict.FAIL, detail, fix)


def skip(name: str, detail: str) -> Result:
    return Result(name, Verdict.SKIP, detail)


async def run_checks(config: Config) -> list[Result]:
    """Every check, in a fixed order; never raises for a failed check."""
    logs.add_secrets(secrets(config))
    async with clients.opened(config.slack.request_timeout) as (session, http):
        web = SlackWeb(config.slack, session)
        results = await _slack(config.slack, web, session)
        services = Services(http, session, Health())
        for source, section in registry.configured(config.sources):
            results.append(await _upstream(source, source.build(section, services)))
    results.append(await database(config.store.location))
    return results


def render(results: list[Result]) -> str:
    failed = sum(r.verdict is Verdict.FAIL for r in results)
    summary = "all checks passed" if not failed else f"{failed} of {len(results)} checks failed"
    return "\n".join([*(r.line() for r in results), summary])


async def command(config: Config) -> int:
    """``skbridge check``: 0 when every check passed, else 1."""
    results = await run_checks(config)
    print(render(results), flush=True)
    return 1 if any(r.verdict is Verdict.FAIL for r in results) else 0


# --- Slack ------------------------------------------------------------------------------


async def _attempt(call: Awaitable[T]) -> T | DeliveryError:
    try:
        return await call
    except DeliveryError as exc:
        return exc


def _unreachable(exc: DeliveryError, config: SlackConfig) -> str:
    return f"cannot reach Slack at {config.api_url} ({exc})"


async def _slack(
    config: SlackConfig, web: SlackWeb, session: aiohttp.ClientSession
) -> list[Result]:
    identity = await _attempt(web.auth_test())
    if isinstance(identity, DeliveryError):
        untried = "needs a working bot token"
        return [
            _bot_token_failure(identity, config),
            skip("slack scopes", untried),
            await _app_token(web, session),
            await _user_token(config, session),
            skip("dispatch channel", untried),
            skip("workspace owner", untried),
        ]
    results = [
        ok("slack bot token", f"bot {identity.user_id} in team {identity.team_id}"),
        _scopes(identity),
        await _app_token(web, session),
        await _user_token(config, session),
        await _dispatch(web, config.dispatch_channel),
        await _owner(web, config),
    ]
    if config.auto_invite:
        results.append(await _auto_invite(web, config))
    return results


def _bot_token_failure(exc: DeliveryError, config: SlackConfig) -> Result:
    name = "slack bot token"
    if not isinstance(exc, Refused):
        return fail(name, _unreachable(exc, config), "check the network and slack.api_url")
    fix = (
        "copy the Bot User OAuth Token (xoxb-...) from the app's Install App page "
        "into slack.bot_token"
    )
    if exc.code not in slack_errors.BAD_TOKEN:
        fix = REINSTALL
    return fail(name, f"Slack refused it ({exc.code})", fix)


def _scopes(identity: Identity) -> Result:
    missing = [s for s in BOT_SCOPES if s not in identity.scopes]
    if missing:
        return fail("slack scopes", f"missing {', '.join(missing)}", REINSTALL)
    return ok("slack scopes", f"all {len(BOT_SCOPES)} the manifest asks for are granted")


async def _app_token(web: SlackWeb, session: aiohttp.ClientSession) -> Result:
    name = "slack app token"
    url = await _attempt(web.socket_url())
    if isinstance(url, DeliveryError):
        if isinstance(url, Refused):
            return fail(
                name,
                f"Slack refused to open Socket Mode ({url.code})",
                "generate an app-level token with connections:write (Basic Information, "
                "App-Level Tokens) into slack.app_token; Socket Mode must be on: " + REINSTALL,
            )
        return fail(name, f"cannot open Socket Mode ({url})", "check the network")
    try:
        hello = await _hello(session, url)
    except (aiohttp.ClientError, TimeoutError, ConnectionError, ValueError) as exc:
        return fail(
            name,
            f"the Socket Mode websocket did not say hello ({type(exc).__name__}: {exc})",
            "allow outbound websockets (wss://) to Slack through the firewall or proxy",
        )
    return ok(name, f"Socket Mode connected and said hello ({hello}), then closed")


async def _hello(session: aiohttp.ClientSession, url: str) -> str:
    """Open the websocket, read the first frame, which must be ``hello``, and close."""
    async with asyncio.timeout(HELLO_TIMEOUT), session.ws_connect(url) as ws:
        message = await ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"first frame was {message.type.name}")
        frame = json.loads(message.data)
        if not isinstance(frame, dict) or frame.get("type") != "hello":
            raise ValueError("first frame was not hello")
        await ws.close()
    return f"{frame.get('num_connections', '?')} connection(s) open"


async def _user_token(config: SlackConfig, session: aiohttp.ClientSession) -> Result:
    name = "slack user token"
    if config.user_token is None:
        return skip(name, "not configured (optional: without it, reopened chats get a new channel)")
    # The same calls, signed with the user token in the bot's place.
    as_user = SlackWeb(config.model_copy(update={"bot_token": config.user_token}), session)
    identity = await _attempt(as_user.auth_test())
    if isinstance(identity, DeliveryError):
        if isinstance(identity, Refused):
            return fail(
                name,
                f"Slack refused it ({identity.code})",
                "copy the User OAuth Token (xoxp-...) from the app's Install App page "
                "into slack.user_token, or remove it",
            )
        return fail(name, _unreachable(identity, config), "check the network and slack.api_url")
    missing = [s for s in USER_SCOPES if s not in identity.scopes]
    if missing:
        return fail(name, f"missing user scope {', '.join(missing)}", REINSTALL)
    return ok(name, f"user {identity.user_id}; can unarchive channels")


async def _dispatch(web: SlackWeb, name_or_id: str) -> Result:
    name = "dispatch channel"
    try:
        channel = await find_dispatch(web, name_or_id)
    except Refused as exc:
        return fail(name, f"Slack refused to look it up ({exc.code})", REINSTALL)
    except DeliveryError as exc:
        return fail(name, f"cannot look it up ({exc})", "check the network")
    if channel is None:
        return fail(
            name,
            f"no channel {name_or_id!r} the bot can see",
            "create it, or fix slack.dispatch_channel; a private one must have the app "
            "invited (/invite @skbridge)",
        )
    where = f"#{channel.name} ({channel.id})"
    if channel.is_archived:
        return fail(name, f"{where} is archived", "unarchive it or pick another channel")
    if channel.is_member:
        return ok(name, f"{where}, the bot is a member")
    if channel.is_private:
        return fail(name, f"{where} is private and the bot is not in it", "/invite @skbridge in it")
    return ok(name, f"{where}, public: the bot will join it at start")


async def _owner(web: SlackWeb, config: SlackConfig) -> Result:
    name = "workspace owner"
    if not config.invite_owner:
        return skip(name, "invite_owner is off")
    try:
        owner = await web.primary_owner()
        user = await web.user(owner) if owner else None
    except DeliveryError as exc:
        return fail(name, f"users.list failed ({exc})", REINSTALL)
    if user is None:
        return fail(
            name,
            "no primary owner in users.list",
            "set slack.invite_owner = false, or list people in slack.auto_invite",
        )
    return ok(name, f"{user.name} ({user.id}) will be invited to new channels")


async def _auto_invite(web: SlackWeb, config: SlackConfig) -> Result:
    name = "auto-invite users"
    found: list[str] = []
    for user_id in config.auto_invite:
        try:
            user = await web.user(user_id)  # type: ignore[arg-type]
        except DeliveryError as exc:
            return fail(name, f"{user_id}: {exc.code}", "fix the user IDs in slack.auto_invite")
        found.append(f"{user.name} ({user.id})")
    return ok(name, ", ".join(found))


# --- upstreams and the database -------------------------------------------------------------


async def _upstream(source: Source, upstream: Upstream) -> Result:
    name = source.name
    try:
        return ok(name, await upstream.check())
    except Refused as exc:
        if source.fix_for is not None:
            return fail(
                name, f"{source.label} refused: {exc.detail or exc.code}", source.fix_of(exc)
            )
        return fail(
            name, f"{source.label} refused the {source.credential_word} ({exc})", source.fix
        )
    except DeliveryError as exc:
        if source.fix_for is not None:
            return fail(name, f"cannot reach {source.label}: {exc.detail}", source.fix_of(exc))
        return fail(name, f"cannot reach {source.label} ({exc})", "check the network")


async def database(where: Path | str) -> Result:
    """The database opens (if it exists) and the daemon may write where it lives."""
    url = url_of(where)
    usable, detail, fix = await store.engine(url).check(url)
    return ok("database", detail) if usable else fail("database", detail, fix)
