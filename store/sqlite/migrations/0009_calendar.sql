-- 0009: the calendar index (docs/calendar.md; store/sqlite/calendar.py keeps it).
--
-- calendar_mailboxes: mailboxes that are calendars (Kolab folder-type annotation "event" or
-- "event.default"), as the index last saw them. calendar_objects: one row per message of
-- such a mailbox holding a usable VEVENT; ``fired_through`` (Unix time) is the instant up to
-- which its alarms have been dealt with, ``next_alarm`` the first alarm after it (NULL: none
-- left). Both change in the transaction that changes the message or mailbox, and a firing
-- advances them in the transaction that logs its CalendarAlarm changes: an alarm is
-- neither lost nor repeated across restarts, nor fired twice by two servers on one store.
CREATE TABLE calendar_mailboxes (
    mailbox_id INTEGER PRIMARY KEY
);

CREATE TABLE calendar_objects (
    mailbox_id    INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    fired_through INTEGER NOT NULL,
    next_alarm    INTEGER,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

CREATE INDEX calendar_objects_next ON calendar_objects (next_alarm)
    WHERE next_alarm IS NOT NULL;

-- EXPUNGE, MOVE out, expiry, DELETE: the object goes with its message, in that transaction.
CREATE TRIGGER calendar_message_gone AFTER DELETE ON messages BEGIN
    DELETE FROM calendar_objects WHERE mailbox_id = OLD.mailbox_id AND uid = OLD.uid;
END;

CREATE TRIGGER calendar_mailbox_gone AFTER DELETE ON mailboxes BEGIN
    DELETE FROM calendar_objects WHERE mailbox_id = OLD.id;
    DELETE FROM calendar_mailboxes WHERE mailbox_id = OLD.id;
END;

CREATE TRIGGER calendar_mailbox_noselect AFTER UPDATE OF selectable ON mailboxes
WHEN OLD.selectable = 1 AND NEW.selectable = 0 BEGIN
    DELETE FROM calendar_objects WHERE mailbox_id = OLD.id;
    DELETE FROM calendar_mailboxes WHERE mailbox_id = OLD.id;
END;
