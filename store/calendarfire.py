"""One round of calendar alarm firing, computed the same way by every backend (pure but for
the log lines; the iCalendar work is store/calendar.py).

Owns: what a due calendar object yields when its row is read (`plan`, run in a worker
thread: the alarms in (fired_through, now] not older than the look-back, and the next one),
the log lines about skipped alarms and malformed objects (`log_firing`), and the
CalendarAlarmFired change of one alarm (`alarm_change`). Each backend reads the due rows,
calls `plan`, and applies the outcome in one short transaction that checks the object is
still as it read it (store/sqlite/calendar.py, store/postgres/calendar.py). Must not import
imapd or notify.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from store import calendar
from store.changes import CalendarAlarmFired, MailboxRef, Origin

log = logging.getLogger("store.calendar")

#: The origin of CalendarAlarmFired changes.
ORIGIN = Origin(service="calendar")


def epoch(when: dt.datetime) -> int:
    return int(when.timestamp())


def instant(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@dataclass(frozen=True, slots=True)
class Firing:
    mailbox_id: int
    uid: int
    fired_through: int  # as read: the transaction applies this only if still so
    next_was: int
    floor: int  # alarms at or before this were not fired (done, or older than look-back)
    alarms: list[calendar.Alarm]
    next_alarm: int | None
    skipped: bool  # some alarms in (fired_through, floor] were older than the look-back
    error: str | None


def plan(rows: Sequence[Sequence[Any]], now: int, lookback: int) -> list[Firing]:
    """(worker thread) For each due object, a row (mailbox_id, uid, fired_through,
    next_alarm, raw): its alarms in (fired_through, now] not older than the look-back
    (whether some were older), and its next alarm after ``now``. An object just indexed
    (``next_alarm`` = ``fired_through``) is planned that way too."""
    out = []
    for mailbox_id, uid, fired_through, next_was, raw in rows:
        floor = max(int(fired_through), now - lookback)
        alarms: list[calendar.Alarm] = []
        nxt: int | None = None
        skipped, error = False, None
        try:
            cals = calendar.parse(bytes(raw))
            if cals:
                if floor > int(fired_through):  # was anything older than the look-back?
                    first = calendar.next_alarm(cals, instant(int(fired_through)))
                    skipped = first is not None and first <= instant(floor)
                alarms = calendar.due(cals, instant(floor), instant(now))
                found = calendar.next_alarm(cals, instant(now))
                nxt = None if found is None else epoch(found)
        except Exception as exc:  # noqa: BLE001 - client iCalendar: logged, schedules nothing
            error = f"{type(exc).__name__}: {exc}"
        out.append(
            Firing(
                int(mailbox_id),
                int(uid),
                int(fired_through),
                int(next_was),
                floor,
                alarms,
                nxt,
                skipped,
                error,
            )
        )
    return out


def log_firing(f: Firing) -> None:
    """The log lines of an object being fired: alarms skipped, iCalendar unusable."""
    if f.skipped:
        log.warning(
            "calendar: mailbox id %d uid %d: alarms due before %s skipped"
            " (older than the look-back)",
            f.mailbox_id,
            f.uid,
            calendar.stamp(instant(f.floor)),
        )
    if f.error is not None:
        log.warning(
            "calendar: mailbox id %d uid %d: malformed iCalendar, stored as mail, no alarms: %s",
            f.mailbox_id,
            f.uid,
            f.error,
        )


def alarm_change(
    at: dt.datetime, mailbox: MailboxRef, uid: int, a: calendar.Alarm
) -> CalendarAlarmFired:
    """The CalendarAlarmFired change of alarm ``a`` of message ``uid`` in ``mailbox``."""
    return CalendarAlarmFired(
        0,
        at,
        ORIGIN,
        mailbox.owner,
        mailbox,
        uid,
        calendar.stamp(a.when),
        a.recipients,
        a.uid,
        a.action,
        a.summary,
        a.description,
        a.location,
        a.timezone,
        a.start,
        a.end,
        a.all_day,
        a.attendee_names,
        a.attendee_emails,
        a.attendee_status,
        a.organizer,
    )
