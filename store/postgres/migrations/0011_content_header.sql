-- 0011: the header block stored apart from the message (issue 17), as SQLite's
-- 0015_content_header. FETCH BODY[HEADER], BODY[HEADER.FIELDS (...)] and RFC822.HEADER
-- read a message's first header_len octets; cut from contents.raw they detoast (fetch
-- and decompress) the message's TOAST chunks. A stored generated column computes the block
-- once, as a row is inserted by whoever inserts it (APPEND, LMTP delivery, CATENATE,
-- REPLACE, the SQLite import), and this ALTER computes it for the rows already there.
-- Blocks over 64 KiB (store.api.HEADER_ROW_MAX, the most the FETCH row path reads) are
-- NULL: read from raw as before.
ALTER TABLE contents ADD COLUMN header bytea GENERATED ALWAYS AS (
    CASE WHEN header_len <= 65536 THEN substring(raw FROM 1 FOR header_len) END
) STORED;
