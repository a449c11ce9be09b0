-- Full-text search of what users wrote: one row per message with text in it (a text, a
-- file's name, a place's title), removed by a recall and rewritten by an edit in their
-- transactions. `terms` is written by gim (src/terms.rs): words, and characters and
-- character pairs of Chinese, Japanese and Korean, each wrapped in `x...x`, which FTS5's
-- unicode61 tokenizer takes as one token each. The other columns decide who may see a
-- match: the two users of a direct conversation, or the members of a group from their
-- join's position on. `message_search_fts` indexes `terms` by the row's rowid (message
-- ids are an app's own, not unique across apps), kept in step by the triggers below.
CREATE TABLE message_search (
    app_id            INTEGER NOT NULL,
    message_id        INTEGER NOT NULL,
    conversation_type INTEGER NOT NULL,
    sender_user_id    TEXT    NOT NULL,
    receiver_id       TEXT    NOT NULL,
    position          INTEGER NOT NULL,
    sent_at_ms        INTEGER NOT NULL,
    terms             TEXT    NOT NULL,
    UNIQUE (app_id, message_id)
);

CREATE VIRTUAL TABLE message_search_fts USING fts5(
    terms,
    content = 'message_search',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER message_search_inserted AFTER INSERT ON message_search BEGIN
    INSERT INTO message_search_fts (rowid, terms) VALUES (new.rowid, new.terms);
END;

CREATE TRIGGER message_search_deleted AFTER DELETE ON message_search BEGIN
    INSERT INTO message_search_fts (message_search_fts, rowid, terms) VALUES ('delete', old.rowid, old.terms);
END;

CREATE TRIGGER message_search_updated AFTER UPDATE ON message_search BEGIN
    INSERT INTO message_search_fts (message_search_fts, rowid, terms) VALUES ('delete', old.rowid, old.terms);
    INSERT INTO message_search_fts (rowid, terms) VALUES (new.rowid, new.terms);
END;

-- Work that a migration leaves to gim itself, done once when gim next starts (see
-- `SqlStore::migrate`): here, indexing the messages stored before this table was made,
-- whose terms only gim can compute.
CREATE TABLE schema_tasks (
    name       TEXT    NOT NULL,
    done_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name)
) WITHOUT ROWID;

INSERT INTO schema_tasks (name, done_at_ms) VALUES ('index_messages_for_search', 0);
