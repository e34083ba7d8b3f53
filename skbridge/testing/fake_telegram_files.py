"""Files in the fake Telegram Bot API: customers sending media, the bot sending files.

The limits are the Bot API's own: ``getFile`` serves files of up to 20 MB and answers
"Bad Request: file is too big" past that; uploads by ``multipart/form-data`` may be up
to 50 MB (past it, HTTP 413 "Request Entity Too Large"), photos up to 10 MB, and a
photo must be an image Telegram can read. :class:`TelegramFiles` is mixed into
:class:`~skbridge.testing.fake_telegram.FakeTelegram`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["DOWNLOAD_LIMIT", "PHOTO_LIMIT", "UPLOAD_LIMIT", "ApiError", "SentFile", "TelegramFiles"]

DOWNLOAD_LIMIT = 20 * 2**20
"""Bots may download files of up to 20 MB (getFile)."""
UPLOAD_LIMIT = 50 * 2**20
"""Bots may upload files of up to 50 MB (multipart)."""
PHOTO_LIMIT = 10 * 2**20
"""A photo sent by multipart may be up to 10 MB."""
CAPTION_LIMIT = 1024

TOO_BIG = "Bad Request: file is too big"
TOO_LARGE_UPLOAD = "Request Entity Too Large"

_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF", b"GIF8", b"BM")
"""What Telegram can make a photo of: PNG, JPEG, WebP, GIF, BMP (by their first bytes)."""

_DEFAULT_MIME = {
    "photo": "image/jpeg",
    "video": "video/mp4",
    "animation": "video/mp4",
    "audio": "audio/mpeg",
    "voice": "audio/ogg",
    "sticker": "image/webp",
    "video_note": "video/mp4",
    "document": "application/octet-stream",
}
_FOLDERS = {
    "photo": ("photos", "jpg"),
    "video": ("videos", "mp4"),
    "animation": ("animations", "mp4"),
    "audio": ("music", "mp3"),
    "voice": ("voice", "oga"),
    "sticker": ("stickers", "webp"),
    "video_note": ("video_notes", "mp4"),
    "document": ("documents", "bin"),
}
MEDIA_KINDS = tuple(_FOLDERS)

JsonDict = dict[str, Any]


class ApiError(Exception):
    """Answer ``{"ok": false, "error_code": status, "description": ...}``."""

    def __init__(self, status: int, description: str, parameters: JsonDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class SentFile:
    """One file the bot sent with ``sendPhoto`` or ``sendDocument``."""

    chat_id: int
    method: str
    file_name: str | None
    content: bytes
    caption: str
    message_id: int
    mime_type: str | None


class TelegramFiles:
    """Media from customers and files from the bot; state lives in the fake."""

    _files: dict[str, tuple[str, bytes]]
    _chats: dict[int, JsonDict]
    _blocked: set[int]
    _messages: dict[tuple[int, int], JsonDict]
    sent_files: list[SentFile]
    _notify: Callable[[], None]
    _check_rate: Callable[[int], None]
    _resolve_chat: Callable[[object], int]
    _take_message_id: Callable[[int], int]
    _bot_user: Callable[[], JsonDict]
    customer_sends: Callable[..., int]

    def add_file(self, content: bytes, *, file_path: str | None = None) -> str:
        """Register a downloadable file; returns its ``file_id`` (for getFile)."""
        index = len(self._files) + 1
        file_id = f"FAKE-FILE-{index:06d}"
        self._files[file_id] = (file_path or f"documents/file_{index}.bin", content)
        return file_id

    def _add_media(self, kind: str, content: bytes) -> str:
        folder, extension = _FOLDERS[kind]
        return self.add_file(content, file_path=f"{folder}/file_{len(self._files) + 1}.{extension}")

    def customer_sends_file(
        self,
        user_id: int,
        kind: str,
        content: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        caption: str | None = None,
        declare_size: bool = True,
        fields: JsonDict | None = None,
        first_name: str = "Ada",
        last_name: str | None = None,
    ) -> int:
        """Enqueue a customer's message carrying a file of ``kind`` (``photo``,
        ``document``, ``video``, ``animation``, ``audio``, ``voice``, ``sticker``,
        ``video_note``) shaped as Telegram shapes it; returns its update_id.

        A photo comes as several sizes, largest last, each its own file (the smaller ones
        hold other bytes). ``declare_size=False`` leaves out ``file_size`` (it is
        optional in the Bot API); ``fields`` adds to or overrides the media object.
        """
        if kind not in _FOLDERS:
            raise ValueError(f"unknown media kind {kind!r}")
        message: JsonDict = {}
        if kind == "photo":
            sizes = [
                self._photo_size(b"thumbnail " + content[:64], 90, 67, declare_size),
                self._photo_size(b"medium " + content[:512], 320, 240, declare_size),
                self._photo_size(content, 1280, 960, declare_size),
            ]
            if fields:
                sizes[-1].update(fields)
            message["photo"] = sizes
        else:
            media = self._media_object(kind, content, declare_size)
            if file_name is not None and kind in ("document", "video", "animation", "audio"):
                media["file_name"] = file_name
            if kind not in ("sticker", "video_note"):
                media["mime_type"] = mime_type or _DEFAULT_MIME[kind]
            media.update(fields or {})
            message[kind] = media
            if kind == "animation":
                message["document"] = dict(media)  # Telegram sets both, for old clients
        if caption is not None:
            message["caption"] = caption
        return self.customer_sends(user_id, message, first_name=first_name, last_name=last_name)

    def _photo_size(self, content: bytes, width: int, height: int, declare: bool) -> JsonDict:
        file_id = self._add_media("photo", content)
        size: JsonDict = {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "width": width,
            "height": height,
        }
        if declare:
            size["file_size"] = len(content)
        return size

    def _media_object(self, kind: str, content: bytes, declare: bool) -> JsonDict:
        file_id = self._add_media(kind, content)
        media: JsonDict = {"file_id": file_id, "file_unique_id": f"U{file_id}"}
        if kind in ("video", "animation", "sticker"):
            media.update(width=512, height=512)
        if kind in ("video", "animation", "audio", "voice", "video_note"):
            media["duration"] = 3
        if kind == "video_note":
            media["length"] = 240
        if kind == "sticker":
            media.update(type="regular", is_animated=False, is_video=False, emoji="👍")
        if declare:
            media["file_size"] = len(content)
        return media

    # --- methods ----------------------------------------------------------------------

    def _file_info(self, file_id: object) -> JsonDict:
        """``getFile``: the file's path for downloading, if bots may download it."""
        if not file_id:
            raise ApiError(400, "Bad Request: file_id is empty")
        entry = self._files.get(str(file_id))
        if entry is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        file_path, content = entry
        if len(content) > DOWNLOAD_LIMIT:
            raise ApiError(400, TOO_BIG)
        return {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": len(content),
            "file_path": file_path,
        }

    async def _send_photo(self, params: JsonDict) -> JsonDict:
        return self._send_media(params, "sendPhoto", "photo")

    async def _send_document(self, params: JsonDict) -> JsonDict:
        return self._send_media(params, "sendDocument", "document")

    def _send_media(self, params: JsonDict, method: str, field: str) -> JsonDict:
        chat_id = self._resolve_chat(params.get("chat_id"))
        name, content, mime = self._input_file(params.get(field), field)
        caption = str(params.get("caption") or "")
        if len(caption) > CAPTION_LIMIT:
            raise ApiError(400, "Bad Request: message caption is too long")
        if len(content) > UPLOAD_LIMIT:
            raise ApiError(413, TOO_LARGE_UPLOAD)
        if field == "photo":
            if len(content) > PHOTO_LIMIT:
                raise ApiError(400, "Bad Request: PHOTO_SAVE_FILE_INVALID")
            if not content.startswith(_IMAGE_MAGIC):
                raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        self._check_rate(chat_id)
        file_id = self._add_media(field, content)
        message_id = self._take_message_id(chat_id)
        described: JsonDict = {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": len(content),
        }
        message: JsonDict = {
            "message_id": message_id,
            "from": self._bot_user(),
            "chat": dict(self._chats[chat_id]),
            "date": int(time.time()),
        }
        if field == "photo":
            message["photo"] = [{**described, "width": 1280, "height": 960}]
        else:
            message["document"] = {**described, "file_name": name, "mime_type": mime}
        if caption:
            message["caption"] = caption
        self._messages[(chat_id, message_id)] = message
        self.sent_files.append(SentFile(chat_id, method, name, content, caption, message_id, mime))
        self._notify()
        return message

    def _input_file(self, value: object, field: str) -> tuple[str | None, bytes, str | None]:
        """An uploaded file (multipart), or a file_id of a file Telegram already has."""
        if isinstance(value, dict) and isinstance(value.get("content"), bytes):
            return value.get("filename"), value["content"], value.get("content_type")
        if isinstance(value, str) and value:
            entry = self._files.get(value)
            if entry is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            return None, entry[1], None
        raise ApiError(400, f"Bad Request: there is no {field} in the request")

    # --- inspection -------------------------------------------------------------------

    def files_sent_to(self, chat_id: int) -> list[SentFile]:
        return [f for f in self.sent_files if f.chat_id == chat_id]
