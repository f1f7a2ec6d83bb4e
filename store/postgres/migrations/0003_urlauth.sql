-- URLAUTH (RFC 4467 §2.2): each user's table of mailbox access keys, one per mailbox the
-- user generated a URLAUTH-authorized URL for (store/urlauth.py makes the 32-octet keys);
-- RESETKEY replaces or removes them. The SQLite backend's migration of the same name matches.
CREATE TABLE urlauth_keys (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    key        bytea NOT NULL,
    PRIMARY KEY (user_id, mailbox_id)
);
CREATE INDEX urlauth_keys_mailbox ON urlauth_keys (mailbox_id);
