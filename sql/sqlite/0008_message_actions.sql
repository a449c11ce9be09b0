-- What users do to messages after sending them.

-- JSON of what is known about a message beyond its body: who recalled it and when, when
-- it was last edited, the message it replies to, where it was forwarded from. Empty for
-- most messages.
ALTER TABLE messages ADD COLUMN meta TEXT NOT NULL DEFAULT '';

-- Messages a user deleted for itself: history and search leave them out, sync returns
-- them as deleted, on every device of the user. Read by key beside each message read.
CREATE TABLE deleted_messages (
    app_id     INTEGER NOT NULL,
    user_id    TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id, message_id)
) WITHOUT ROWID;

-- One row per user and emoji on a message; counts are read by the message's key.
CREATE TABLE message_reactions (
    app_id        INTEGER NOT NULL,
    message_id    INTEGER NOT NULL,
    emoji         TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, message_id, emoji, user_id)
) WITHOUT ROWID;

-- Where a user cleared a conversation's history for itself: its inbox seq (direct, small
-- group, system), its group position (groups), and the time of the last message cleared
-- (for search, which reads neither).
ALTER TABLE conversations ADD COLUMN cleared_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN cleared_position INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN cleared_at_ms INTEGER NOT NULL DEFAULT 0;
