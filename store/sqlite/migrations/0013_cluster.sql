-- Several server processes on one store (docs/workers.md, store/cluster.py).
--
-- cluster_instances: each serving process, with the time (Unix seconds) its heartbeat
-- expires; a process whose heartbeat expired is gone (kill -9), its sessions and leases
-- with it. cluster_sessions: the registry `imapd who` reads, kept by each process.
-- cluster_leases: a role (an event sink, the alarm timer, expiry) runs in the one process
-- holding its row until `expires`; an expired row is taken over. cluster_kicks: `imapd kick`
-- requests every process reads after its own cursor (rows older than a minute are removed).
CREATE TABLE cluster_instances (
    instance  TEXT PRIMARY KEY,
    pid       INTEGER NOT NULL,
    started   TEXT NOT NULL,
    expires   REAL NOT NULL
);

CREATE TABLE cluster_sessions (
    session   TEXT PRIMARY KEY,
    instance  TEXT NOT NULL,
    user      TEXT,
    peer      TEXT NOT NULL,
    service   TEXT NOT NULL,
    started   TEXT NOT NULL
);

CREATE INDEX cluster_sessions_instance ON cluster_sessions (instance);

CREATE TABLE cluster_leases (
    role      TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    expires   REAL NOT NULL
);

CREATE TABLE cluster_kicks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    session   TEXT,
    user      TEXT,
    requested REAL NOT NULL
);
