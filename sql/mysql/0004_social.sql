-- Friends, blocks and moments.

-- One row per direction: each side keeps its own remark and extra data.
CREATE TABLE friendships (
    app_id        BIGINT       NOT NULL,
    user_id       VARCHAR(64)  NOT NULL,
    friend_id     VARCHAR(64)  NOT NULL,
    remark        VARCHAR(255) NOT NULL,
    extra         TEXT         NOT NULL,
    created_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (app_id, user_id, friend_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE friend_requests (
    app_id        BIGINT        NOT NULL,
    from_user_id  VARCHAR(64)   NOT NULL,
    to_user_id    VARCHAR(64)   NOT NULL,
    greeting      VARCHAR(1024) NOT NULL,
    created_at_ms BIGINT        NOT NULL,
    expires_at_ms BIGINT        NOT NULL,
    PRIMARY KEY (app_id, from_user_id, to_user_id),
    KEY idx_friend_requests_to (app_id, to_user_id, from_user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE blocks (
    app_id        BIGINT      NOT NULL,
    user_id       VARCHAR(64) NOT NULL,
    blocked_id    VARCHAR(64) NOT NULL,
    created_at_ms BIGINT      NOT NULL,
    PRIMARY KEY (app_id, user_id, blocked_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A deleted post keeps its row (emptied) so that its client_post_id stays taken.
CREATE TABLE posts (
    app_id         BIGINT      NOT NULL,
    post_id        BIGINT      NOT NULL,
    author_id      VARCHAR(64) NOT NULL,
    client_post_id VARCHAR(64) NOT NULL,
    -- An encoded gim.logic.v1.PostContent.
    content        MEDIUMBLOB  NOT NULL,
    visibility     INT         NOT NULL,
    -- JSON array of the chosen or excepted friends.
    audience       TEXT        NOT NULL,
    created_at_ms  BIGINT      NOT NULL,
    deleted        INT         NOT NULL,
    PRIMARY KEY (app_id, post_id),
    UNIQUE KEY uk_posts_client (app_id, author_id, client_post_id),
    KEY idx_posts_author (app_id, author_id, post_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Fan-out on write: a row per post per user whose feed it is in (the author's and its
-- audience's at publish time). Reads check friendship again, so a removed friend's
-- posts drop out.
CREATE TABLE feed_items (
    app_id    BIGINT      NOT NULL,
    user_id   VARCHAR(64) NOT NULL,
    post_id   BIGINT      NOT NULL,
    author_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (app_id, user_id, post_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- author_id is the post's author, so that the author's view needs no join.
CREATE TABLE post_likes (
    app_id        BIGINT      NOT NULL,
    post_id       BIGINT      NOT NULL,
    user_id       VARCHAR(64) NOT NULL,
    author_id     VARCHAR(64) NOT NULL,
    created_at_ms BIGINT      NOT NULL,
    PRIMARY KEY (app_id, post_id, user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE post_comments (
    app_id              BIGINT      NOT NULL,
    post_id             BIGINT      NOT NULL,
    comment_id          BIGINT      NOT NULL,
    user_id             VARCHAR(64) NOT NULL,
    author_id           VARCHAR(64) NOT NULL,
    reply_to_user_id    VARCHAR(64) NOT NULL,
    reply_to_comment_id BIGINT      NOT NULL,
    text                TEXT        NOT NULL,
    created_at_ms       BIGINT      NOT NULL,
    PRIMARY KEY (app_id, post_id, comment_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
