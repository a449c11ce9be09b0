-- Apps, users, devices, accounts and the direct-message path (see sql/mysql for notes).

CREATE TABLE apps (
    app_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    settings      TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE app_secrets (
    app_id        INTEGER NOT NULL,
    secret_hash   TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NULL,
    PRIMARY KEY (app_id, secret_hash)
) WITHOUT ROWID;

CREATE TABLE users (
    app_id        INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    nickname      TEXT    NOT NULL,
    avatar_url    TEXT    NOT NULL,
    extra         TEXT    NOT NULL,
    token_gen     INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id)
) WITHOUT ROWID;

CREATE TABLE user_seqs (
    app_id  INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, user_id)
) WITHOUT ROWID;

CREATE TABLE devices (
    app_id        INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    device_id     TEXT    NOT NULL,
    device_type   INTEGER NOT NULL,
    model         TEXT    NOT NULL,
    os_version    TEXT    NOT NULL,
    sdk_version   TEXT    NOT NULL,
    token_gen     INTEGER NOT NULL DEFAULT 0,
    acked_seq     INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id, device_id)
) WITHOUT ROWID;

CREATE TABLE accounts (
    app_id        INTEGER NOT NULL,
    username      TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, username),
    UNIQUE (app_id, user_id)
) WITHOUT ROWID;

CREATE TABLE messages (
    app_id            INTEGER NOT NULL,
    id                INTEGER NOT NULL,
    client_msg_id     TEXT    NOT NULL,
    sender_user_id    TEXT    NOT NULL,
    sender_device_id  TEXT    NOT NULL,
    conversation_type INTEGER NOT NULL,
    receiver_id       TEXT    NOT NULL,
    message_type      INTEGER NOT NULL,
    body              BLOB    NOT NULL,
    sent_at_ms        INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    sender_seq        INTEGER NOT NULL,
    PRIMARY KEY (app_id, id),
    UNIQUE (app_id, client_msg_id, sender_user_id)
) WITHOUT ROWID;

CREATE TABLE inbox (
    app_id            INTEGER NOT NULL,
    user_id           TEXT    NOT NULL,
    seq               INTEGER NOT NULL,
    message_id        INTEGER NOT NULL,
    conversation_type INTEGER NOT NULL,
    conversation_id   TEXT    NOT NULL,
    sent_at_ms        INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id, seq)
) WITHOUT ROWID;

CREATE INDEX idx_inbox_conversation ON inbox (app_id, user_id, conversation_type, conversation_id, seq);
