"""The core's rules for edits, files and the Send to customer shortcut: no event loop."""

from __future__ import annotations

from typing import Any

from skbridge.core import rules
from skbridge.core.model import (
    Conversation,
    Customer,
    CustomerMessage,
    EditCustomerMessage,
    PostCustomerMessage,
    SendToCustomer,
    SharedFile,
    Shortcut,
    carried_message,
    op_from_row,
    op_to_json,
)
from skbridge.core.states import ConvState
from skbridge.ids import (
    ChannelId,
    ConversationId,
    EnvelopeId,
    SlackUserId,
    SourceName,
    UpstreamUserId,
)
from skbridge.slack import envelopes
from skbridge.slack.manifest import manifest
from skbridge.upstreams.telegram_media import content_of

ADA = Customer(SourceName("telegram"), UpstreamUserId("1"), "Ada", avatar_url="https://a/1")
C1 = ChannelId("C1")


def conversation(state: ConvState = ConvState.OPEN) -> Conversation:
    return Conversation(ConversationId(1), ADA.source, ADA.upstream_id, "Ada", C1, "sk-ada", state)


def test_a_message_names_the_upstream_message_it_carries() -> None:
    """Its post is found again by that ID when the customer edits the message."""
    [post] = rules.on_customer_message(conversation(), CustomerMessage(ADA, "hi", "7")).ops
    assert isinstance(post, PostCustomerMessage) and post.message_id == "7"
    assert carried_message(post) == "7"


def test_an_edit_plans_an_update_of_its_post() -> None:
    """An edited message becomes an edit op, not a second post; archived still reopens."""
    edited = CustomerMessage(ADA, "hello", "7", edited=True)
    [op] = rules.on_customer_message(conversation(), edited).ops
    assert op == EditCustomerMessage(
        name="Ada", text="hello", message_id="7", avatar_url="https://a/1"
    )
    assert carried_message(op) == "7"
    plan = rules.on_customer_message(conversation(ConvState.ARCHIVED), edited)
    assert plan.new_state is ConvState.REOPENING
    assert any(isinstance(o, EditCustomerMessage) for o in plan.ops)


def test_rows_of_older_versions_still_load() -> None:
    """A post stored before message IDs were kept reads back with none."""
    op = op_from_row("post_customer_message", '{"name":"Ada","text":"x","edited":true}')
    assert isinstance(op, PostCustomerMessage) and op.edited and op.message_id == ""
    edit = EditCustomerMessage(name="Ada", text="x", message_id="7")
    assert op_from_row(edit.kind, op_to_json(edit)) == edit


def shortcut(text: str = "hi", files: tuple[SharedFile, ...] = (), channel: str = "C1") -> Shortcut:
    return Shortcut(
        EnvelopeId("e"), ChannelId(channel), SlackUserId("U1"), text, files, "https://hooks/x"
    )


def test_send_to_customer_sends_the_text_and_files_of_the_message() -> None:
    """In the customer's channel: one reply with the text and the files, in that order."""
    files = (SharedFile("F1", "a.png"),)
    [op] = rules.on_shortcut(conversation(), shortcut(" hi ", files)).ops
    assert op == SendToCustomer(agent_id=SlackUserId("U1"), text="hi", files=files)
    assert op_from_row(op.kind, op_to_json(op)) == op
    [files_only] = rules.on_shortcut(conversation(), shortcut("\u200b", files)).ops
    assert isinstance(files_only, SendToCustomer) and files_only.text == ""


def test_send_to_customer_elsewhere_has_no_power() -> None:
    """Outside a customer channel, or on nothing: a private answer, no op."""
    assert rules.on_shortcut(None, shortcut()) == rules.Plan(reply=rules.SHORTCUT_NO_POWER)
    moved = rules.on_shortcut(conversation(), shortcut(channel="C0"))
    assert not moved.ops and moved.reply and "<#C1>" in moved.reply
    empty = rules.on_shortcut(conversation(), shortcut(" "))
    assert empty == rules.Plan(reply=rules.NOTHING_TO_SEND)


def message_action(**payload: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "message_action",
        "callback_id": "send_to_customer",
        "trigger_id": "123.456.abc",
        "response_url": "https://hooks.slack.com/app/T/1/x",
        "channel": {"id": "C1", "name": "sk-ada"},
        "user": {"id": "U1"},
        "message": {"type": "message", "ts": "1.2", "text": "hi", "files": [{"id": "F1"}]},
    }
    base.update(payload)
    return {"envelope_id": "env-1", "type": "interactive", "payload": base}


def test_a_message_shortcut_envelope_is_read_at_the_edge() -> None:
    """Its message's text and files, who and where; other shortcuts are ignored; one use
    of it is remembered by its trigger_id, whatever envelope brings it again."""
    parsed = envelopes.parse(message_action())
    assert parsed == Shortcut(
        EnvelopeId("env-1"),
        ChannelId("C1"),
        SlackUserId("U1"),
        "hi",
        (SharedFile("F1", "F1"),),
        "https://hooks.slack.com/app/T/1/x",
    )
    assert envelopes.dedupe_key(message_action()) == "slack-shortcut:123.456.abc"
    assert isinstance(envelopes.parse(message_action(callback_id="other")), envelopes.Ignored)
    assert isinstance(envelopes.parse(message_action(message="x")), envelopes.Malformed)
    bad_files = message_action(message={"text": "hi", "files": [{"name": "no id"}]})
    assert isinstance(envelopes.parse(bad_files), envelopes.Malformed)


def test_the_manifest_declares_the_shortcut_and_the_file_scopes() -> None:
    """The manifest asks for the shortcut (within Slack's lengths) and exactly the file scopes."""
    app = manifest()
    [declared] = app["features"]["shortcuts"]
    assert (declared["type"], declared["callback_id"]) == ("message", "send_to_customer")
    assert len(declared["name"]) <= 24 and len(declared["description"]) <= 150
    assert {"files:read", "files:write"} <= set(app["oauth_config"]["scopes"]["bot"])
    assert app["settings"]["interactivity"]["is_enabled"] is True


def test_the_largest_photo_size_is_the_one_carried() -> None:
    """Telegram lists sizes smallest first; the largest is taken whatever the order."""
    sizes = [
        {"file_id": "big", "file_unique_id": "b", "width": 1280, "height": 960},
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 67},
    ]
    text, attachment = content_of({"photo": sizes, "caption": "c", "date": 0})
    assert text == "c" and attachment is not None
    assert (attachment.ref, attachment.name) == ("big", "photo-1970-01-01-000000.jpg")


def test_a_customers_file_name_is_made_safe_to_show() -> None:
    """No path, no control characters; nothing left means a name of skbridge's making."""
    document = {"file_id": "d", "file_unique_id": "u", "file_name": "../../etc/pass\x00wd"}
    _, attachment = content_of({"document": document, "date": 0})
    assert attachment is not None and attachment.name == "etc pass wd"
    _, unnamed = content_of({"document": {**document, "file_name": "/.."}, "date": 0})
    assert unnamed is not None and unnamed.name == "document-1970-01-01-000000.bin"
