-- 0010: a message's octets stored as they are, in the contents row, when the row fits a
-- page (issue 18: FETCH BODY[] per CPU-second). By default PostgreSQL compresses (pglz)
-- any value that makes its row longer than ~2 kB and moves it out of line if it is still
-- too long: every APPEND of a typical 3-5 kB message paid pglz_compress, and every FETCH
-- of its body pglz_decompress plus a copy out of the TOAST chunks (a tenth of
-- PostgreSQL's CPU for FETCH BODY.PEEK[]). toast_tuple_target (PostgreSQL 11) raises the
-- row length from which it compresses to its maximum (8160 bytes with 8 kB pages): a
-- smaller message stays inline and uncompressed, as the SQLite store keeps it; a larger
-- one is compressed and moved out of line as before. Rows already stored keep their form.
ALTER TABLE contents SET (toast_tuple_target = 8160);
