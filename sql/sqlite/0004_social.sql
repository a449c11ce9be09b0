-- Friends, blocks and moments (see sql/mysql for notes).

CREATE TABLE friendships (
    app_id        INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    friend_id     TEXT    NOT NULL,
    remark        TEXT    NOT NULL,
    extra         TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id, friend_id)
) WITHOUT ROWID;

CREATE TABLE friend_requests (
    app_id        INTEGER NOT NULL,
    from_user_id  TEXT    NOT NULL,
    to_user_id    TEXT    NOT NULL,
    greeting      TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, from_user_id, to_user_id)
) WITHOUT ROWID;
CREATE INDEX idx_friend_requests_to ON friend_requests (app_id, to_user_id, from_user_id);

CREATE TABLE blocks (
    app_id        INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    blocked_id    TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id, blocked_id)
) WITHOUT ROWID;

CREATE TABLE posts (
    app_id         INTEGER NOT NULL,
    post_id        INTEGER NOT NULL,
    author_id      TEXT    NOT NULL,
    client_post_id TEXT    NOT NULL,
    content        BLOB    NOT NULL,
    visibility     INTEGER NOT NULL,
    audience       TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    PRIMARY KEY (app_id, post_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX uk_posts_client ON posts (app_id, author_id, client_post_id);
CREATE INDEX idx_posts_author ON posts (app_id, author_id, post_id);

CREATE TABLE feed_items (
    app_id    INTEGER NOT NULL,
    user_id   TEXT    NOT NULL,
    post_id   INTEGER NOT NULL,
    author_id TEXT    NOT NULL,
    PRIMARY KEY (app_id, user_id, post_id)
) WITHOUT ROWID;

CREATE TABLE post_likes (
    app_id        INTEGER NOT NULL,
    post_id       INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    author_id     TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, post_id, user_id)
) WITHOUT ROWID;

CREATE TABLE post_comments (
    app_id              INTEGER NOT NULL,
    post_id             INTEGER NOT NULL,
    comment_id          INTEGER NOT NULL,
    user_id             TEXT    NOT NULL,
    author_id           TEXT    NOT NULL,
    reply_to_user_id    TEXT    NOT NULL,
    reply_to_comment_id INTEGER NOT NULL,
    text                TEXT    NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    PRIMARY KEY (app_id, post_id, comment_id)
) WITHOUT ROWID;
