-- Webhooks: an app's endpoints and the outbox of events they are owed (see the MySQL
-- migration of the same number for how they are delivered).

CREATE TABLE webhook_endpoints (
    endpoint_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id          INTEGER NOT NULL,
    url             TEXT    NOT NULL,
    secret          TEXT    NOT NULL,
    kinds           TEXT    NOT NULL,
    enabled         INTEGER NOT NULL,
    description     TEXT    NOT NULL,
    disabled_reason TEXT    NOT NULL DEFAULT '',
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX idx_endpoints_of_app ON webhook_endpoints (app_id, endpoint_id);

CREATE TABLE webhook_partitions (
    endpoint_id     INTEGER NOT NULL,
    part            INTEGER NOT NULL,
    locked_by       TEXT    NOT NULL DEFAULT '',
    locked_until_ms INTEGER NOT NULL DEFAULT 0,
    blocked_until_ms INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, part)
);

CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id          INTEGER NOT NULL,
    endpoint_id     INTEGER NOT NULL,
    part            INTEGER NOT NULL,
    lane            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    state           INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at_ms      INTEGER NOT NULL,
    last_at_ms      INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX idx_outbox_partition ON webhook_outbox (endpoint_id, part, state, id);
CREATE INDEX idx_outbox_endpoint ON webhook_outbox (endpoint_id, id);
