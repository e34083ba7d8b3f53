"""The core's rules for edits, files and the Send to customer shortcut: no event loop."""

from __future__ import annotations

from skbridge.core import rules
from skbridge.core.model import (
    Conversation,
    Customer,
    CustomerMessage,
    EditCustomerMessage,
    PostCustomerMessage,
    carried_message,
    op_from_row,
    op_to_json,
)
from skbridge.core.states import ConvState
from skbridge.ids import ChannelId, ConversationId, SourceName, UpstreamUserId

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
