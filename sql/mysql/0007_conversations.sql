-- A user's conversations: one row per user and conversation, changed in the transaction
-- of every message, read and setting that changes it, so that the list and its counts
-- are exact. `version` is the user's conversation version when the row last changed
-- (user_seqs.conversation_version counts them), for incremental sync. Lists and syncs
-- read a user's rows by the key's prefix and sort them (a user has thousands, not
-- millions): no secondary index, so that a send updates one index per row, not three.
ALTER TABLE user_seqs ADD COLUMN conversation_version BIGINT NOT NULL DEFAULT 0;

-- 1 when the message mentions this user (or everyone): unread mentions are counted
-- again from here when a read cursor moves.
ALTER TABLE inbox ADD COLUMN mentioned INT NOT NULL DEFAULT 0;

CREATE TABLE conversations (
    app_id            BIGINT      NOT NULL,
    user_id           VARCHAR(64) NOT NULL,
    conversation_type INT         NOT NULL,
    conversation_id   VARCHAR(64) NOT NULL,
    last_seq          BIGINT      NOT NULL,
    last_message_id   BIGINT      NOT NULL,
    last_at_ms        BIGINT      NOT NULL,
    unread            BIGINT      NOT NULL,
    mentions          BIGINT      NOT NULL,
    read_seq          BIGINT      NOT NULL,
    pinned            INT         NOT NULL,
    muted             INT         NOT NULL,
    hidden            INT         NOT NULL,
    draft             TEXT        NOT NULL,
    version           BIGINT      NOT NULL,
    updated_at_ms     BIGINT      NOT NULL,
    PRIMARY KEY (app_id, user_id, conversation_type, conversation_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The conversations of the messages stored so far, at version 1.
INSERT INTO conversations (app_id, user_id, conversation_type, conversation_id, last_seq, last_message_id,
    last_at_ms, unread, mentions, read_seq, pinned, muted, hidden, draft, version, updated_at_ms)
SELECT i.app_id, i.user_id, i.conversation_type, i.conversation_id, MAX(i.seq), 0, MAX(i.sent_at_ms),
    SUM(CASE WHEN i.seq > COALESCE(r.seq, 0) AND m.sender_user_id <> i.user_id
        AND (m.sender_user_id <> '' OR i.conversation_type = 3) THEN 1 ELSE 0 END), 0,
    COALESCE(MAX(r.seq), 0), 0, 0, 0, '', 1, MAX(i.sent_at_ms)
FROM inbox i
JOIN messages m ON m.app_id = i.app_id AND m.id = i.message_id
LEFT JOIN read_cursors r ON r.app_id = i.app_id AND r.user_id = i.user_id
    AND r.conversation_type = i.conversation_type AND r.conversation_id = i.conversation_id
GROUP BY i.app_id, i.user_id, i.conversation_type, i.conversation_id;

UPDATE conversations c JOIN inbox i ON i.app_id = c.app_id AND i.user_id = c.user_id AND i.seq = c.last_seq
SET c.last_message_id = i.message_id;

UPDATE user_seqs SET conversation_version = 1;
