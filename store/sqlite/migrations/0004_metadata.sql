-- 0004: METADATA annotations (RFC 5464), server and mailbox entries, /shared and /private.
--
-- mailbox_id 0 holds server entries; user_id 0 holds /shared entries, any other user_id
-- that user's /private ones (§3.3). Entry names are stored lower-cased (§3.2: they are
-- case-insensitive), values as the octets the client sent. Ids start at 1 (AUTOINCREMENT),
-- so 0 never names a real mailbox or user; hence triggers instead of REFERENCES.
CREATE TABLE metadata (
    mailbox_id INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    entry      TEXT NOT NULL,
    value      BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, user_id, entry)
) WITHOUT ROWID;

CREATE INDEX metadata_private ON metadata (user_id) WHERE user_id != 0;

-- RFC 5464 §4.1: annotations go with their mailbox, so a new mailbox of the same name does
-- not inherit them. A RENAME keeps the mailbox id, so they follow it (INBOX: store code copies).
CREATE TRIGGER metadata_mailbox_gone AFTER DELETE ON mailboxes BEGIN
    DELETE FROM metadata WHERE mailbox_id = OLD.id;
END;

-- DELETE of a mailbox with children leaves a \Noselect placeholder: still a deletion.
CREATE TRIGGER metadata_mailbox_noselect AFTER UPDATE OF selectable ON mailboxes
WHEN OLD.selectable = 1 AND NEW.selectable = 0 BEGIN
    DELETE FROM metadata WHERE mailbox_id = OLD.id;
END;

-- A deleted user's /private entries, server and mailbox alike, go with them.
CREATE TRIGGER metadata_user_gone AFTER DELETE ON users BEGIN
    DELETE FROM metadata WHERE user_id = OLD.id;
END;
