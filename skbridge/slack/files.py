"""Files in Slack, as skbridge uses them: uploads into customer channels with Slack's
current flow, downloads of agents' files, and private answers through a response URL.

An upload is ``files.getUploadURLExternal`` (a file ID and an upload URL), the bytes
streamed from disk to that URL, then ``files.completeUploadExternal`` sharing it into
the channel. Nothing is shared before the completion, so everything before it may be
redone freely; the caller keeps the file ID before completing, and after a crash
:meth:`SlackFiles.shared_in` tells whether the completion took effect.

Bytes go to and come from Slack's own file host only (``files.slack.com``, or the
``api_url`` host when it is not slack.com: the fakes, a proxy), and response URLs only
to ``hooks.slack.com`` (likewise): the bot token never goes anywhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from skbridge import spool
from skbridge.config import SlackConfig
from skbridge.errors import NotSent, Refused
from skbridge.ids import ChannelId
from skbridge.slack.web import SlackWeb
from skbridge.spool import Spool

log = logging.getLogger(__name__)

SLACK_DOMAINS = ("slack.com", "slack-gov.com")
NO_FILES_READ = (
    "Slack answered with its sign-in page instead of the file: the app may lack the "
    "files:read scope (reinstall it from `skbridge manifest`)"
)


def hosts_for(api_url: str, service: str) -> frozenset[str]:
    """Where Slack's ``service`` (``files``, ``hooks``) lives for this ``api_url``."""
    host = spool.host_of(api_url)
    return frozenset({f"{service}.{host}"} if host in SLACK_DOMAINS else {host})


@dataclass(frozen=True, slots=True)
class SlackFile:
    """An agent's file as ``files.info`` describes it."""

    id: str
    name: str
    mime: str
    size: int
    url: str | None
    """Where its bytes are (``url_private_download``); None for a linked file."""


class SlackFiles:
    def __init__(self, web: SlackWeb, http: httpx.AsyncClient, config: SlackConfig) -> None:
        self._web = web
        self._http = http
        self._auth = {"Authorization": f"Bearer {config.bot_token.get_secret_value()}"}
        self._scheme = httpx.URL(config.api_url).scheme
        self._timeout = config.request_timeout
        self.file_hosts = hosts_for(config.api_url, "files")
        self.hook_hosts = hosts_for(config.api_url, "hooks")

    # --- uploads --------------------------------------------------------------------------

    async def start_upload(self, file: Spool) -> tuple[str, str]:
        """A file ID and the URL its bytes go to."""
        data = await self._web.call(
            "files.getUploadURLExternal", filename=file.name, length=file.size
        )
        return str(data["file_id"]), str(data["upload_url"])

    async def send_bytes(self, upload_url: str, file: Spool) -> None:
        """Stream the bytes to the upload URL. Nothing is shared yet, so any failure is
        NotSent: the upload is started again."""
        target = spool.check_url(upload_url, self.file_hosts, self._scheme)
        try:
            response = await self._http.post(
                target,
                content=file.chunks(),
                headers={"Content-Length": str(file.size), "Content-Type": file.mime},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise NotSent("upload_failed", f"upload: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise NotSent(f"http_{response.status_code}", "upload")

    async def complete(self, file_id: str, title: str, channel: ChannelId, comment: str) -> None:
        """Finish the upload and share it into ``channel`` with ``comment``."""
        await self._web.posts.acquire(channel)
        await self._web.call(
            "files.completeUploadExternal",
            files=[{"id": file_id, "title": title}],
            channel_id=channel,
            initial_comment=comment,
        )

    async def shared_in(self, file_id: str, channel: ChannelId) -> bool:
        """Whether ``file_id`` is shared in ``channel`` already (a completion took effect)."""
        try:
            data = await self._web.call("files.info", file=file_id)
        except Refused as exc:
            if exc.code == "file_not_found":
                return False  # never completed: Slack dropped it
            raise
        raw = data.get("file") or {}
        shares = raw.get("shares") or {}
        found = [(shares.get(kind) or {}).get(channel) for kind in ("public", "private")]
        listed = [*(raw.get("channels") or []), *(raw.get("groups") or [])]
        return any(found) or channel in listed

    # --- downloads ------------------------------------------------------------------------

    async def info(self, file_id: str) -> SlackFile:
        data = await self._web.call("files.info", file=file_id)
        raw: dict[str, Any] = data.get("file") or {}
        url = raw.get("url_private_download") or raw.get("url_private")
        external = bool(raw.get("is_external")) or raw.get("mode") in ("external", "tombstone")
        return SlackFile(
            id=file_id,
            name=str(raw.get("name") or raw.get("title") or file_id),
            mime=str(raw.get("mimetype") or "application/octet-stream"),
            size=int(raw.get("size") or 0),
            url=None if external or not isinstance(url, str) else url,
        )

    async def fetch(self, file: SlackFile, limit: int, why: str) -> Spool:
        """The file's bytes, on disk, with the bot token, from Slack's file host only."""
        if file.url is None:
            raise Refused("external_file", f"{file.name} is a linked file Slack holds no copy of")
        if file.size > limit:
            raise spool.too_large(file.size, limit, why)
        return await spool.download(
            self._http,
            file.url,
            hosts=self.file_hosts,
            scheme=self._scheme,
            limit=limit,
            why=why,
            name=file.name,
            mime=file.mime,
            headers=self._auth,
            seconds=self._timeout,
            web_page=NO_FILES_READ,
        )

    # --- private answers ---------------------------------------------------------------

    async def answer(self, response_url: str, text: str) -> None:
        """Tell the one person who acted, and nobody else, through the response URL."""
        target = spool.check_url(response_url, self.hook_hosts, self._scheme)
        body = {"response_type": "ephemeral", "replace_original": False, "text": text}
        try:
            response = await self._http.post(target, json=body, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise spool.transport_error("response_url", exc) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise NotSent(f"http_{response.status_code}", "response_url")
        if response.status_code != 200:
            raise Refused(f"http_{response.status_code}", "the response URL refused it")
