"""CalendarAlarm in Cyrus's JSON (notify/cyrus.py) against the vendored example
(tests/data/cyrus-events/CalendarAlarm.json), key by key and in its order, from an iCalendar
object that says what the example says, through the change_log form the sinks read; and the
``calendar`` event group filtering it like any other."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from notify.cyrus import SEQ_PARAM, Format, event_fields
from notify.events import Policy, events_for
from store import calendar
from store.changes import CalendarAlarmFired, MailboxRef, Origin, from_json, to_json
from tests.reference import REFERENCE
from tests.store.calendar_data import ics, message, valarm, vevent

pytest.importorskip("icalendar")
pytest.importorskip("recurring_ical_events")

EXAMPLE: dict[str, Any] = json.loads(
    (REFERENCE / "cyrus-events" / "CalendarAlarm.json").read_text()
)
MARY = "mary@example.org"


def example_change() -> CalendarAlarmFired:
    """The example's alarm: an event 18:30-19:30 in Melbourne on 19 Nov 2015 (07:30Z),
    an EMAIL alarm an hour before, to Mary, in her mailbox "Calendar"."""
    text = ics(
        vevent(
            "DTSTART;TZID=Australia/Melbourne:20151119T183000",
            "DTEND;TZID=Australia/Melbourne:20151119T193000",
            uid="49ba20f5-cb44-4863-aea7-255f37ffc2e7",
            summary="Here's a lovely event.  Remind me",
            alarms=(valarm("TRIGGER:-PT1H", f"ATTENDEE:mailto:{MARY}", action="EMAIL"),),
        )
    )
    cals = calendar.parse(message(text))
    [a] = calendar.due(
        cals, dt.datetime(2015, 11, 1, tzinfo=dt.UTC), dt.datetime(2015, 12, 1, tzinfo=dt.UTC)
    )
    change = CalendarAlarmFired(
        7,
        a.when,
        Origin(service="calendar"),
        MARY,
        MailboxRef(3, MARY, "Calendar", 42),
        1,
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
    # Through the change_log form, as every sink reads it.
    read = from_json(type(change).__name__, change.seq, to_json(change))
    assert read == change
    return read


def test_calendar_alarm_is_the_example_key_by_key() -> None:
    [event] = events_for(example_change())
    out = event_fields(event, Format(servername=EXAMPLE["serverFQDN"]), pid=EXAMPLE["pid"])
    assert list(out) == list(EXAMPLE)  # the same keys, in the same order
    for key, value in EXAMPLE.items():
        assert out[key] == value, key
        assert type(out[key]) is type(value), key  # allDay 0/1 an integer, arrays lists


def test_seq_param_only_when_named() -> None:
    [event] = events_for(example_change())
    out = event_fields(event, Format(extra_params=frozenset({SEQ_PARAM})), pid=1)
    assert list(out) == [*EXAMPLE, SEQ_PARAM]
    assert out[SEQ_PARAM] == 7


@pytest.mark.parametrize(
    ("groups", "count"),
    [
        (("calendar",), 1),
        (("message", "mailbox", "flags"), 0),
        (("calendar", "message"), 1),
    ],
)
def test_calendar_group_filters(groups: tuple[str, ...], count: int) -> None:
    policy = Policy.build(groups, (), ("\\Junk",))
    assert len(events_for(example_change(), policy)) == count


def test_excluded_special_use_does_not_drop_alarms() -> None:
    # event_exclude_specialuse concerns message and flag events only (docs/calendar.md).
    change = example_change()
    policy = Policy.build(("calendar",), (), ("ALL",))
    assert len(events_for(change, policy)) == 1
