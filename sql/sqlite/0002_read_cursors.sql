-- How far each user has read each conversation (see sql/mysql).
CREATE TABLE read_cursors (
    app_id            INTEGER NOT NULL,
    user_id           TEXT    NOT NULL,
    conversation_type INTEGER NOT NULL,
    conversation_id   TEXT    NOT NULL,
    seq               INTEGER NOT NULL,
    message_id        INTEGER NOT NULL,
    updated_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id, conversation_type, conversation_id)
) WITHOUT ROWID;
