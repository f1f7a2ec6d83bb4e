-- 0011: RFC 8970 PREVIEW text, per contents row (issue 16).
--
-- Computed once when a message is stored (store/mime/preview.py via store/newmessage.py) and
-- shared by every copy of it, as the contents are. A side table, as content_wire (0010): a
-- column behind contents.raw is read by walking the blob's overflow chain. A contents row
-- without a content_preview row (stored before this migration) gets one at the first FETCH
-- PREVIEW without LAZY (store/sqlite/preview.py); FETCH PREVIEW (LAZY) answers NIL until then.
CREATE TABLE content_preview (
    id      INTEGER PRIMARY KEY,               -- contents.id
    preview TEXT NOT NULL
);

CREATE TRIGGER content_preview_gone AFTER DELETE ON contents BEGIN
    DELETE FROM content_preview WHERE id = OLD.id;
END;
