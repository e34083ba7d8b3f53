"""The fake Telegram's files: media from customers, getFile's limit, multipart uploads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from skbridge.testing.fake_telegram import FakeTelegram
from skbridge.testing.fake_telegram_files import DOWNLOAD_LIMIT, PHOTO_LIMIT, UPLOAD_LIMIT

CUSTOMER = 424242
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 10


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def client(tg: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{tg.api_url}/bot{tg.token}/", timeout=30) as c:
        yield c


async def updates(client: httpx.AsyncClient) -> list[Any]:
    body = (await client.post("getUpdates", json={"timeout": 0})).json()
    assert body["ok"]
    result: list[Any] = body["result"]
    return result


async def test_a_photo_comes_in_several_sizes_largest_last(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    """A customer's photo is PhotoSize objects, ascending; only the last holds the original."""
    tg.customer_sends_file(CUSTOMER, "photo", PNG, caption="the crack")
    [update] = await updates(client)
    message = update["message"]
    sizes = message["photo"]
    assert message["caption"] == "the crack"
    assert [s["width"] for s in sizes] == sorted(s["width"] for s in sizes)
    info = (await client.post("getFile", json={"file_id": sizes[-1]["file_id"]})).json()["result"]
    download = await client.get(f"{tg.api_url}/file/bot{tg.token}/{info['file_path']}")
    assert download.content == PNG and info["file_size"] == len(PNG)
    small = (await client.post("getFile", json={"file_id": sizes[0]["file_id"]})).json()["result"]
    assert small["file_size"] != len(PNG)


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("document", {"file_name", "mime_type", "file_size"}),
        ("video", {"width", "height", "duration", "mime_type"}),
        ("audio", {"duration", "mime_type"}),
        ("voice", {"duration", "mime_type"}),
        ("sticker", {"type", "is_animated", "is_video", "emoji"}),
        ("video_note", {"length", "duration"}),
    ],
)
async def test_media_objects_carry_their_documented_fields(
    tg: FakeTelegram, client: httpx.AsyncClient, kind: str, fields: set[str]
) -> None:
    """Each media object has the Bot API's fields for its type."""
    tg.customer_sends_file(CUSTOMER, kind, b"bytes", file_name="f.bin")
    [update] = await updates(client)
    assert fields <= set(update["message"][kind])


async def test_an_animation_is_also_a_document(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    """Telegram sets ``document`` beside ``animation``, for older clients."""
    tg.customer_sends_file(CUSTOMER, "animation", b"gif", file_name="giphy.mp4")
    [update] = await updates(client)
    assert update["message"]["animation"]["file_id"] == update["message"]["document"]["file_id"]


async def test_get_file_refuses_files_over_20_mb(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    """Bots can download files of up to 20 MB; getFile says so past that."""
    tg.customer_sends_file(CUSTOMER, "video", b"v" * (DOWNLOAD_LIMIT + 1), declare_size=False)
    [update] = await updates(client)
    assert "file_size" not in update["message"]["video"]
    answer = await client.post("getFile", json={"file_id": update["message"]["video"]["file_id"]})
    assert answer.status_code == 400
    assert answer.json()["description"] == "Bad Request: file is too big"


async def test_send_document_takes_a_multipart_upload(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    """sendDocument records the uploaded bytes, name and caption and returns the message."""
    tg.register_chat(CUSTOMER)
    files = {"document": ("invoice.pdf", b"%PDF-1.7 ...", "application/pdf")}
    data = {"chat_id": str(CUSTOMER), "caption": "Alice: invoice.pdf"}
    answer = (await client.post("sendDocument", data=data, files=files)).json()
    assert answer["ok"], answer
    assert answer["result"]["document"]["file_name"] == "invoice.pdf"
    [sent] = tg.files_sent_to(CUSTOMER)
    assert (sent.method, sent.file_name, sent.content) == (
        "sendDocument",
        "invoice.pdf",
        b"%PDF-1.7 ...",
    )
    assert sent.caption == "Alice: invoice.pdf"


async def test_send_photo_wants_an_image_of_at_most_10_mb(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    """A photo that is no image, or over 10 MB, is refused with Telegram's texts."""
    tg.register_chat(CUSTOMER)

    async def send_photo(content: bytes) -> tuple[int, str]:
        files = {"photo": ("p.png", content, "image/png")}
        answer = await client.post("sendPhoto", data={"chat_id": str(CUSTOMER)}, files=files)
        body = answer.json()
        return answer.status_code, str(body.get("description", "ok"))

    assert await send_photo(PNG) == (200, "ok")
    assert await send_photo(b"not an image") == (400, "Bad Request: IMAGE_PROCESS_FAILED")
    big = PNG + b"\0" * PHOTO_LIMIT
    assert await send_photo(big) == (400, "Bad Request: PHOTO_SAVE_FILE_INVALID")
    assert [f.method for f in tg.files_sent_to(CUSTOMER)] == ["sendPhoto"]


async def test_uploads_over_50_mb_are_too_large(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    """Past 50 MB an upload is answered 413 Request Entity Too Large."""
    tg.register_chat(CUSTOMER)
    files = {"document": ("big.bin", b"x" * (UPLOAD_LIMIT + 1), "application/octet-stream")}
    answer = await client.post("sendDocument", data={"chat_id": str(CUSTOMER)}, files=files)
    assert answer.status_code == 413
    assert answer.json()["description"] == "Request Entity Too Large"
    assert tg.sent_files == []


async def test_file_sends_share_blocking_and_caption_rules(
    tg: FakeTelegram, client: httpx.AsyncClient
) -> None:
    """A blocked bot gets 403; a caption past 1,024 characters is refused."""
    tg.register_chat(CUSTOMER)
    files = {"document": ("a.txt", b"a", "text/plain")}
    long_caption = {"chat_id": str(CUSTOMER), "caption": "c" * 1025}
    answer = await client.post("sendDocument", data=long_caption, files=files)
    assert answer.json()["description"] == "Bad Request: message caption is too long"
    tg.block(CUSTOMER)
    answer = await client.post("sendDocument", data={"chat_id": str(CUSTOMER)}, files=files)
    assert answer.status_code == 403


async def test_downloads_can_fail_on_cue(tg: FakeTelegram, client: httpx.AsyncClient) -> None:
    """``fail_next("download")`` makes the next file download answer an error."""
    file_id = tg.add_file(b"content")
    info = (await client.post("getFile", json={"file_id": file_id})).json()["result"]
    tg.fail_next("download", status=404)
    url = f"{tg.api_url}/file/bot{tg.token}/{info['file_path']}"
    assert (await client.get(url)).status_code == 404
    assert (await client.get(url)).content == b"content"
