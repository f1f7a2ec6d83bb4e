-- 0003: pre-rendered FETCH answers (issue 17), as SQLite's 0010: per contents row, the
-- opaque bytes the server's renderer (imapd/fetch_wire.py, handed to the store when it is
-- opened) made at APPEND: ENVELOPE, BODY and BODYSTRUCTURE as they go on the wire, spliced by
-- FETCH instead of decoding contents.structure. A side table, so that reading it never
-- touches contents.raw; a contents row without one (stored by a store opened without a
-- renderer) is rendered at FETCH from contents.structure: the same bytes, slower.
CREATE TABLE content_wire (
    id   bigint PRIMARY KEY REFERENCES contents (id) ON DELETE CASCADE,
    wire bytea NOT NULL
);
