-- 0008: quotas (RFC 9208; store/quota.py). Usage is not stored: it is the SUM of the
-- per-mailbox counters (messages, size) over a root's mailboxes, read in the transaction.
--
-- A user's root is the row with their user_id (named by the user's name; no row: no
-- limits). A row with user_id NULL and a name is a root of its own that mailboxes can be
-- attached to (mailboxes.quota_root_id), e.g. for shared mailboxes; NULL there means the
-- mailbox counts towards its owner's root. Limits NULL = unlimited.
CREATE TABLE quota_roots (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id  INTEGER UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    name     TEXT UNIQUE,                       -- roots without a user only
    storage  INTEGER,                           -- STORAGE limit in KiB
    messages INTEGER,                           -- MESSAGE limit
    CHECK ((user_id IS NULL) != (name IS NULL))
);

ALTER TABLE mailboxes ADD COLUMN quota_root_id INTEGER REFERENCES quota_roots (id);

CREATE INDEX mailboxes_quota_root ON mailboxes (quota_root_id) WHERE quota_root_id IS NOT NULL;
