-- 0002: an insertable view so that APPEND writes a content row and the message row using
-- it in one statement (one aiosqlite round trip; store/sqlite.py counts them).

CREATE VIEW message_in AS
    SELECT m.mailbox_id, m.uid, m.modseq, m.seen, m.deleted, m.size, m.internal_epoch,
           m.internaldate, m.savedate, m.flags, c.header_len, c.message_id, c.structure, c.raw
    FROM messages m JOIN contents c ON c.id = m.content_id;

CREATE TRIGGER message_in_insert INSTEAD OF INSERT ON message_in BEGIN
    INSERT INTO contents (header_len, message_id, structure, raw)
        VALUES (NEW.header_len, NEW.message_id, NEW.structure, NEW.raw);
    INSERT INTO messages (mailbox_id, uid, modseq, seen, deleted, size, internal_epoch,
                          internaldate, savedate, flags, content_id)
        VALUES (NEW.mailbox_id, NEW.uid, NEW.modseq, NEW.seen, NEW.deleted, NEW.size,
                NEW.internal_epoch, NEW.internaldate, NEW.savedate, NEW.flags,
                last_insert_rowid());
END;
