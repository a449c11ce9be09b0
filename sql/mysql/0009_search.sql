-- Full-text search of what users wrote: one row per message with text in it (a text, a
-- file's name, a place's title), removed by a recall and rewritten by an edit in their
-- transactions. `terms` is written by gim (src/terms.rs): words, and characters and
-- character pairs of Chinese, Japanese and Korean, each wrapped in `x...x`, so that
-- InnoDB's FULLTEXT parser, its minimum token size and its stopwords take them as they
-- are. The other columns decide who may see a match: the two users of a direct
-- conversation, or the members of a group from their join's position on.
CREATE TABLE message_search (
    app_id            BIGINT      NOT NULL,
    message_id        BIGINT      NOT NULL,
    conversation_type INT         NOT NULL,
    sender_user_id    VARCHAR(64) NOT NULL,
    receiver_id       VARCHAR(64) NOT NULL,
    position          BIGINT      NOT NULL,
    sent_at_ms        BIGINT      NOT NULL,
    terms             MEDIUMTEXT  NOT NULL,
    PRIMARY KEY (app_id, message_id),
    FULLTEXT KEY ft_message_search_terms (terms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Work that a migration leaves to gim itself, done once when gim next starts (see
-- `SqlStore::migrate`): here, indexing the messages stored before this table was made,
-- whose terms only gim can compute.
CREATE TABLE schema_tasks (
    name          VARCHAR(64) NOT NULL,
    done_at_ms    BIGINT      NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO schema_tasks (name, done_at_ms) VALUES ('index_messages_for_search', 0);
