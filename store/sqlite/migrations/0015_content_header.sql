-- 0015: the header block stored apart from the message (issue 17).
--
-- FETCH BODY[HEADER], BODY[HEADER.FIELDS (...)] and RFC822.HEADER read a message's first
-- header_len octets. Cut from contents.raw (substr), that read walks the whole blob: the
-- record and every overflow page of the message, for a few hundred octets. content_header
-- keeps those octets in a side table of its own (as content_wire, 0010), packed several
-- to a page, so a header-only FETCH never touches the body.
--
-- Only blocks of at most 64 KiB (store.api.HEADER_ROW_MAX, the most the FETCH row path
-- reads) get a row; a contents row without one (a longer block, or one whose octets were
-- not in the INSERT, below) is read from contents.raw as before: the same octets, slower.
CREATE TABLE content_header (
    id     INTEGER PRIMARY KEY,                -- contents.id
    header BLOB NOT NULL
);

CREATE TRIGGER content_header_gone AFTER DELETE ON contents BEGIN
    DELETE FROM content_header WHERE id = OLD.id;
END;

-- Filled as contents rows are inserted, whoever inserts them (APPEND, LMTP delivery,
-- CATENATE, REPLACE, import). A spooled message is inserted with an empty raw and its
-- octets copied in afterwards with blob I/O (store/sqlite/append.py `_fill_raw`, which
-- adds its header row itself): the length test skips it here. An explicit id: the
-- message_in view's trigger reads last_insert_rowid() after the contents INSERT, which
-- SQLite restores when this trigger ends.
CREATE TRIGGER content_header_in AFTER INSERT ON contents
WHEN NEW.header_len <= 65536 AND length(NEW.raw) >= NEW.header_len BEGIN
    INSERT INTO content_header (id, header) VALUES (NEW.id, substr(NEW.raw, 1, NEW.header_len));
END;

-- Contents stored before this migration.
INSERT INTO content_header (id, header)
    SELECT id, substr(raw, 1, header_len) FROM contents
    WHERE header_len <= 65536 AND length(raw) >= header_len;
