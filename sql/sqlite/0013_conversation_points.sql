-- A member's points in a group's conversation now follow the group across its switch to
-- large and a member's leave (see src/store/sql/timeline_counts.rs); rows written before
-- are brought to the same rules (the SQLite migration of the same number does the same).

-- A clear makes what it clears read, in every kind of conversation.
UPDATE conversations SET read_seq = cleared_seq WHERE on_timeline = 0 AND cleared_seq > read_seq;

-- On a timeline the clear point is the group seq of the last message at or before the
-- cleared position (it was left an inbox seq when the group turned large).
UPDATE conversations AS c SET cleared_seq = COALESCE((SELECT MAX(t.seq) FROM group_timeline t
    JOIN messages m ON m.app_id = t.app_id AND m.id = t.message_id
    WHERE t.app_id = c.app_id AND t.group_id = c.conversation_id
    AND m.position <= c.cleared_position AND m.message_type <> 10), 0)
WHERE c.on_timeline = 1 AND c.cleared_position > 0;

-- A row on a timeline that counts nothing of its inbox has read all of it (timeline reads
-- and clears zeroed that part without moving the inbox read point, which counts it now).
UPDATE conversations AS c SET read_seq = COALESCE((SELECT MAX(i.seq) FROM inbox i
    WHERE i.app_id = c.app_id AND i.user_id = c.user_id AND i.conversation_type = c.conversation_type
    AND i.conversation_id = c.conversation_id), c.read_seq)
WHERE c.on_timeline = 1 AND c.unread = 0 AND c.mentions = 0;

-- A former member of a large group counts what its inbox holds of the group, no longer the
-- timeline's messages it can no longer open.
UPDATE conversations AS c SET
    unread = (SELECT COUNT(*) FROM inbox i JOIN messages m ON m.app_id = i.app_id AND m.id = i.message_id
        WHERE i.app_id = c.app_id AND i.user_id = c.user_id AND i.conversation_type = c.conversation_type
        AND i.conversation_id = c.conversation_id AND i.seq > c.read_seq AND i.seq > c.cleared_seq
        AND m.sender_user_id <> i.user_id AND m.sender_user_id <> '' AND m.status = 1 AND m.message_type <> 10
        AND NOT EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = i.app_id AND d.user_id = i.user_id
            AND d.message_id = i.message_id)),
    mentions = (SELECT COUNT(*) FROM inbox i JOIN messages m ON m.app_id = i.app_id AND m.id = i.message_id
        WHERE i.app_id = c.app_id AND i.user_id = c.user_id AND i.conversation_type = c.conversation_type
        AND i.conversation_id = c.conversation_id AND i.seq > c.read_seq AND i.seq > c.cleared_seq
        AND i.mentioned = 1 AND m.sender_user_id <> i.user_id AND m.sender_user_id <> '' AND m.status = 1
        AND m.message_type <> 10
        AND NOT EXISTS (SELECT 1 FROM deleted_messages d WHERE d.app_id = i.app_id AND d.user_id = i.user_id
            AND d.message_id = i.message_id))
WHERE c.conversation_type = 2 AND c.on_timeline = 0
    AND EXISTS (SELECT 1 FROM chat_groups g WHERE g.app_id = c.app_id AND g.group_id = c.conversation_id AND g.large = 1);
