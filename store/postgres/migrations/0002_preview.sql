-- 0002: RFC 8970 PREVIEW text, per contents row (issue 16); the twin of SQLite's 0011.
--
-- Computed once when a message is stored (store/mime/preview.py via store/newmessage.py),
-- shared by every copy of it as the contents are, and deleted with them. A contents row
-- without a preview (stored before this migration) gets one at the first FETCH PREVIEW
-- without LAZY (store/postgres/preview.py); FETCH PREVIEW (LAZY) answers NIL until then.
CREATE TABLE content_preview (
    id      bigint PRIMARY KEY REFERENCES contents (id) ON DELETE CASCADE,
    preview text NOT NULL
);
