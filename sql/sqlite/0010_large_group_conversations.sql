-- Large groups in the conversation list: see the MySQL migration of the same name for
-- what the columns hold.
ALTER TABLE chat_groups ADD COLUMN counted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_groups ADD COLUMN last_message_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_groups ADD COLUMN last_message_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_groups ADD COLUMN last_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_groups ADD COLUMN changed_at_ms INTEGER NOT NULL DEFAULT 0;

ALTER TABLE group_timeline ADD COLUMN counted INTEGER NOT NULL DEFAULT 0;

ALTER TABLE conversations ADD COLUMN on_timeline INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN read_group_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN counted_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN hidden_at_ms INTEGER NOT NULL DEFAULT 0;

CREATE TABLE group_mentions (
    app_id     INTEGER NOT NULL,
    group_id   TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (app_id, group_id, user_id, seq)
) WITHOUT ROWID;

CREATE TABLE group_recalls (
    app_id   INTEGER NOT NULL,
    group_id TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (app_id, group_id, seq)
) WITHOUT ROWID;

-- Who deleted a message for itself, for a recall to find (deletions are rare writes).
CREATE INDEX idx_deleted_by_message ON deleted_messages (app_id, message_id);

UPDATE chat_groups SET
    last_message_seq = COALESCE((SELECT MAX(t.seq) FROM group_timeline t JOIN messages m
        ON m.app_id = t.app_id AND m.id = t.message_id
        WHERE t.app_id = chat_groups.app_id AND t.group_id = chat_groups.group_id AND m.message_type <> 10), 0),
    changed_at_ms = updated_at_ms
WHERE large = 1;
UPDATE chat_groups SET
    last_message_id = COALESCE((SELECT t.message_id FROM group_timeline t WHERE t.app_id = chat_groups.app_id
        AND t.group_id = chat_groups.group_id AND t.seq = chat_groups.last_message_seq), 0),
    last_at_ms = COALESCE((SELECT m.sent_at_ms FROM group_timeline t JOIN messages m
        ON m.app_id = t.app_id AND m.id = t.message_id WHERE t.app_id = chat_groups.app_id
        AND t.group_id = chat_groups.group_id AND t.seq = chat_groups.last_message_seq), 0)
WHERE large = 1;
UPDATE chat_groups SET changed_at_ms = MAX(changed_at_ms, last_at_ms) WHERE large = 1;
INSERT INTO conversations (app_id, user_id, conversation_type, conversation_id, last_seq, last_message_id,
    last_at_ms, unread, mentions, read_seq, pinned, muted, hidden, draft, version, updated_at_ms,
    on_timeline, read_group_seq, counted_base)
SELECT m.app_id, m.user_id, 2, m.group_id, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', 1, g.updated_at_ms, 1, g.seq, 0
FROM group_members m JOIN chat_groups g ON g.app_id = m.app_id AND g.group_id = m.group_id
WHERE g.large = 1
ON CONFLICT (app_id, user_id, conversation_type, conversation_id)
DO UPDATE SET on_timeline = 1, read_group_seq = excluded.read_group_seq, counted_base = 0;
