-- 0010: pre-rendered FETCH answers (issue 17).
--
-- content_wire holds, per contents row, opaque bytes that the server's renderer
-- (imapd/fetch_wire.py, handed to the store when it is opened) made at APPEND from the parsed
-- structure: ENVELOPE, BODY and BODYSTRUCTURE as they go on the wire, so that FETCH splices
-- them instead of decoding contents.structure and serialising it. The store never reads
-- inside them. A side table rather than a column of contents, as content_search (0006):
-- a column behind contents.raw is read by walking the blob's overflow chain. A contents row
-- without a content_wire row (stored before this migration, or by a store opened without a
-- renderer) is rendered at FETCH from contents.structure: the same bytes, slower.
CREATE TABLE content_wire (
    id   INTEGER PRIMARY KEY,                  -- contents.id
    wire BLOB NOT NULL
);

CREATE TRIGGER content_wire_gone AFTER DELETE ON contents BEGIN
    DELETE FROM content_wire WHERE id = OLD.id;
END;

-- The APPEND view takes the bytes too: one statement still writes all rows. As in 0006,
-- the side tables are inserted before messages so that last_insert_rowid() stays the
-- contents id (the explicit ids make it the same value); no content_wire row when NULL.
DROP TRIGGER message_in_insert;
DROP VIEW message_in;

CREATE VIEW message_in AS
    SELECT m.mailbox_id, m.uid, m.modseq, m.seen, m.deleted, m.size, m.internal_epoch,
           m.internaldate, m.savedate, m.flags, c.header_len, c.message_id, c.structure, c.raw,
           s.from_text, s.to_text, s.cc_text, s.bcc_text, s.subject_text, w.wire
    FROM messages m JOIN contents c ON c.id = m.content_id
    LEFT JOIN content_search s ON s.id = c.id
    LEFT JOIN content_wire w ON w.id = c.id;

CREATE TRIGGER message_in_insert INSTEAD OF INSERT ON message_in BEGIN
    INSERT INTO contents (header_len, message_id, structure, raw)
        VALUES (NEW.header_len, NEW.message_id, NEW.structure, NEW.raw);
    INSERT INTO content_search (id, from_text, to_text, cc_text, bcc_text, subject_text)
        VALUES (last_insert_rowid(), NEW.from_text, NEW.to_text, NEW.cc_text, NEW.bcc_text,
                NEW.subject_text);
    INSERT INTO content_wire (id, wire)
        SELECT last_insert_rowid(), NEW.wire WHERE NEW.wire IS NOT NULL;
    INSERT INTO messages (mailbox_id, uid, modseq, seen, deleted, size, internal_epoch,
                          internaldate, savedate, flags, content_id)
        VALUES (NEW.mailbox_id, NEW.uid, NEW.modseq, NEW.seen, NEW.deleted, NEW.size,
                NEW.internal_epoch, NEW.internaldate, NEW.savedate, NEW.flags,
                last_insert_rowid());
END;
