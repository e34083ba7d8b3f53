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
        # 4: files both ways and edits. A customer's message row names the upstream
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
