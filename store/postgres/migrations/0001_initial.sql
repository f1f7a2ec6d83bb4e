-- 0001: the PostgreSQL schema of the store, the same tables as store/sqlite/migrations
-- 0001..0008 folded into one (store/postgres/migrate.py applies it in one transaction).
-- Differences from SQLite: identity columns instead of AUTOINCREMENT (never reused either),
-- booleans, bytea; the change_log seq is assigned by the store under an advisory lock taken
-- right before COMMIT (store/postgres/store.py), not by a sequence, so seqs are gap-free and
-- in commit order.

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE users (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name     text COLLATE "C" NOT NULL UNIQUE,
    password text NOT NULL,
    is_admin boolean NOT NULL DEFAULT false,
    created  text NOT NULL
);

CREATE TABLE quota_roots (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id  bigint UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    name     text UNIQUE,
    storage  bigint,
    messages bigint,
    CHECK ((user_id IS NULL) != (name IS NULL))
);

CREATE TABLE mailboxes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id       bigint NOT NULL REFERENCES users (id),
    name           text COLLATE "C" NOT NULL,
    uidvalidity    bigint NOT NULL UNIQUE,
    uidnext        bigint NOT NULL DEFAULT 1,
    highestmodseq  bigint NOT NULL DEFAULT 1,
    recent_uid     bigint NOT NULL DEFAULT 1,
    messages       bigint NOT NULL DEFAULT 0,
    unseen         bigint NOT NULL DEFAULT 0,
    size           bigint NOT NULL DEFAULT 0,
    deleted        bigint NOT NULL DEFAULT 0,
    special_use    text NOT NULL DEFAULT '',
    selectable     boolean NOT NULL DEFAULT true,
    retention_days integer,
    created        text NOT NULL,
    quota_root_id  bigint REFERENCES quota_roots (id),
    UNIQUE (owner_id, name)
);

CREATE TABLE subscriptions (
    user_id bigint NOT NULL REFERENCES users (id),
    name    text COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, name)
);

CREATE TABLE contents (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    header_len integer NOT NULL,
    message_id text,
    structure  text NOT NULL,
    raw        bytea NOT NULL
);

-- No refs counter: a contents row is deleted by the store when its last message goes
-- (the messages_content index makes "any other message?" one seek).
CREATE TABLE messages (
    mailbox_id     bigint NOT NULL REFERENCES mailboxes (id),
    uid            bigint NOT NULL,
    modseq         bigint NOT NULL,
    seen           boolean NOT NULL,
    deleted        boolean NOT NULL,
    size           bigint NOT NULL,
    internal_epoch bigint NOT NULL,
    internaldate   text NOT NULL,
    savedate       text NOT NULL,
    flags          text NOT NULL,
    content_id     bigint NOT NULL REFERENCES contents (id),
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX messages_content ON messages (content_id);
CREATE INDEX messages_deleted ON messages (mailbox_id) WHERE deleted;

CREATE TABLE expunged (
    mailbox_id bigint NOT NULL REFERENCES mailboxes (id),
    uid        bigint NOT NULL,
    modseq     bigint NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);

CREATE TABLE change_log (
    seq     bigint PRIMARY KEY,
    kind    text NOT NULL,
    "user"  text,
    payload text NOT NULL,
    created text NOT NULL
);

CREATE TABLE event_cursors (
    name text PRIMARY KEY,
    seq  bigint NOT NULL
);

CREATE TABLE metadata (
    mailbox_id bigint NOT NULL,
    user_id    bigint NOT NULL,
    entry      text COLLATE "C" NOT NULL,
    value      bytea NOT NULL,
    PRIMARY KEY (mailbox_id, user_id, entry)
);

CREATE TABLE aps_devices (
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id   text NOT NULL,
    device_token text NOT NULL,
    subtopic     text NOT NULL,
    aps_version  integer NOT NULL,
    mailboxes    text NOT NULL,
    registered   text NOT NULL,
    PRIMARY KEY (user_id, account_id, device_token, subtopic)
);

CREATE TABLE acl (
    mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    identifier text COLLATE "C" NOT NULL,
    rights     text NOT NULL,
    PRIMARY KEY (mailbox_id, identifier)
);
CREATE INDEX acl_identifier ON acl (identifier, mailbox_id);

-- The owner of shared mailboxes ("Shared/..."), as in SQLite's 0007.
INSERT INTO users (name, password, is_admin, created)
VALUES ('', '!', false, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'));
