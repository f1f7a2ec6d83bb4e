-- 0004: SEARCH's substring keys (BODY, TEXT, SUBJECT, FROM, ..., HEADER) narrowed by a
-- trigram index (pg_trgm, one of PostgreSQL's contrib modules: Debian's postgresql package
-- ships it) instead of a scan of the mailbox. content_text holds, per contents row, every
-- text a text key can match, case-folded (store/textsearch.py `every_text`, made at
-- APPEND); a LIKE '%needle%' on it finds the candidates through the GIN index, and
-- store/textsearch.py's TextMatcher still decides each candidate (store/postgres/trigram.py).
-- Every contents row must have its content_text row (written in the same transaction; a
-- tool that writes contents rows itself must write it too): a row without one is never
-- found by a text key.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE content_text (
    id   bigint PRIMARY KEY REFERENCES contents (id) ON DELETE CASCADE,
    text text NOT NULL
);
CREATE INDEX content_text_trgm ON content_text USING gin (text gin_trgm_ops);
