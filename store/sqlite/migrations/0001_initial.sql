-- 0001: the initial schema. Applied once, in one transaction, by store/migrate.py.
--
-- Large values come last in their rows (contents.raw): SQLite reads a row's columns in
-- order, so the small ones stay on the first page and a FETCH FLAGS never touches overflow.

-- Small store-wide values; 'uidvalidity' is the last UIDVALIDITY handed out. `value` has
-- no declared type so integers stay integers.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;

-- AUTOINCREMENT: an id is never reused, so a session holding a deleted user's or
-- mailbox's id can never reach a newer one.
CREATE TABLE users (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL UNIQUE,            -- exact match, case-sensitive
    password TEXT NOT NULL,                   -- store/passwords.py format
    is_admin INTEGER NOT NULL DEFAULT 0,
    created  TEXT NOT NULL
);

CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id       INTEGER NOT NULL REFERENCES users (id),
    name           TEXT NOT NULL,             -- "/" delimited, "INBOX" for the inbox
    uidvalidity    INTEGER NOT NULL,
    uidnext        INTEGER NOT NULL DEFAULT 1,   -- only grows
    highestmodseq  INTEGER NOT NULL DEFAULT 1,
    recent_uid     INTEGER NOT NULL DEFAULT 1,   -- first UID not yet claimed as \Recent
    messages       INTEGER NOT NULL DEFAULT 0,   -- the counters below are kept in the
    unseen         INTEGER NOT NULL DEFAULT 0,   -- transaction that changes them, so
    size           INTEGER NOT NULL DEFAULT 0,   -- STATUS and Counts never scan
    deleted        INTEGER NOT NULL DEFAULT 0,
    special_use    TEXT NOT NULL DEFAULT '',     -- space-separated RFC 6154 attributes
    selectable     INTEGER NOT NULL DEFAULT 1,   -- 0: \Noselect placeholder
    retention_days INTEGER,
    created        TEXT NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE TABLE subscriptions (
    user_id INTEGER NOT NULL REFERENCES users (id),
    name    TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;

-- A message's bytes, shared by all its copies; `refs` is kept by the triggers below and
-- the row goes with its last message. AUTOINCREMENT: ids are never reused, so a parsed
-- structure may be cached by id.
CREATE TABLE contents (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    refs       INTEGER NOT NULL DEFAULT 0,
    header_len INTEGER NOT NULL,
    message_id TEXT,
    structure  TEXT NOT NULL,                 -- store.mime.structure_to_json
    raw        BLOB NOT NULL
);

-- No REFERENCES on content_id: deleting a contents row would then scan messages for
-- children (there is deliberately no index on content_id).
CREATE TABLE messages (
    mailbox_id     INTEGER NOT NULL REFERENCES mailboxes (id),
    uid            INTEGER NOT NULL,
    modseq         INTEGER NOT NULL,
    seen           INTEGER NOT NULL,          -- flags has \Seen
    deleted        INTEGER NOT NULL,          -- flags has \Deleted
    size           INTEGER NOT NULL,
    internal_epoch INTEGER NOT NULL,          -- INTERNALDATE as Unix time, for OLDER/YOUNGER
    internaldate   TEXT NOT NULL,             -- ISO 8601 with its own offset
    savedate       TEXT NOT NULL,             -- ISO 8601, UTC (RFC 8514)
    flags          TEXT NOT NULL,             -- space-separated, canonical system flags
    content_id     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

CREATE TRIGGER messages_ref AFTER INSERT ON messages BEGIN
    UPDATE contents SET refs = refs + 1 WHERE id = NEW.content_id;
END;

CREATE TRIGGER messages_unref AFTER DELETE ON messages BEGIN
    DELETE FROM contents WHERE id = OLD.content_id AND refs <= 1;
    UPDATE contents SET refs = refs - 1 WHERE id = OLD.content_id;
END;

-- QRESYNC (RFC 7162 §3.2.10): UIDs removed from a mailbox, with the modseq of the removal.
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id),
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

-- The outbox: one row per published Change, in commit order (store/changes.py).
CREATE TABLE change_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,                    -- the Change class name
    user    TEXT,                             -- the mailbox owner's name
    payload TEXT NOT NULL,                    -- changes.to_json
    created TEXT NOT NULL
);
