-- Every group message takes its group's next position under the group's row lock, so
-- that history, sync and pushes show a group conversation in one order, whatever the
-- clocks of the nodes that wrote its messages (ids are ordered by those clocks).
ALTER TABLE chat_groups ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
ALTER TABLE group_members ADD COLUMN joined_position INTEGER NOT NULL DEFAULT 0;

-- Messages written before positions keep the order of their ids.
UPDATE messages SET position = r.n
FROM (
    SELECT app_id, id, ROW_NUMBER() OVER (PARTITION BY app_id, receiver_id ORDER BY id) AS n
    FROM messages WHERE conversation_type = 2
) AS r
WHERE r.app_id = messages.app_id AND r.id = messages.id;
UPDATE chat_groups SET position = (
    SELECT COALESCE(MAX(m.position), 0) FROM messages m
    WHERE m.app_id = chat_groups.app_id AND m.conversation_type = 2 AND m.receiver_id = chat_groups.group_id
);
-- A member's history starts after the position before its join's announcement.
UPDATE group_members SET joined_position = COALESCE((
    SELECT m.position - 1 FROM messages m WHERE m.app_id = group_members.app_id AND m.id = group_members.joined_event_id
), 0);
ALTER TABLE group_members DROP COLUMN joined_event_id;

DROP INDEX idx_messages_conversation;
CREATE INDEX idx_messages_group_position ON messages (app_id, conversation_type, receiver_id, position);
