-- URLAUTH (RFC 4467 §2.2): each user's table of mailbox access keys, one per mailbox the
-- user generated a URLAUTH-authorized URL for. Two users of one shared mailbox have two keys.
-- A key is 32 random octets (store/urlauth.py); RESETKEY replaces or removes them. The key
-- goes with its mailbox (ids are never reused: AUTOINCREMENT) and its user.
CREATE TABLE urlauth_keys (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    key        BLOB NOT NULL,
    PRIMARY KEY (user_id, mailbox_id)
) WITHOUT ROWID;
CREATE INDEX urlauth_keys_mailbox ON urlauth_keys (mailbox_id);
