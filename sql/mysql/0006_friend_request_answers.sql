-- A request turned down is kept with the time, so that its sender waits out a cool-down
-- (social.friend_request_cooldown_secs) before asking the same user again.
ALTER TABLE friend_requests ADD COLUMN rejected_at_ms BIGINT NOT NULL DEFAULT 0;
