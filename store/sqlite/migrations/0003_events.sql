-- 0003: durable consumers of the change_log outbox (notify/sink.py): each keeps the last
-- change_log.seq it has fully delivered, so a restart resumes exactly there.
CREATE TABLE event_cursors (
    name TEXT PRIMARY KEY,                    -- the consumer, e.g. 'notifysocket'
    seq  INTEGER NOT NULL                     -- last change_log.seq delivered
) WITHOUT ROWID;
