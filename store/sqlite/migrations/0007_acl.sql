-- 0007: access control lists (RFC 4314) and the owner of the shared namespace (RFC 2342).
--
-- One row per (mailbox, identifier): a user name, "anyone", or either with a leading "-"
-- for negative rights. `rights` holds canonical letters (store/acl.py). The owner's rights
-- are implicit (never stored). ON DELETE CASCADE: a deleted mailbox takes its ACL along
-- (RFC 4314 §4: DELETE MUST delete the ACL).
CREATE TABLE acl (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    rights     TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, identifier)
) WITHOUT ROWID;

-- "Which mailboxes may bob see": LIST of other users' and shared mailboxes.
CREATE INDEX acl_identifier ON acl (identifier, mailbox_id);

-- DELETE of a mailbox with inferiors leaves a \Noselect placeholder: the ACL goes too.
CREATE TRIGGER mailboxes_noselect_acl AFTER UPDATE OF selectable ON mailboxes
WHEN NEW.selectable = 0 BEGIN
    DELETE FROM acl WHERE mailbox_id = NEW.id;
END;

-- A deleted user's entries go with the user (a later user of that name inherits nothing).
CREATE TRIGGER users_acl AFTER DELETE ON users BEGIN
    DELETE FROM acl WHERE identifier IN (OLD.name, '-' || OLD.name);
END;

-- The owner of shared mailboxes ("Shared/..."): a pseudo-user with the empty name, which
-- no LOGIN can name usefully ('!' is no password hash, so it never verifies) and which
-- `imapd user` never lists. Every mailbox keeps a real owner row.
INSERT INTO users (name, password, is_admin, created)
VALUES ('', '!', 0, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'))
ON CONFLICT (name) DO NOTHING;
