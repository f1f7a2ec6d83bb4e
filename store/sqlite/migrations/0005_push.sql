-- 0005: XAPPLEPUSHSERVICE registrations (Cyrus's ApplePushService event): which device wants
-- to hear about which of a user's mailboxes. A device re-registers whenever the client
-- starts, so (user, account, token, subtopic) is the key and the mailbox list is replaced.
CREATE TABLE aps_devices (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL,                -- aps-account-id
    device_token TEXT NOT NULL,                -- aps-device-token
    subtopic     TEXT NOT NULL,                -- aps-subtopic, e.g. com.apple.mobilemail
    aps_version  INTEGER NOT NULL,
    mailboxes    TEXT NOT NULL,                -- JSON array of mailbox names
    registered   TEXT NOT NULL,                -- ISO 8601 UTC of the last registration
    PRIMARY KEY (user_id, account_id, device_token, subtopic)
) WITHOUT ROWID;
