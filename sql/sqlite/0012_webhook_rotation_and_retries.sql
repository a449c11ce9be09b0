-- Webhooks: secrets rotated with an overlap, retries started over by a replay or by
-- enabling the endpoint again, and partitions picked by a hash that spreads lanes named
-- alike (see the MySQL migration of the same number).

ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_until_ms INTEGER NOT NULL DEFAULT 0;

ALTER TABLE webhook_outbox ADD COLUMN retry_from_ms INTEGER NOT NULL DEFAULT 0;

INSERT INTO schema_tasks (name, done_at_ms) VALUES ('refile_webhook_events', 0);
