-- Groups. `chat_groups` because GROUPS is a reserved word in MySQL 8.
CREATE TABLE chat_groups (
    app_id          BIGINT        NOT NULL,
    group_id        VARCHAR(64)   NOT NULL,
    name            VARCHAR(255)  NOT NULL,
    avatar_url      VARCHAR(2048) NOT NULL,
    introduction    TEXT          NOT NULL,
    extra           TEXT          NOT NULL,
    owner_id        VARCHAR(64)   NOT NULL,
    join_policy     INT           NOT NULL,
    muted_all       INT           NOT NULL,
    history_visible INT           NOT NULL,
    member_count    BIGINT        NOT NULL,
    -- 1 once the group reads from one timeline instead of writing to every inbox.
    large           INT           NOT NULL,
    -- The last seq of the timeline. The row's lock orders everything done to a group.
    seq             BIGINT        NOT NULL,
    dismissed       INT           NOT NULL,
    created_at_ms   BIGINT        NOT NULL,
    updated_at_ms   BIGINT        NOT NULL,
    PRIMARY KEY (app_id, group_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE group_members (
    app_id           BIGINT       NOT NULL,
    group_id         VARCHAR(64)  NOT NULL,
    user_id          VARCHAR(64)  NOT NULL,
    role             INT          NOT NULL,
    nickname         VARCHAR(255) NOT NULL,
    muted_until_ms   BIGINT       NOT NULL,
    -- Where the member's view starts: the timeline seq (large group) and the id of the
    -- system message announcing the join (any group's history).
    joined_group_seq BIGINT       NOT NULL,
    joined_event_id  BIGINT       NOT NULL,
    joined_at_ms     BIGINT       NOT NULL,
    PRIMARY KEY (app_id, group_id, user_id),
    KEY idx_members_user (app_id, user_id, group_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE group_join_requests (
    app_id          BIGINT        NOT NULL,
    group_id        VARCHAR(64)   NOT NULL,
    user_id         VARCHAR(64)   NOT NULL,
    message         VARCHAR(1024) NOT NULL,
    requested_at_ms BIGINT        NOT NULL,
    PRIMARY KEY (app_id, group_id, user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A large group's timeline: every member reads it instead of having its own copy.
CREATE TABLE group_timeline (
    app_id     BIGINT      NOT NULL,
    group_id   VARCHAR(64) NOT NULL,
    seq        BIGINT      NOT NULL,
    message_id BIGINT      NOT NULL,
    PRIMARY KEY (app_id, group_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

ALTER TABLE messages ADD COLUMN group_seq BIGINT NOT NULL DEFAULT 0;
-- A conversation's history, whichever inboxes its messages went to.
CREATE INDEX idx_messages_conversation ON messages (app_id, conversation_type, receiver_id, id);
