"""The core's rules, names and text handling: pure functions, no event loop."""

from __future__ import annotations

from typing import get_args

import pytest

from skbridge.core import rules
from skbridge.core.model import (
    ChannelEvent,
    Conversation,
    Customer,
    CustomerMessage,
    InviteMembers,
    NotifyDispatch,
    Op,
    OpenChannel,
    PostCustomerMessage,
    ReopenChannel,
    SendToCustomer,
    SetTopic,
    SlashCommand,
    op_from_row,
    op_to_json,
)
from skbridge.core.naming import MAX_NAME, channel_names, slugify
from skbridge.core.states import (
    CONV_MOVES,
    OUTBOX_MOVES,
    RESENDABLE,
    UNFINISHED,
    ConvState,
    OutboxState,
)
from skbridge.core.text import escape_for_slack, mentioned_users, slack_to_plain, split_text
from skbridge.ids import (
    ChannelId,
    ConversationId,
    EnvelopeId,
    SlackUserId,
    SourceName,
    UpstreamUserId,
)

ADA = Customer(SourceName("telegram"), UpstreamUserId("1"), "Ada")
C1 = ChannelId("C1")


def conversation(state: ConvState, channel: ChannelId | None = C1) -> Conversation:
    return Conversation(
        ConversationId(1), ADA.source, ADA.upstream_id, "Ada", channel, "sk-ada", state
    )


def message(text: str = "hi") -> CustomerMessage:
    return CustomerMessage(ADA, text, "7")


def command(text: str, channel: ChannelId = C1) -> SlashCommand:
    return SlashCommand(EnvelopeId("e"), channel, SlackUserId("U1"), text)


def test_first_message_opens_posts_notifies_and_invites() -> None:
    """A new customer: channel, message, dispatch notice, owner invite, in that order."""
    plan = rules.on_customer_message(None, message())
    assert plan.new_state is ConvState.OPENING
    assert [type(op) for op in plan.ops] == [
        OpenChannel,
        PostCustomerMessage,
        SetTopic,
        NotifyDispatch,
        InviteMembers,
    ]
    assert plan.ops[1] == PostCustomerMessage(name="Ada", text="hi", message_id="7", first=True)


def test_message_to_open_conversation_only_posts() -> None:
    """Ongoing conversations never notify dispatch."""
    for state in (ConvState.OPEN, ConvState.OPENING, ConvState.REOPENING):
        plan = rules.on_customer_message(conversation(state), message())
        assert plan.new_state is None
        assert [type(op) for op in plan.ops] == [PostCustomerMessage]


def test_message_to_archived_conversation_reopens_and_notifies() -> None:
    """Archived means done for now: the next message reopens it and tells dispatch."""
    plan = rules.on_customer_message(conversation(ConvState.ARCHIVED), message())
    assert plan.new_state is ConvState.REOPENING
    assert plan.ops[0] == ReopenChannel(C1)
    assert plan.ops[3] == NotifyDispatch(reopened=True)


def test_a_changed_name_handle_or_language_refreshes_the_topic() -> None:
    """The channel's topic is the customer's card: kept current when they change."""
    for changed in (
        Customer(ADA.source, ADA.upstream_id, "Ada King"),
        Customer(ADA.source, ADA.upstream_id, "Ada", handle="ada"),
        Customer(ADA.source, ADA.upstream_id, "Ada", language="en"),
    ):
        plan = rules.on_customer_message(
            conversation(ConvState.OPEN), CustomerMessage(changed, "hi", "8")
        )
        assert [type(op) for op in plan.ops] == [PostCustomerMessage, SetTopic]


def test_message_after_channel_deleted_opens_a_fresh_channel() -> None:
    plan = rules.on_customer_message(conversation(ConvState.GONE), message())
    assert isinstance(plan.ops[0], OpenChannel)
    assert NotifyDispatch(reopened=True) in plan.ops


def test_sk_in_an_unlinked_channel_has_no_power() -> None:
    assert rules.on_command(None, command("hello")).reply == rules.NO_POWER
    assert rules.on_command(None, command("hello")).ops == ()


def test_sk_in_the_customer_channel_sends_the_text() -> None:
    plan = rules.on_command(conversation(ConvState.OPEN), command("  hello  "))
    assert plan.reply is None
    assert plan.ops == (SendToCustomer(agent_id=SlackUserId("U1"), text="hello"),)


def test_sk_without_text_answers_usage() -> None:
    assert rules.on_command(conversation(ConvState.OPEN), command(" ")).reply == rules.USAGE


@pytest.mark.parametrize(
    "text", ["\u200b", " \u200b\u200c\u200d\u2060\ufeff ", "\u3164", "\u2800\n\t", "\u00a0"]
)
def test_sk_with_only_invisible_characters_answers_usage(text: str) -> None:
    """Zero-width spaces and fillers are not a reply: nothing is sent."""
    plan = rules.on_command(conversation(ConvState.OPEN), command(text))
    assert plan.reply == rules.USAGE and plan.ops == ()


def test_sk_with_visible_text_among_invisible_characters_is_sent() -> None:
    plan = rules.on_command(conversation(ConvState.OPEN), command("\u200bok\u200b"))
    assert [type(op) for op in plan.ops] == [SendToCustomer]


def test_sk_in_an_old_channel_points_to_the_current_one() -> None:
    plan = rules.on_command(conversation(ConvState.OPEN, ChannelId("C2")), command("hi"))
    assert plan.ops == ()
    assert plan.reply is not None and "<#C2>" in plan.reply


def test_channel_events_change_state_only_for_the_current_channel() -> None:
    conv = conversation(ConvState.OPEN)
    assert rules.on_channel_event(conv, ChannelEvent("archive", C1)).new_state is ConvState.ARCHIVED
    assert rules.on_channel_event(conv, ChannelEvent("archive", ChannelId("C9"))).new_state is None
    archived = conversation(ConvState.ARCHIVED)
    assert rules.on_channel_event(archived, ChannelEvent("unarchive", C1)).new_state is (
        ConvState.OPEN
    )
    assert rules.on_channel_event(conv, ChannelEvent("deleted", C1)).new_state is ConvState.GONE
    assert rules.on_channel_event(conv, ChannelEvent("rename", C1, "vip")).new_name == "vip"


def test_ops_survive_a_round_trip_through_the_outbox() -> None:
    for op in (ReopenChannel(C1), SendToCustomer(SlackUserId("U1"), "x"), InviteMembers()):
        assert op_from_row(op.kind, op_to_json(op)) == op
    with pytest.raises(ValueError, match="unknown"):
        op_from_row("nope", "{}")
    with pytest.raises(ValueError, match="bad payload"):
        op_from_row("reopen_channel", '{"other": 1}')


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Ada Lovelace", "ada-lovelace"),
        ("Zoë  O'Brien!!", "zoe-o-brien"),
        ("__x__", "x"),
        ("李", ""),
        ("Jean-Luc_Picard", "jean-luc_picard"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_channel_names_fit_slack_rules_and_never_repeat() -> None:
    names = list(channel_names("sk-", "A" * 200, "telegram", "42"))
    assert len(names) == len(set(names))
    assert all(0 < len(n) <= MAX_NAME for n in names)
    assert all(n == n.lower() and n.startswith("sk-") for n in names)
    assert names[1].endswith("-2")


def test_channel_name_falls_back_to_the_upstream_id() -> None:
    assert next(channel_names("sk-", "李", "telegram", "42")) == "sk-te-42"


def test_customer_text_is_escaped_for_slack() -> None:
    assert escape_for_slack("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


def test_slack_markup_becomes_plain_text() -> None:
    text = (
        "Hi <@U1>, <@U2|bob> and <!here>: see <https://x.io|docs> or <https://y.io> "
        "in <#C1|general>; mail <mailto:a@b.c|a@b.c> &lt;tag&gt; &amp; <!subteam^S1|@ops>"
    )
    assert slack_to_plain(text, {"U1": "Alice"}) == (
        "Hi @Alice, @bob and @here: see docs (https://x.io) or https://y.io "
        "in #general; mail a@b.c <tag> & @ops"
    )
    assert mentioned_users("<@U1> <@U2|x> <@U1>") == ["U1", "U2"]


def test_split_text_keeps_everything_within_the_limit() -> None:
    text = ("word " * 50 + "\n") * 40
    chunks = split_text(text, 500)
    assert all(len(c) <= 500 for c in chunks)
    assert "".join(chunks).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
        "\n", ""
    )
    assert split_text("short", 10) == ["short"]


def test_the_outbox_state_machine_is_closed_and_its_sets_follow_from_it() -> None:
    """Unfinished rows can end in any outcome; only outcomes can be sent again, once."""
    assert set(OUTBOX_MOVES) == set(OutboxState)
    assert {OutboxState.PENDING, OutboxState.SENDING} == UNFINISHED
    assert {OutboxState.UNCERTAIN, OutboxState.FAILED, OutboxState.PARKED} == RESENDABLE
    assert OUTBOX_MOVES[OutboxState.RESENT] == frozenset()


@pytest.mark.parametrize("state", list(ConvState))
def test_every_move_the_rules_make_is_in_the_conversation_table(state: ConvState) -> None:
    """From each state, the states the rules choose are ones the table allows."""
    assert set(CONV_MOVES) == set(ConvState)
    conv = conversation(state)
    chosen = {rules.on_customer_message(conv, message()).new_state}
    for kind in ("archive", "unarchive", "deleted", "rename"):
        chosen.add(rules.on_channel_event(conv, ChannelEvent(kind, C1, name="x")).new_state)
    chosen.add(rules.on_parked(OpenChannel(), conv))
    if ConvState.OPEN in CONV_MOVES[state]:
        chosen.add(rules.on_channel_ready(conv))
    assert chosen - {None} <= CONV_MOVES[state]


def test_every_op_has_one_handler() -> None:
    """A new op is one class in the model and one line in the handler table."""
    from skbridge.deliver import HANDLERS

    assert set(HANDLERS) == set(get_args(Op))


def test_a_lost_channel_is_reopened_and_dispatch_told() -> None:
    plan = rules.on_channel_lost(conversation(ConvState.OPEN))
    assert plan.ops == (ReopenChannel(C1), NotifyDispatch(reopened=True))
