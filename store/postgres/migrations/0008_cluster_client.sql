-- `imapd who` shows each session's client as it named itself (RFC 2971 ID: name and
-- version), for the other instances' sessions too: a column of the session registry.
ALTER TABLE cluster_sessions ADD COLUMN client text;
