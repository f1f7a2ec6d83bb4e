-- `imapd who` shows each session's client as it named itself (RFC 2971 ID: name and
-- version), for the other workers' sessions too: a column of the session registry.
ALTER TABLE cluster_sessions ADD COLUMN client TEXT;
