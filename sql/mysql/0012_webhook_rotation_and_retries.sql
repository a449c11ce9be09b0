-- Webhooks: secrets rotated with an overlap, retries started over by a replay or by
-- enabling the endpoint again, and partitions picked by a hash that spreads lanes named
-- alike.

-- A rotated endpoint's previous secret signs beside the new one until then (0: none).
ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secret VARCHAR(128) NOT NULL DEFAULT '',
    ADD COLUMN previous_secret_until_ms BIGINT NOT NULL DEFAULT 0;

-- When the event's retries were last started over: by a replay, or its endpoint enabled
-- again (0: never). They run for webhooks.retry_for_secs from then, or from its writing.
ALTER TABLE webhook_outbox ADD COLUMN retry_from_ms BIGINT NOT NULL DEFAULT 0;

-- Events not yet delivered were filed under FNV-1a partitions: gim files them again by
-- the lanes' partitions of today (`webhooks::partition_of`), which SQL cannot compute.
INSERT INTO schema_tasks (name, done_at_ms) VALUES ('refile_webhook_events', 0);
