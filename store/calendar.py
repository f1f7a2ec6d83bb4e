"""Calendar objects and their alarm times (RFC 5545 VALARM, RFC 9074 ACKNOWLEDGED): pure.

Owns: what makes a mailbox a calendar (the Kolab ``folder-type`` annotation), how the
iCalendar text is found in a message (the body or any MIME part of type ``text/calendar``),
the bounds on that client input, and the alarm arithmetic: TRIGGER relative to DTSTART or
DTEND (``RELATED=END``), absolute ``VALUE=DATE-TIME``, REPEAT/DURATION, recurrence (RRULE,
RDATE, EXDATE, RECURRENCE-ID overrides: expanded by ``recurring-ical-events``, never by hand),
all-day dates, floating times, TZID (VTIMEZONE or zoneinfo), ACKNOWLEDGED.

The iCalendar libraries are the optional extra ``imapd[calendar]``, imported lazily here and
only here (`available`): without them calendar mailboxes are plain mailboxes. Every function
here is synchronous and CPU-bound; store/sqlite/calendar.py runs them in a worker thread.
Must not import imapd or notify.

Time rules (docs/calendar.md): floating times and all-day dates are taken as UTC (Cyrus's
calalarmd without a calendar time zone does the same); every instant handed out is aware UTC.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Annotation entries that make a mailbox a calendar (Kolab's convention), and the values.
FOLDER_TYPE_ENTRIES = ("/shared/vendor/kolab/folder-type", "/private/vendor/kolab/folder-type")
CALENDAR_TYPES = ("event", "event.default")

#: Octets of iCalendar text read from one message; past it the object schedules nothing
#: (a calendar object is a few KiB; Cyrus's default maxmessagesize for DAV is 10 MB, but
#: it parses once at PUT, not at each alarm).
MAX_ICAL_OCTETS = 512 * 1024
#: Occurrences looked at per computation (one next-alarm search or one firing): a
#: FREQ=SECONDLY rule without alarms must not spin. Past it the search stops and the object
#: is looked at again from where it stopped.
MAX_OCCURRENCES = 2000
#: How far ahead one search looks for the next alarm; an object with none in that span is
#: looked at again at its end (a rule every 4 years still fires).
HORIZON = dt.timedelta(days=5 * 366)
#: REPEAT larger than this is cut (RFC 5545 gives no bound; each repetition is an event).
MAX_REPEAT = 100
#: Alarms handed out by one firing of one object (the rest fire at the next round).
MAX_DUE = 500


def available() -> bool:
    """Whether the ``[calendar]`` extra is installed (icalendar, recurring-ical-events)."""
    try:
        return all(
            importlib.util.find_spec(m) is not None for m in ("icalendar", "recurring_ical_events")
        )
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules (None)
        return False


def is_calendar_type(value: bytes) -> bool:
    return value.strip().lower().decode("ascii", "replace") in CALENDAR_TYPES


class MalformedCalendar(ValueError):
    """The message's iCalendar text cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm instance with the values of its CalendarAlarm event (Cyrus's keys)."""

    when: dt.datetime  # aware UTC
    action: str
    recipients: tuple[str, ...]
    uid: str
    summary: str
    description: str
    location: str
    timezone: str
    start: str
    end: str
    all_day: bool
    attendee_names: tuple[str, ...]
    attendee_emails: tuple[str, ...]
    attendee_status: tuple[str, ...]
    organizer: str


def ical_parts(raw: bytes) -> list[bytes]:
    """The ``text/calendar`` bodies of a message (its body or MIME parts), decoded from
    their transfer encoding. Raises MalformedCalendar past `MAX_ICAL_OCTETS`."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    out: list[bytes] = []
    total = 0
    for part in msg.walk():
        if part.get_content_type() != "text/calendar":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        total += len(payload)
        if total > MAX_ICAL_OCTETS:
            raise MalformedCalendar(f"iCalendar text over {MAX_ICAL_OCTETS} octets")
        out.append(payload)
    return out


def parse(raw: bytes) -> list[Any]:
    """The VCALENDARs of a message (empty: not a calendar object). Raises
    MalformedCalendar when a text/calendar part does not parse or holds no VEVENT."""
    import icalendar

    cals = []
    for text in ical_parts(raw):
        try:
            cal = icalendar.Calendar.from_ical(text)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise MalformedCalendar(f"iCalendar does not parse: {exc}") from exc
        if not any(c.name == "VEVENT" for c in cal.walk("VEVENT")):
            raise MalformedCalendar("no VEVENT in the text/calendar part")
        cals.append(cal)
    return cals


def utc(value: dt.date | dt.datetime) -> dt.datetime:
    """A DATE or DATE-TIME as aware UTC: dates at 00:00, floating times as UTC."""
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def stamp(value: dt.datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` (the example's alarmTime, start, end)."""
    return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True, slots=True)
class _Rule:
    """One VALARM's trigger, read once."""

    index: int
    component: Any
    offset: dt.timedelta | None  # relative trigger
    absolute: dt.datetime | None
    related_end: bool
    repeat: int
    every: dt.timedelta
    acknowledged: dt.datetime | None


def _rules(event: Any) -> list[_Rule]:
    out = []
    for i, alarm in enumerate(c for c in event.subcomponents if c.name == "VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is None:
            continue  # RFC 5545 §3.6.6: TRIGGER is required; an alarm without one never fires
        value = trigger.dt
        repeat, every = 0, dt.timedelta(0)
        duration = alarm.get("DURATION")
        if alarm.get("REPEAT") is not None and duration is not None:
            # RFC 5545 §3.6.6: DURATION and REPEAT must both occur or neither.
            repeat = max(0, min(int(alarm.get("REPEAT")), MAX_REPEAT))
            every = duration.dt if isinstance(duration.dt, dt.timedelta) else dt.timedelta(0)
            if every <= dt.timedelta(0):
                repeat = 0
        ack = alarm.get("ACKNOWLEDGED")  # RFC 9074 §6: UTC date-time
        acknowledged = utc(ack.dt) if ack is not None else None
        related_end = str(trigger.params.get("RELATED", "START")).upper() == "END"
        if isinstance(value, dt.timedelta):
            out.append(_Rule(i, alarm, value, None, related_end, repeat, every, acknowledged))
        else:
            out.append(_Rule(i, alarm, None, utc(value), False, repeat, every, acknowledged))
    return out


def _times(rule: _Rule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    if rule.absolute is not None:
        first = rule.absolute
    else:
        assert rule.offset is not None
        first = (end if rule.related_end else start) + rule.offset
    times = [first + k * rule.every for k in range(rule.repeat + 1)]
    # RFC 9074 §6: an alarm instance at or before ACKNOWLEDGED has been dealt with.
    return [t for t in times if rule.acknowledged is None or t > rule.acknowledged]


def _text(component: Any, name: str) -> str:
    value = component.get(name)
    return "" if value is None else str(value)


def _address(value: Any) -> str:
    text = str(value)
    return text[7:] if text.lower().startswith("mailto:") else text


def _facts(event: Any, rule: _Rule, when: dt.datetime, start_v: Any, end_v: Any) -> Alarm:
    all_day = not isinstance(start_v, dt.datetime)
    if all_day:
        zone = ""
    elif start_v.tzinfo is None:
        zone = ""  # floating
    else:
        tzid = event["DTSTART"].params.get("TZID")
        zone = str(tzid) if tzid else "UTC"

    def shown(v: Any) -> str:
        return v.strftime("%Y%m%d") if not isinstance(v, dt.datetime) else stamp(utc(v))

    attendees = event.get("ATTENDEE") or []
    if not isinstance(attendees, list):
        attendees = [attendees]
    recipients = rule.component.get("ATTENDEE") or []
    if not isinstance(recipients, list):
        recipients = [recipients]
    organizer = event.get("ORGANIZER")
    return Alarm(
        when=when,
        action=_text(rule.component, "ACTION").lower(),
        recipients=tuple("mailto:" + _address(r) for r in recipients),
        uid=_text(event, "UID"),
        summary=_text(event, "SUMMARY"),
        description=_text(event, "DESCRIPTION"),
        location=_text(event, "LOCATION"),
        timezone=zone,
        start=shown(start_v),
        end=shown(end_v),
        all_day=all_day,
        attendee_names=tuple(str(a.params.get("CN", "")) for a in attendees),
        attendee_emails=tuple(_address(a) for a in attendees),
        attendee_status=tuple(str(a.params.get("PARTSTAT", "NEEDS-ACTION")) for a in attendees),
        organizer="" if organizer is None else _address(organizer),
    )


def _bounds(event: Any) -> tuple[Any, Any]:
    start_v = event["DTSTART"].dt
    end_prop = event.get("DTEND")
    if end_prop is not None:
        return start_v, end_prop.dt
    duration = event.get("DURATION")
    if duration is not None:
        return start_v, start_v + duration.dt
    # RFC 5545 §3.6.1: without DTEND/DURATION a date lasts one day, a date-time no time.
    return start_v, start_v + (
        dt.timedelta(0) if isinstance(start_v, dt.datetime) else dt.timedelta(days=1)
    )


def _lead_and_floor(cals: list[Any]) -> tuple[dt.timedelta, dt.timedelta] | None:
    """(how long after its start or end an occurrence may still have an alarm, the
    earliest a relative alarm comes before its start); None: no relative alarm at all."""
    offsets = []
    for cal in cals:
        for event in cal.walk("VEVENT"):
            for rule in _rules(event):
                if rule.offset is not None:
                    offsets.append((rule.offset, rule.offset + rule.repeat * rule.every))
    if not offsets:
        return None
    lead = max(dt.timedelta(0), max(last for _, last in offsets))
    return min(lead, HORIZON), min(first for first, _ in offsets)


class _Search:
    """One search's bounds: ``limit`` (shrinks to the best alarm found when looking for the
    next one) and where a count-limited expansion stopped."""

    def __init__(self, limit: dt.datetime, shrink: bool) -> None:
        self.limit = limit
        self.shrink = shrink
        self.stopped: dt.datetime | None = None

    def take(self, t: dt.datetime) -> None:
        if self.shrink and t < self.limit:
            self.limit = t


def _alarms(cals: list[Any], after: dt.datetime, search: _Search) -> Iterator[Alarm]:
    """Alarm instances later than ``after`` and not later than ``search.limit``: absolute
    triggers once, relative ones per occurrence, each instance once."""

    seen: set[tuple[str, int, dt.datetime]] = set()
    for cal in cals:  # absolute triggers: once, from the series' master (or its override)
        for event in cal.walk("VEVENT"):
            for rule in _rules(event):
                if rule.absolute is None:
                    continue
                start_v, end_v = _bounds(event)
                for t in _times(rule, utc(start_v), utc(end_v)):
                    key = (_text(event, "UID"), rule.index, t)
                    if after < t <= search.limit and key not in seen:
                        seen.add(key)
                        search.take(t)
                        yield _facts(event, rule, t, start_v, end_v)
    shape = _lead_and_floor(cals)
    if shape is None:
        return
    lead, floor = shape
    for cal in cals:
        for occurrence in _occurrences(cal, after - lead, floor, search):
            start_v, end_v = _bounds(occurrence)
            start, end = utc(start_v), utc(end_v)
            for rule in _rules(occurrence):
                if rule.offset is None:
                    continue
                for t in _times(rule, start, end):
                    key = (_text(occurrence, "UID") + "/" + stamp(start), rule.index, t)
                    if after < t <= search.limit and key not in seen:
                        seen.add(key)
                        search.take(t)
                        yield _facts(occurrence, rule, t, start_v, end_v)


#: The first expansion window; each next one is twice as long. Small enough that a dense
#: rule (FREQ=SECONDLY) costs little before `MAX_OCCURRENCES` stops it (recurring-ical-
#: events' own ``after`` grows its windows past 100,000 occurrences for such a rule).
FIRST_WINDOW = dt.timedelta(minutes=5)
#: A window with fewer occurrences than this makes the next one twice as long.
_SPARSE = 64


def _earliest(cal: Any) -> dt.datetime | None:
    """The earliest start any occurrence can have: the DTSTARTs and RDATEs of the object
    (overrides included). Expansion begins there at the soonest, so that a dense rule is
    not expanded in windows grown large over the empty time before it."""
    starts = []
    for event in cal.walk("VEVENT"):
        if event.get("DTSTART") is not None:
            starts.append(utc(event["DTSTART"].dt))
        rdates = event.get("RDATE") or []
        for rdate in rdates if isinstance(rdates, list) else [rdates]:
            for value in getattr(rdate, "dts", []):
                when = value.dt[0] if isinstance(value.dt, tuple) else value.dt
                if isinstance(when, dt.date):
                    starts.append(utc(when))
    return min(starts) if starts else None


def _occurrences(
    cal: Any, begin: dt.datetime, floor: dt.timedelta, search: _Search
) -> Iterator[Any]:
    """Occurrences overlapping [begin, ...) in start order, window by window, until one
    starts too late to hold an alarm within ``search.limit`` or `MAX_OCCURRENCES` were
    expanded (``search.stopped`` then says where)."""
    import recurring_ical_events

    query = recurring_ical_events.of(cal)
    earliest = _earliest(cal)
    if earliest is not None:
        begin = max(begin, earliest - dt.timedelta(seconds=1))
    low, width, count = begin, FIRST_WINDOW, 0
    while low + floor <= search.limit:
        high = low + width
        batch = sorted(query.between(low, high), key=lambda o: utc(_bounds(o)[0]))
        count += len(batch)
        for occurrence in batch:
            if utc(_bounds(occurrence)[0]) + floor > search.limit:
                return
            yield occurrence
        if count > MAX_OCCURRENCES:
            if search.stopped is None or high < search.stopped:
                search.stopped = high
            return
        if len(batch) < _SPARSE:
            width = min(width * 2, HORIZON)
        low = high


def next_alarm(cals: list[Any], after: dt.datetime) -> dt.datetime | None:
    """The first alarm instant later than ``after``; or, when the search stopped at a
    bound (`MAX_OCCURRENCES`, `HORIZON`), where it stopped: the object is looked at again
    there and nothing fires then. None when the object has no alarm left at all."""
    import recurring_ical_events

    search = _Search(after + HORIZON, shrink=True)
    best: dt.datetime | None = None
    for alarm in _alarms(cals, after, search):
        if best is None or alarm.when < best:
            best = alarm.when
    if search.stopped is not None:
        recheck = max(search.stopped, after + dt.timedelta(seconds=1))
        return recheck if best is None else min(best, recheck)
    if best is not None:
        return best
    if _lead_and_floor(cals) is None:
        return None
    for cal in cals:  # nothing within the span: is there an occurrence after it?
        for _ in recurring_ical_events.of(cal).after(after + HORIZON):
            return after + HORIZON
    return None


def due(cals: list[Any], after: dt.datetime, until: dt.datetime) -> list[Alarm]:
    """The alarm instances in (``after``, ``until``], in time order (at most `MAX_DUE`)."""
    out = sorted(_alarms(cals, after, _Search(until, shrink=False)), key=lambda a: a.when)
    return out[:MAX_DUE]
