"""Files in the fake Slack: the external upload flow, ``files.info``, private downloads,
message shortcuts and the ``response_url`` they carry.

As Slack does it: ``files.getUploadURLExternal`` hands out an upload URL (on this fake's
own host) and a file ID; the bytes are POSTed there, raw or as a form; then
``files.completeUploadExternal`` finishes the file and, given ``channel_id``, shares it:
a message with ``files`` appears in the channel and ``files.info`` lists the share.
``url_private`` serves the bytes only to a request with a token that may read files;
anything else is redirected to the login page, on another host. The upload URL and
``url_private`` take ``fail_next``/``hang_next`` as ``"upload"`` and ``"download"``.
Completing a file twice is refused (``already_completed``): the fake's own strictness,
so that a test notices a second completion.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from .socket import SocketModeMixin
from .state import Call, Message, random_id
from .web import ApiError, Request, WebApiMixin


@dataclass
class File:
    id: str
    name: str
    title: str
    mimetype: str
    size: int
    user: str
    content: bytes = b""
    uploaded: bool = False
    completed: bool = False
    shares: dict[str, list[str]] = field(default_factory=dict)
    """Channel ID -> the ts of each message that shared the file there."""
    external: bool = False
    redirect: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def filetype(self) -> str:
        return self.name.rpartition(".")[2].lower() if "." in self.name else "binary"


@dataclass
class HookAnswer:
    """One POST to a ``response_url`` handed out with an interaction."""

    url: str
    body: dict[str, Any]


class FilesMixin(WebApiMixin, SocketModeMixin):
    """Files and shortcuts; mixed into :class:`FakeSlack`."""

    def _setup_files(self) -> None:
        self.files: dict[str, File] = {}
        self.hook_answers: list[HookAnswer] = []
        self._upload_tickets: dict[str, str] = {}
        self._handlers.update(
            {
                "files.getUploadURLExternal": self._files_get_upload_url,
                "files.completeUploadExternal": self._files_complete_upload,
                "files.info": self._files_info,
            }
        )

    def _add_file_routes(self, app: web.Application) -> None:
        app.router.add_post("/upload/v1/{ticket}", self._handle_upload)
        app.router.add_get("/files-pri/{team_file}/{name:.+}", self._handle_download)
        app.router.add_post("/hooks/{tail:.+}", self._handle_hook)

    def _base(self) -> str:
        return f"http://127.0.0.1:{self._require_port()}"

    # -- acting as a human user ------------------------------------------------------------

    def redirect_file(self, file_id: str, location: str) -> None:
        """Make the file's ``url_private`` answer 302 to ``location`` (another host, say)."""
        self.files[file_id].redirect = location

    async def send_message_action(
        self,
        channel_id: str,
        user_id: str,
        message_ts: str,
        *,
        callback_id: str = "send_to_customer",
    ) -> dict[str, Any]:
        """Deliver a message shortcut on the message ``message_ts`` (``interactive``
        envelope, ``message_action`` payload, as Slack sends it over Socket Mode)."""
        channel = self.channels.get(channel_id) or self.deleted_channels.get(channel_id)
        message = (
            next((m for m in channel.messages if m.ts == message_ts), None) if channel else None
        )
        if message is None:
            raise ValueError(f"no message {message_ts} in {channel_id}")
        payload: dict[str, Any] = {
            "type": "message_action",
            "token": "x",
            "action_ts": f"{time.time():.6f}",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {
                "id": user_id,
                "username": self._user_name(user_id),
                "name": self._user_name(user_id),
                "team_id": self.team_id,
            },
            "channel": {"id": channel_id, "name": self._channel_name_for_payload(channel_id)},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self._trigger_id(),
            "response_url": self._response_url("app"),
            "message_ts": message_ts,
            "message": message.to_api(include_metadata=False, app_id=self.app_id),
        }
        return await self._deliver(
            {
                "envelope_id": str(uuid.uuid4()),
                "type": "interactive",
                "accepts_response_payload": False,
                "payload": payload,
            }
        )

    # -- Web API methods ----------------------------------------------------------------------

    def _need_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError("missing_scope", needed=scope, provided=",".join(sorted(self.scopes)))

    def _new_file(self, name: str, title: str, mimetype: str, size: int, user: str) -> File:
        file_id = random_id("F")
        while file_id in self.files:
            file_id = random_id("F")
        file = File(file_id, name, title, mimetype, size, user)
        self.files[file_id] = file
        return file

    def _files_get_upload_url(self, req: Request) -> dict[str, Any]:
        self._need_scope("files:write")
        name = req.text("filename")
        try:
            length = int(req.text("length"))
        except ValueError:
            raise ApiError("invalid_arguments") from None
        if not name or length < 0:
            raise ApiError("invalid_arguments")
        mimetype = _mimetype(name)
        file = self._new_file(name, name, mimetype, length, req.caller)
        ticket = uuid.uuid4().hex
        self._upload_tickets[ticket] = file.id
        return {"upload_url": f"{self._base()}/upload/v1/{ticket}", "file_id": file.id}

    def _files_complete_upload(self, req: Request) -> dict[str, Any]:
        self._need_scope("files:write")
        wanted = req.params.get("files")
        if isinstance(wanted, str):
            try:
                wanted = json.loads(wanted)
            except ValueError:
                raise ApiError("invalid_arguments") from None
        if not isinstance(wanted, list) or not wanted:
            raise ApiError("invalid_arguments")
        files: list[File] = []
        for item in wanted:
            file = self.files.get(str(item.get("id"))) if isinstance(item, dict) else None
            if file is None or not file.uploaded:
                raise ApiError("file_not_found")
            if file.completed:
                raise ApiError("already_completed")
            files.append(file)
        channel_id = req.opt_str("channel_id")
        if channel_id is not None:
            target = Request(req.method, {"channel": channel_id}, req.token_kind, req.caller)
            self._writable_channel(target, posting=True)
        for item, file in zip(wanted, files, strict=True):
            file.title = str(item.get("title") or file.name)
            file.completed = True
        if channel_id is not None:
            for file in files:
                comment = req.text("initial_comment")
                self._share(file, channel_id, comment, user=req.caller, bot=req.token_kind == "bot")
        return {"files": [{"id": f.id, "title": f.title} for f in files]}

    def _share(self, file: File, channel_id: str, text: str, *, user: str, bot: bool) -> str:
        channel = self.channels[channel_id]
        ts = self._next_ts()
        message = Message(
            ts=ts,
            channel=channel_id,
            text=text,
            user=user,
            bot_id=self.bot_id if bot else None,
            files=[self._file_api(file)],
        )
        channel.messages.append(message)
        if bot:
            self.posts.append(message)
        file.shares.setdefault(channel_id, []).append(ts)
        self._notify()
        return ts

    def _files_info(self, req: Request) -> dict[str, Any]:
        self._need_scope("files:read")
        file = self.files.get(req.text("file"))
        if file is None or not file.completed or not self._may_see(file, req.caller):
            raise ApiError("file_not_found")
        return {"file": self._file_api(file)}

    def _may_see(self, file: File, caller: str) -> bool:
        if file.user == caller:
            return True
        for channel_id in file.shares:
            channel = self.channels.get(channel_id)
            if channel is not None and (not channel.is_private or caller in channel.members):
                return True
        return False

    def _file_api(self, file: File) -> dict[str, Any]:
        base = f"{self._base()}/files-pri/{self.team_id}-{file.id}"
        name = quote(file.name)
        out: dict[str, Any] = {
            "id": file.id,
            "created": file.created,
            "timestamp": file.created,
            "name": file.name,
            "title": file.title,
            "mimetype": file.mimetype,
            "filetype": file.filetype,
            "pretty_type": file.filetype.upper(),
            "user": file.user,
            "mode": "external" if file.external else "hosted",
            "is_external": file.external,
            "external_type": "gdrive" if file.external else "",
            "size": file.size,
            "url_private": f"{base}/{name}",
            "url_private_download": f"{base}/download/{name}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{file.user}/{file.id}/{name}",
        }
        if file.external:
            out["url_private"] = f"https://docs.google.com/document/d/{file.id}"
            out.pop("url_private_download")
        public = {c: s for c, s in file.shares.items() if not self._is_private(c)}
        private = {c: s for c, s in file.shares.items() if self._is_private(c)}
        out["channels"], out["groups"], out["ims"] = list(public), list(private), []
        shares: dict[str, Any] = {}
        for key, found in (("public", public), ("private", private)):
            if found:
                shares[key] = {
                    c: [
                        {"ts": ts, "channel_name": self._channel_name(c), "team_id": self.team_id}
                        for ts in stamps
                    ]
                    for c, stamps in found.items()
                }
        if shares:
            out["shares"] = shares
        return out

    def _is_private(self, channel_id: str) -> bool:
        channel = self.channels.get(channel_id) or self.deleted_channels.get(channel_id)
        return bool(channel and channel.is_private)

    def _channel_name(self, channel_id: str) -> str:
        channel = self.channels.get(channel_id) or self.deleted_channels.get(channel_id)
        return channel.name if channel else ""

    # -- HTTP endpoints beside the Web API ---------------------------------------------------

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        ticket = request.match_info["ticket"]
        hung = await self._hang_or_fail("upload", {"ticket": ticket})
        if hung is not None:
            return hung
        file_id = self._upload_tickets.get(ticket)
        if file_id is None:
            return web.Response(status=404, text="unknown upload")
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            content = b""
            async for part in reader:
                if isinstance(part, BodyPartReader) and part.filename is not None:
                    content = bytes(await part.read())
                    break
        else:
            content = b"".join([chunk async for chunk in request.content.iter_chunked(2**16)])
        file = self.files[file_id]
        if len(content) != file.size:
            return web.Response(status=400, text="length does not match the declared length")
        file.content, file.uploaded = content, True
        del self._upload_tickets[ticket]
        self._notify()
        return web.Response(text=f"OK - {len(content)}")

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        team, _, file_id = request.match_info["team_file"].partition("-")
        hung = await self._hang_or_fail("download", {"file": file_id})
        if hung is not None:
            return hung
        auth = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        file = self.files.get(file_id)
        if file is not None and file.redirect:
            raise web.HTTPFound(file.redirect)
        readable = self._token_kind(auth) in ("bot", "user") and "files:read" in self.scopes
        if not readable:
            # As Slack does for a browser without a session: off to the sign-in page.
            redir = quote(request.path_qs)
            raise web.HTTPFound(f"https://{self.team_domain}.slack.com/?redir={redir}")
        if file is None or team != self.team_id or not file.completed:
            return web.Response(status=404, text="file not found")
        return web.Response(body=file.content, content_type=file.mimetype)

    async def _handle_hook(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        self.hook_answers.append(
            HookAnswer(str(request.url), body if isinstance(body, dict) else {})
        )
        self._notify()
        return web.Response(text="ok")

    async def _hang_or_fail(self, what: str, params: dict[str, Any]) -> web.StreamResponse | None:
        """Injected faults of a plain HTTP endpoint, recorded as calls named ``what``."""
        if self._hangs.get(what, 0) > 0:
            self._hangs[what] -= 1
            self.calls.append(_call(what, params, 0, "hung"))
            self._notify()
            await self._release_hung.wait()
            return web.Response(status=503, text="fake slack stopped")
        fault = self._take_fail(what)
        if fault is not None:
            self.calls.append(_call(what, params, fault.status, f"http_{fault.status}"))
            self._notify()
            return web.Response(
                status=fault.status, text=f"fake slack: injected HTTP {fault.status}"
            )
        self.calls.append(_call(what, params, 200, None))
        self._notify()
        return None


def _call(method: str, params: dict[str, Any], status: int, error: str | None) -> Call:
    return Call(method, params, None, status, error)


_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "mp4": "video/mp4",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "mp3": "audio/mpeg",
}


def _mimetype(name: str) -> str:
    """What Slack makes of a file's type: from its name, as it sniffs no content here."""
    return _MIME.get(name.rpartition(".")[2].lower(), "application/octet-stream")
