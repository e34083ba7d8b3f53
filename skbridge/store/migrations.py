"""Numbered schema migrations. Append only: a released migration is never edited.

Each migration holds its SQL per engine, side by side; an engine runs its own text and
records the version its own way (SQLite: ``PRAGMA user_version``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    sqlite: str


MIGRATIONS: tuple[Migration, ...] = tuple(
    Migration(sqlite=text)
    for text in (
        # 1: the first schema
        """
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    CREATE TABLE conversations (
        id            INTEGER PRIMARY KEY,
        source        TEXT NOT NULL,
        upstream_id   TEXT NOT NULL,
        customer_name TEXT NOT NULL,
        channel_id    TEXT,
        channel_name  TEXT,
        state         TEXT NOT NULL,
        created_at    REAL NOT NULL,
        last_activity REAL NOT NULL,
        UNIQUE (source, upstream_id)
    ) STRICT;

    -- Every channel a conversation ever had; maps a channel ID back to its customer.
    CREATE TABLE channels (
        channel_id      TEXT PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        name            TEXT NOT NULL,
        members_invited INTEGER NOT NULL DEFAULT 0,
        created_at      REAL NOT NULL
    ) STRICT;
    CREATE INDEX channels_by_conversation ON channels (conversation_id);

    -- Deduplication of everything that arrives: Slack event_id / envelope_id, upstream ids.
    CREATE TABLE received (
        key         TEXT PRIMARY KEY,
        received_at REAL NOT NULL,
        ack         TEXT
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX received_by_time ON received (received_at);

    -- Payloads that could not be understood: kept with their error, never retried.
    CREATE TABLE parked_input (
        id          INTEGER PRIMARY KEY,
        origin      TEXT NOT NULL,
        payload     TEXT NOT NULL,
        error       TEXT NOT NULL,
        received_at REAL NOT NULL
    ) STRICT;

    -- Work for the other side, carried out in order per lane (one lane per conversation).
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        lane            TEXT NOT NULL,
        conversation_id INTEGER REFERENCES conversations (id),
        kind            TEXT NOT NULL,
        payload         TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        created_at      REAL NOT NULL,
        finished_at     REAL
    ) STRICT;
    CREATE INDEX outbox_unfinished ON outbox (lane, id) WHERE state IN ('pending', 'sending');
    CREATE INDEX outbox_by_state ON outbox (state);
    """,
        # 2: replies sent in parts, each part its own unit of delivery
        """
    CREATE TABLE reply_parts (
        outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
        idx       INTEGER NOT NULL,
        body      TEXT NOT NULL,
        state     TEXT NOT NULL DEFAULT 'pending',
        PRIMARY KEY (outbox_id, idx)
    ) STRICT, WITHOUT ROWID;
    """,
        # 3: what parked input is, and one dispatch report per kind of it
        """
    ALTER TABLE parked_input ADD COLUMN kind TEXT NOT NULL DEFAULT 'something unreadable';

    CREATE TABLE parked_kinds (
        origin         TEXT NOT NULL,
        kind           TEXT NOT NULL,
        count          INTEGER NOT NULL,
        last_at        REAL NOT NULL,
        last_from      TEXT,
        notice_channel TEXT,
        notice_ts      TEXT,
        report_due     INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (origin, kind)
    ) STRICT;
    """,
        # 4: what the card of a customer says beyond the name
        """
    ALTER TABLE conversations ADD COLUMN handle TEXT;
    ALTER TABLE conversations ADD COLUMN language TEXT;
    """,
        # 5: who has a conversation, and where its dispatch notice is
        """
    ALTER TABLE conversations ADD COLUMN owner TEXT;
    ALTER TABLE conversations ADD COLUMN dispatch_channel TEXT;
    ALTER TABLE conversations ADD COLUMN dispatch_ts TEXT;
    ALTER TABLE conversations ADD COLUMN dispatch_reopened INTEGER NOT NULL DEFAULT 0;

    -- Who has answered although someone else owns the conversation (noted once each).
    CREATE TABLE claim_notes (
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        user_id         TEXT NOT NULL,
        PRIMARY KEY (conversation_id, user_id)
    ) STRICT, WITHOUT ROWID;
    """,
        # 6: what was said, for the history a continuation channel starts with
        """
    CREATE TABLE transcript (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        at              REAL NOT NULL,
        direction       TEXT NOT NULL,
        who             TEXT NOT NULL,
        text            TEXT NOT NULL
    ) STRICT;
    CREATE INDEX transcript_by_conversation ON transcript (conversation_id, id);
    """,
        # 7: idle channels: when skbridge warned that it would archive one, and why
        """
    ALTER TABLE conversations ADD COLUMN idle_warned_at REAL;
    ALTER TABLE conversations ADD COLUMN idle_notice TEXT;
    """,
        # 8: the team's figures: per conversation, per opening, and counters for monitoring
        """
    ALTER TABLE conversations ADD COLUMN messages_in INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN replies INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN reopens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN waiting_since REAL;
    CREATE INDEX conversations_waiting ON conversations (waiting_since)
        WHERE waiting_since IS NOT NULL;

    -- Each time a conversation opens or reopens, and when its first reply came.
    CREATE TABLE episodes (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        opened_at       REAL NOT NULL,
        reopened        INTEGER NOT NULL,
        first_reply_at  REAL
    ) STRICT;
    CREATE INDEX episodes_by_time ON episodes (opened_at);
    CREATE INDEX episodes_by_conversation ON episodes (conversation_id, id);

    -- Monotonic counters for monitoring, so `skbridge metrics` can print them any time.
    CREATE TABLE counters (
        name   TEXT NOT NULL,
        labels TEXT NOT NULL,
        value  REAL NOT NULL,
        PRIMARY KEY (name, labels)
    ) STRICT, WITHOUT ROWID;
    """,
        # 9: replies threaded upstream (email), and machine-written input counted, not carried
        """
    -- What an upstream needs to answer in the customer's thread, as it last wrote
    -- (email: the latest Message-ID, References and Subject), opaque to the core.
    CREATE TABLE reply_context (
        conversation_id INTEGER PRIMARY KEY REFERENCES conversations (id),
        context         TEXT NOT NULL,
        updated_at      REAL NOT NULL
    ) STRICT;

    -- Input that opens nothing on purpose (automatic replies, bounces), counted by kind.
    CREATE TABLE ignored_input (
        origin    TEXT NOT NULL,
        kind      TEXT NOT NULL,
        count     INTEGER NOT NULL,
        last_at   REAL NOT NULL,
        last_from TEXT,
        PRIMARY KEY (origin, kind)
    ) STRICT;
    """,
        # 10: files both ways and edits. A customer's message row names the upstream
        # message it carries and, once posted, the post (an edit updates that post); an
        # upload's Slack file is kept before it is completed (a crash then finds it);
        # a reply part may be a Slack file.
        """
    ALTER TABLE outbox ADD COLUMN message_ref TEXT;
    ALTER TABLE outbox ADD COLUMN posted_channel TEXT;
    ALTER TABLE outbox ADD COLUMN posted_ts TEXT;
    CREATE INDEX outbox_by_message ON outbox (conversation_id, message_ref)
        WHERE message_ref IS NOT NULL;

    CREATE TABLE slack_uploads (
        outbox_id INTEGER PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
        file_id   TEXT NOT NULL
    ) STRICT;

    ALTER TABLE reply_parts ADD COLUMN file TEXT;
    """,
    )
)
