-- Groups (see sql/mysql for notes).
CREATE TABLE chat_groups (
    app_id          INTEGER NOT NULL,
    group_id        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    avatar_url      TEXT    NOT NULL,
    introduction    TEXT    NOT NULL,
    extra           TEXT    NOT NULL,
    owner_id        TEXT    NOT NULL,
    join_policy     INTEGER NOT NULL,
    muted_all       INTEGER NOT NULL,
    history_visible INTEGER NOT NULL,
    member_count    INTEGER NOT NULL,
    large           INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    dismissed       INTEGER NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (app_id, group_id)
) WITHOUT ROWID;

CREATE TABLE group_members (
    app_id           INTEGER NOT NULL,
    group_id         TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    role             INTEGER NOT NULL,
    nickname         TEXT    NOT NULL,
    muted_until_ms   INTEGER NOT NULL,
    joined_group_seq INTEGER NOT NULL,
    joined_event_id  INTEGER NOT NULL,
    joined_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (app_id, group_id, user_id)
) WITHOUT ROWID;

CREATE INDEX idx_members_user ON group_members (app_id, user_id, group_id);

CREATE TABLE group_join_requests (
    app_id          INTEGER NOT NULL,
    group_id        TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    requested_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, group_id, user_id)
) WITHOUT ROWID;

CREATE TABLE group_timeline (
    app_id     INTEGER NOT NULL,
    group_id   TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (app_id, group_id, seq)
) WITHOUT ROWID;

ALTER TABLE messages ADD COLUMN group_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_messages_conversation ON messages (app_id, conversation_type, receiver_id, id);
