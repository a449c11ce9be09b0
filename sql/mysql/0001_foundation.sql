-- Apps, users, devices, accounts and the direct-message path.
-- Every table is keyed by app_id first: one app can never reach another's rows.
-- Integers are BIGINT or INT (the shared SQL layer reads no TINYINT or DECIMAL).

CREATE TABLE apps (
    app_id        BIGINT       NOT NULL AUTO_INCREMENT,
    name          VARCHAR(128) NOT NULL,
    settings      TEXT         NOT NULL,
    created_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (app_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE app_secrets (
    app_id        BIGINT   NOT NULL,
    secret_hash   CHAR(64) NOT NULL,
    created_at_ms BIGINT   NOT NULL,
    expires_at_ms BIGINT   NULL,
    PRIMARY KEY (app_id, secret_hash)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE users (
    app_id        BIGINT        NOT NULL,
    user_id       VARCHAR(64)   NOT NULL,
    nickname      VARCHAR(255)  NOT NULL,
    avatar_url    VARCHAR(2048) NOT NULL,
    extra         TEXT          NOT NULL,
    token_gen     BIGINT        NOT NULL DEFAULT 0,
    created_at_ms BIGINT        NOT NULL,
    updated_at_ms BIGINT        NOT NULL,
    PRIMARY KEY (app_id, user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The last inbox seq handed out per user. Its row lock serialises seq allocation.
CREATE TABLE user_seqs (
    app_id  BIGINT      NOT NULL,
    user_id VARCHAR(64) NOT NULL,
    seq     BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE devices (
    app_id        BIGINT       NOT NULL,
    user_id       VARCHAR(64)  NOT NULL,
    device_id     VARCHAR(64)  NOT NULL,
    device_type   INT          NOT NULL,
    model         VARCHAR(128) NOT NULL,
    os_version    VARCHAR(64)  NOT NULL,
    sdk_version   VARCHAR(64)  NOT NULL,
    token_gen     BIGINT       NOT NULL DEFAULT 0,
    acked_seq     BIGINT       NOT NULL DEFAULT 0,
    created_at_ms BIGINT       NOT NULL,
    updated_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (app_id, user_id, device_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE accounts (
    app_id        BIGINT       NOT NULL,
    username      VARCHAR(32)  NOT NULL,
    user_id       VARCHAR(64)  NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (app_id, username),
    UNIQUE KEY uk_accounts_user (app_id, user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per message, whatever the number of inboxes it lands in.
CREATE TABLE messages (
    app_id            BIGINT      NOT NULL,
    id                BIGINT      NOT NULL,
    client_msg_id     VARCHAR(64) NOT NULL,
    sender_user_id    VARCHAR(64) NOT NULL,
    sender_device_id  VARCHAR(64) NOT NULL,
    conversation_type INT         NOT NULL,
    receiver_id       VARCHAR(64) NOT NULL,
    message_type      INT         NOT NULL,
    body              MEDIUMBLOB  NOT NULL,
    sent_at_ms        BIGINT      NOT NULL,
    status            INT         NOT NULL,
    sender_seq        BIGINT      NOT NULL,
    PRIMARY KEY (app_id, id),
    UNIQUE KEY uk_messages_client (app_id, client_msg_id, sender_user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Each user's inbox: seq is gap-free and strictly increasing per user.
CREATE TABLE inbox (
    app_id            BIGINT      NOT NULL,
    user_id           VARCHAR(64) NOT NULL,
    seq               BIGINT      NOT NULL,
    message_id        BIGINT      NOT NULL,
    conversation_type INT         NOT NULL,
    conversation_id   VARCHAR(64) NOT NULL,
    sent_at_ms        BIGINT      NOT NULL,
    PRIMARY KEY (app_id, user_id, seq),
    KEY idx_inbox_conversation (app_id, user_id, conversation_type, conversation_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
