"""What a Telegram message carries: its text, a file to bring over, or a place or a
contact written out. Pure functions over the Bot API's Message object; no I/O.

Files skbridge carries: photos (the largest size), documents, videos, animations, audio,
voice notes, video messages and static stickers. Locations and venues become a line with
the coordinates and a map link, contacts a short card. Anything else that has content
(a poll, dice, an animated sticker) keeps a short placeholder; a message with nothing
skbridge knows is Unsupported, and parked.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from skbridge.core.model import Attachment

FILE_KINDS = (
    "animation",  # before document: Telegram sets both for an animation
    "photo",
    "video",
    "video_note",
    "voice",
    "audio",
    "document",
    "sticker",
)
PLACEHOLDER_KINDS = ("sticker", "poll", "dice")
"""What has content skbridge cannot show: a short note says so."""

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "application/pdf": "pdf",
}
_DEFAULT_MIME = {
    "photo": "image/jpeg",
    "sticker": "image/webp",
    "video": "video/mp4",
    "video_note": "video/mp4",
    "animation": "video/mp4",
    "voice": "audio/ogg",
    "audio": "audio/mpeg",
    "document": "application/octet-stream",
}
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")

_NOT_CONTENT = frozenset(
    {
        "message_id", "message_thread_id", "direct_messages_topic", "from", "sender_chat",
        "sender_boost_count", "sender_business_bot", "sender_tag", "date", "guest_query_id",
        "business_connection_id", "chat", "forward_origin", "is_topic_message",
        "is_automatic_forward", "reply_to_message", "external_reply", "quote",
        "reply_to_story", "reply_to_checklist_task_id", "reply_to_poll_option_id", "via_bot",
        "guest_bot_caller_user", "guest_bot_caller_chat", "edit_date",
        "has_protected_content", "is_from_offline", "is_paid_post", "media_group_id",
        "author_signature", "paid_star_count", "text", "entities", "link_preview_options",
        "suggested_post_info", "effect_id", "caption", "caption_entities",
        "show_caption_above_media", "has_media_spoiler", "reply_markup",
    }
)  # fmt: skip
"""Message fields that say how or where a message came, not what it carries."""


class Unsupported(ValueError):
    """A message whose content skbridge cannot carry (a story, a game, paid media)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def content_of(message: dict[str, Any]) -> tuple[str, Attachment | None]:
    """The message's text (or caption) and the file it carries, if any.

    Raises Unsupported for content skbridge cannot carry at all, and TypeError,
    KeyError or ValueError for a message that does not follow the Bot API.
    """
    text = message.get("text") or message.get("caption") or ""
    if not isinstance(text, str):
        raise TypeError("text is not a string")
    attachment = _attachment(message)
    if attachment is not None:
        return text, attachment
    described = _place(message) or _contact(message)
    if described:
        return (f"{described}\n{text}" if text else described), None
    kinds = [k for k in (*PLACEHOLDER_KINDS, *FILE_KINDS) if k in message]
    if kinds:
        note = f"[{_placeholder(kinds[0], message)} — open Telegram to see it]"
        return (f"{note}\n{text}" if text else note), None
    if not text:
        content = next((k for k in message if k not in _NOT_CONTENT), None)
        if content is None:
            raise ValueError("message has neither text nor a known attachment")
        noun = content.replace("_", " ")
        raise Unsupported(noun if noun.endswith(("media", "s")) else f"a {noun}")
    return text, None


def _placeholder(kind: str, message: dict[str, Any]) -> str:
    if kind == "sticker":
        sticker = message["sticker"]
        shape = "video" if sticker.get("is_video") else "animated"
        emoji = sticker.get("emoji")
        return f"{shape} sticker {emoji}" if isinstance(emoji, str) else f"{shape} sticker"
    return kind.replace("_", " ")


def _attachment(message: dict[str, Any]) -> Attachment | None:
    kind = next((k for k in FILE_KINDS if k in message), None)
    if kind is None:
        return None
    media = message[kind]
    if kind == "photo":
        media = _largest(media)
    if not isinstance(media, dict):
        raise TypeError(f"{kind} is not an object")
    if kind == "sticker" and (media.get("is_animated") or media.get("is_video")):
        return None  # no picture to show: a placeholder says what it was
    file_id = media["file_id"]
    if not isinstance(file_id, str) or not file_id:
        raise ValueError(f"{kind} has no file_id")
    mime = media.get("mime_type")
    mime = mime if isinstance(mime, str) and mime else _DEFAULT_MIME[kind]
    size = media.get("file_size")
    size = size if isinstance(size, int) and not isinstance(size, bool) else None
    return Attachment(kind, file_id, _name(kind, media, mime, message.get("date")), size, mime)


def _largest(sizes: Any) -> Any:
    """The largest of a photo's sizes (Telegram lists them smallest first)."""
    if not isinstance(sizes, list) or not sizes:
        raise TypeError("photo is not a list of sizes")

    def area(size: Any) -> tuple[int, int]:
        if not isinstance(size, dict):
            return (-1, -1)
        width, height = size.get("width"), size.get("height")
        pixels = width * height if isinstance(width, int) and isinstance(height, int) else 0
        file_size = size.get("file_size")
        return pixels, file_size if isinstance(file_size, int) else 0

    return max(reversed(sizes), key=area)


def _name(kind: str, media: dict[str, Any], mime: str, date: Any) -> str:
    """The customer's file name made safe to show, or ``<kind>-<date>.<extension>``."""
    given = media.get("file_name")
    if isinstance(given, str):
        safe = _UNSAFE_NAME.sub(" ", given).strip(" .")[:200]
        if safe:
            return safe
    when = datetime.fromtimestamp(date if isinstance(date, int) else 0, UTC)
    extension = _EXTENSIONS.get(mime, "bin")
    return f"{kind.replace('_', '-')}-{when:%Y-%m-%d-%H%M%S}.{extension}"


def _place(message: dict[str, Any]) -> str | None:
    """A location or venue as a line: what it is, the coordinates, a map link."""
    venue = message.get("venue")
    location = venue.get("location") if isinstance(venue, dict) else message.get("location")
    if not isinstance(location, dict):
        return None
    latitude, longitude = float(location["latitude"]), float(location["longitude"])
    where = f"{latitude:.6f}, {longitude:.6f}"
    link = (
        f"https://www.openstreetmap.org/?mlat={latitude:.6f}&mlon={longitude:.6f}"
        f"#map=17/{latitude:.6f}/{longitude:.6f}"
    )
    if isinstance(venue, dict):
        title, address = str(venue.get("title") or ""), str(venue.get("address") or "")
        named = ", ".join(p for p in (title, address) if p)
        return f"📍 {named} ({where}) {link}" if named else f"📍 {where} {link}"
    what = "Live location" if location.get("live_period") else "Location"
    return f"📍 {what}: {where} {link}"


def _contact(message: dict[str, Any]) -> str | None:
    """A shared contact as a short card: name and phone number."""
    contact = message.get("contact")
    if not isinstance(contact, dict):
        return None
    name = " ".join(
        str(p) for p in (contact.get("first_name"), contact.get("last_name")) if p
    ).strip()
    phone = str(contact["phone_number"])
    return f"👤 Contact: {name or 'no name'}, {phone}"
