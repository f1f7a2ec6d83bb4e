-- 0012: content_text holds the distinct whitespace-separated pieces of a message's
-- searchable texts (store/textsearch.py `index_text`) instead of the whole text, and the
-- trigram index is asked one LIKE per piece of the needle (store/postgres/trigram.py): the
-- index's trigram extraction at APPEND reads a shorter text (issue 18, APPEND's CPU). Rows
-- written before keep the whole text: each piece of a needle found in it is in it too, so
-- the same query finds them; nothing to rewrite. And as contents in 0010: a row that fits a
-- page is stored as it is, neither compressed (pglz at every APPEND, decompressed at every
-- SEARCH that rechecks it) nor moved out of line; a longer one as before.
ALTER TABLE content_text SET (toast_tuple_target = 8160);
