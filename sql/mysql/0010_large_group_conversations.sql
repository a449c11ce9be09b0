-- Large groups in the conversation list. Their messages are on one timeline, not in the
-- members' inboxes, so no member's row can be counted up by each message (that would be
-- the fan-out large groups exist to avoid). Instead the group keeps running totals and
-- each member's row keeps where it stands against them:
--
--   unread   = chat_groups.counted - conversations.counted_base
--              - group_recalls after conversations.read_group_seq
--   mentions = group_mentions of the user or of everyone after read_group_seq, still live
--
-- `counted` counts the messages that are unread for someone (a sender, not a revision);
-- `counted_base` is the total at the member's read point plus what the member does not
-- count after it (its own messages, those it deleted). Both move in the transactions of
-- the messages, reads, recalls and deletions that change them.

-- The last message (a revision never is one) and the last change of any kind on the
-- timeline (syncing the conversation list looks for groups changed since a point).
ALTER TABLE chat_groups
    ADD COLUMN counted          BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_message_id  BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_message_seq BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_at_ms       BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN changed_at_ms    BIGINT NOT NULL DEFAULT 0;

-- `chat_groups.counted` as it was after this seq.
ALTER TABLE group_timeline ADD COLUMN counted BIGINT NOT NULL DEFAULT 0;

-- on_timeline: 1 while the user is a member of the group and the group is large; the
-- row's unread and mentions then hold what was left from the group's small days only.
ALTER TABLE conversations
    ADD COLUMN on_timeline    INT    NOT NULL DEFAULT 0,
    ADD COLUMN read_group_seq BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN counted_base   BIGINT NOT NULL DEFAULT 0,
    -- When the user hid the conversation: a large group's later message shows it again.
    ADD COLUMN hidden_at_ms   BIGINT NOT NULL DEFAULT 0;

-- Who a large group's message mentions ('' for everyone): counted when unread.
CREATE TABLE group_mentions (
    app_id     BIGINT      NOT NULL,
    group_id   VARCHAR(64) NOT NULL,
    user_id    VARCHAR(64) NOT NULL,
    seq        BIGINT      NOT NULL,
    message_id BIGINT      NOT NULL,
    PRIMARY KEY (app_id, group_id, user_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The counted messages of a large group's timeline that were recalled since.
CREATE TABLE group_recalls (
    app_id   BIGINT      NOT NULL,
    group_id VARCHAR(64) NOT NULL,
    seq      BIGINT      NOT NULL,
    PRIMARY KEY (app_id, group_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Who deleted a message for itself, for a recall to find (deletions are rare writes).
CREATE INDEX idx_deleted_by_message ON deleted_messages (app_id, message_id);

-- Large groups so far: the last message from the timeline, every member's row on it with
-- everything before read (nothing before this point is counted).
UPDATE chat_groups g SET
    last_message_seq = COALESCE((SELECT MAX(t.seq) FROM group_timeline t JOIN messages m
        ON m.app_id = t.app_id AND m.id = t.message_id
        WHERE t.app_id = g.app_id AND t.group_id = g.group_id AND m.message_type <> 10), 0),
    changed_at_ms = updated_at_ms
WHERE g.large = 1;
UPDATE chat_groups g JOIN group_timeline t ON t.app_id = g.app_id AND t.group_id = g.group_id
    AND t.seq = g.last_message_seq
JOIN messages m ON m.app_id = t.app_id AND m.id = t.message_id
SET g.last_message_id = m.id, g.last_at_ms = m.sent_at_ms, g.changed_at_ms = GREATEST(g.changed_at_ms, m.sent_at_ms)
WHERE g.large = 1;
INSERT INTO conversations (app_id, user_id, conversation_type, conversation_id, last_seq, last_message_id,
    last_at_ms, unread, mentions, read_seq, pinned, muted, hidden, draft, version, updated_at_ms,
    on_timeline, read_group_seq, counted_base)
SELECT m.app_id, m.user_id, 2, m.group_id, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', 1, g.updated_at_ms, 1, g.seq, 0
FROM group_members m JOIN chat_groups g ON g.app_id = m.app_id AND g.group_id = m.group_id
WHERE g.large = 1
ON DUPLICATE KEY UPDATE on_timeline = 1, read_group_seq = VALUES(read_group_seq), counted_base = 0;
