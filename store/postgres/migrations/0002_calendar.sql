-- 0002: the calendar index (docs/calendar.md; store/postgres/calendar.py keeps it), as
-- SQLite's 0009. calendar_mailboxes: mailboxes that are calendars (Kolab folder-type
-- annotation "event" or "event.default"), as the index last saw them. calendar_objects: one
-- row per message of such a mailbox holding a usable VEVENT; fired_through (Unix time) is
-- the instant up to which its alarms have been dealt with, next_alarm the first alarm after
-- it (NULL: none left). Both change in the transaction that changes the message or mailbox;
-- a firing advances them in the transaction that logs its CalendarAlarm changes, so an alarm
-- is neither lost nor repeated, nor fired twice by two instances on one database.
CREATE TABLE calendar_mailboxes (
    mailbox_id bigint PRIMARY KEY REFERENCES mailboxes (id) ON DELETE CASCADE
);

-- EXPUNGE, MOVE out, expiry, DELETE: the object goes with its message (the foreign key's
-- cascade), in that transaction.
CREATE TABLE calendar_objects (
    mailbox_id    bigint NOT NULL,
    uid           bigint NOT NULL,
    fired_through bigint NOT NULL,
    next_alarm    bigint,
    PRIMARY KEY (mailbox_id, uid),
    FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
);

CREATE INDEX calendar_objects_next ON calendar_objects (next_alarm)
    WHERE next_alarm IS NOT NULL;

-- A mailbox made \Noselect (DELETE of a mailbox with children) is no calendar any more.
CREATE FUNCTION calendar_mailbox_noselect() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM calendar_objects WHERE mailbox_id = OLD.id;
    DELETE FROM calendar_mailboxes WHERE mailbox_id = OLD.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER calendar_mailbox_noselect AFTER UPDATE OF selectable ON mailboxes
    FOR EACH ROW WHEN (OLD.selectable AND NOT NEW.selectable)
    EXECUTE FUNCTION calendar_mailbox_noselect();
