-- Every group message takes its group's next position under the group's row lock, so
-- that history, sync and pushes show a group conversation in one order, whatever the
-- clocks of the nodes that wrote its messages (ids are ordered by those clocks).
ALTER TABLE chat_groups ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
ALTER TABLE group_members ADD COLUMN joined_position BIGINT NOT NULL DEFAULT 0;

-- Messages written before positions keep the order of their ids.
UPDATE messages m
JOIN (
    SELECT app_id, id, ROW_NUMBER() OVER (PARTITION BY app_id, receiver_id ORDER BY id) AS n
    FROM messages WHERE conversation_type = 2
) r ON r.app_id = m.app_id AND r.id = m.id
SET m.position = r.n;
UPDATE chat_groups g SET position = (
    SELECT COALESCE(MAX(m.position), 0) FROM messages m
    WHERE m.app_id = g.app_id AND m.conversation_type = 2 AND m.receiver_id = g.group_id
);
-- A member's history starts after the position before its join's announcement.
UPDATE group_members gm SET joined_position = COALESCE((
    SELECT m.position - 1 FROM messages m WHERE m.app_id = gm.app_id AND m.id = gm.joined_event_id
), 0);
ALTER TABLE group_members DROP COLUMN joined_event_id;

DROP INDEX idx_messages_conversation ON messages;
CREATE INDEX idx_messages_group_position ON messages (app_id, conversation_type, receiver_id, position);
