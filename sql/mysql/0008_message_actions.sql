-- What users do to messages after sending them.

-- JSON of what is known about a message beyond its body: who recalled it and when, when
-- it was last edited, the message it replies to, where it was forwarded from. Empty for
-- most messages.
ALTER TABLE messages ADD COLUMN meta VARCHAR(1024) NOT NULL DEFAULT '';

-- Messages a user deleted for itself: history and search leave them out, sync returns
-- them as deleted, on every device of the user. Read by key beside each message read.
CREATE TABLE deleted_messages (
    app_id     BIGINT      NOT NULL,
    user_id    VARCHAR(64) NOT NULL,
    message_id BIGINT      NOT NULL,
    PRIMARY KEY (app_id, user_id, message_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per user and emoji on a message; counts are read by the message's key.
CREATE TABLE message_reactions (
    app_id        BIGINT      NOT NULL,
    message_id    BIGINT      NOT NULL,
    emoji         VARCHAR(32) NOT NULL,
    user_id       VARCHAR(64) NOT NULL,
    created_at_ms BIGINT      NOT NULL,
    PRIMARY KEY (app_id, message_id, emoji, user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Where a user cleared a conversation's history for itself: its inbox seq (direct, small
-- group, system), its group position (groups), and the time of the last message cleared
-- (for search, which reads neither).
ALTER TABLE conversations ADD COLUMN cleared_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN cleared_position BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN cleared_at_ms BIGINT NOT NULL DEFAULT 0;
