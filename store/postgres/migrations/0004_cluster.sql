-- Several server processes on one store (docs/workers.md, store/cluster.py): the same
-- tables as SQLite's cluster migration. Times are Unix seconds from the database's clock
-- (one clock for every instance, whatever machine it runs on).
CREATE TABLE cluster_instances (
    instance  text PRIMARY KEY,
    pid       integer NOT NULL,
    started   text NOT NULL,
    expires   double precision NOT NULL
);

CREATE TABLE cluster_sessions (
    session   text PRIMARY KEY,
    instance  text NOT NULL,
    "user"    text,
    peer      text NOT NULL,
    service   text NOT NULL,
    started   text NOT NULL
);

CREATE INDEX cluster_sessions_instance ON cluster_sessions (instance);

CREATE TABLE cluster_leases (
    role      text PRIMARY KEY,
    holder    text NOT NULL,
    expires   double precision NOT NULL
);

CREATE TABLE cluster_kicks (
    id        bigserial PRIMARY KEY,
    session   text,
    "user"    text,
    requested double precision NOT NULL
);
