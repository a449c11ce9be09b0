-- Webhooks: an app's endpoints and the outbox of events they are owed.
--
-- An event is written to the outbox in the transaction of the change it reports, one row
-- per endpoint that wants its kind, so that there is no event without its change and no
-- change without its event. Workers on any logic node deliver them: a worker leases one
-- of an endpoint's partitions (rows of webhook_partitions, claimed with
-- SKIP LOCKED) and posts that partition's events in id order per lane (a conversation,
-- a user), so that one conversation's events arrive in order while other lanes go on.

CREATE TABLE webhook_endpoints (
    endpoint_id   BIGINT        NOT NULL AUTO_INCREMENT,
    app_id        BIGINT        NOT NULL,
    url           VARCHAR(2048) NOT NULL,
    -- The signing key as given to the app (`whsec_` and base64).
    secret        VARCHAR(128)  NOT NULL,
    -- Kinds the endpoint wants, space-separated: `message.created`, `group.*`, `*`.
    kinds         TEXT          NOT NULL,
    enabled       INT           NOT NULL,
    description   VARCHAR(256)  NOT NULL,
    -- Why gim disabled it (the receiver answered 410 Gone), empty otherwise.
    disabled_reason VARCHAR(256) NOT NULL DEFAULT '',
    created_at_ms BIGINT        NOT NULL,
    updated_at_ms BIGINT        NOT NULL,
    PRIMARY KEY (endpoint_id),
    KEY idx_endpoints_of_app (app_id, endpoint_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE webhook_partitions (
    endpoint_id     BIGINT      NOT NULL,
    part            INT         NOT NULL,
    locked_by       VARCHAR(64) NOT NULL DEFAULT '',
    locked_until_ms BIGINT      NOT NULL DEFAULT 0,
    -- A partition whose endpoint keeps failing rests until then, its events untouched,
    -- so that a dead endpoint costs the database next to nothing; `failures` counts
    -- the rests in a row (each longer than the last).
    blocked_until_ms BIGINT     NOT NULL DEFAULT 0,
    failures        INT         NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, part)
) ENGINE = InnoDB;

-- state: 0 waiting, 1 delivered, 2 dead (gave up; a replay makes it waiting again).
CREATE TABLE webhook_outbox (
    id              BIGINT        NOT NULL AUTO_INCREMENT,
    app_id          BIGINT        NOT NULL,
    endpoint_id     BIGINT        NOT NULL,
    part            INT           NOT NULL,
    lane            VARCHAR(300)  NOT NULL,
    kind            VARCHAR(64)   NOT NULL,
    payload         MEDIUMTEXT    NOT NULL,
    created_at_ms   BIGINT        NOT NULL,
    state           INT           NOT NULL DEFAULT 0,
    attempts        INT           NOT NULL DEFAULT 0,
    next_at_ms      BIGINT        NOT NULL,
    last_at_ms      BIGINT        NOT NULL DEFAULT 0,
    last_status     INT           NOT NULL DEFAULT 0,
    last_error      VARCHAR(512)  NOT NULL DEFAULT '',
    PRIMARY KEY (id),
    -- A partition's events by state, in order: what dispatchers deliver, what pruning drops.
    KEY idx_outbox_partition (endpoint_id, part, state, id),
    -- An endpoint's recent deliveries.
    KEY idx_outbox_endpoint (endpoint_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
