-- How far each user has read each conversation (per user, shared by the user's devices).
CREATE TABLE read_cursors (
    app_id            BIGINT      NOT NULL,
    user_id           VARCHAR(64) NOT NULL,
    conversation_type INT         NOT NULL,
    conversation_id   VARCHAR(64) NOT NULL,
    seq               BIGINT      NOT NULL,
    message_id        BIGINT      NOT NULL,
    updated_at_ms     BIGINT      NOT NULL,
    PRIMARY KEY (app_id, user_id, conversation_type, conversation_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
