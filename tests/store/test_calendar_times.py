"""Alarm times as RFC 5545 §3.6.6/§3.8.6.3 and RFC 9074 §6 define them (store/calendar.py):
pure computations over parsed objects, each case walked alarm by alarm with `next_alarm`
and checked against `due` over the same span."""

from __future__ import annotations

import datetime as dt

import pytest

from store import calendar
from tests.store.calendar_data import ics, message, utc, valarm, vevent

pytest.importorskip("icalendar")
pytest.importorskip("recurring_ical_events")


def cals(text: str, multipart: bool = False) -> list[object]:
    return calendar.parse(message(text, multipart=multipart))


def walk(objs: list[object], after: dt.datetime, count: int) -> list[dt.datetime]:
    """The first ``count`` alarm instants after ``after``, one `next_alarm` at a time."""
    out: list[dt.datetime] = []
    for _ in range(count):
        nxt = calendar.next_alarm(objs, after)
        if nxt is None:
            break
        out.append(nxt)
        after = nxt
    return out


def due_times(objs: list[object], after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    return [a.when for a in calendar.due(objs, after, until)]


T0 = utc(2026, 3, 1, 8, 0)


def test_relative_trigger_before_start() -> None:
    # RFC 5545 §3.8.6.3: a duration trigger is relative to the start by default.
    objs = cals(
        ics(
            vevent(
                "DTSTART:20260301T100000Z",
                "DTEND:20260301T110000Z",
                alarms=(valarm("TRIGGER:-PT15M"),),
            )
        )
    )
    assert walk(objs, T0, 3) == [utc(2026, 3, 1, 9, 45)]
    [alarm] = calendar.due(objs, T0, utc(2026, 3, 1, 9, 45))
    assert (alarm.start, alarm.end, alarm.all_day, alarm.timezone) == (
        "20260301T100000Z",
        "20260301T110000Z",
        False,
        "UTC",
    )
    assert calendar.due(objs, T0, utc(2026, 3, 1, 9, 44, 59)) == []


def test_related_end() -> None:
    # RFC 5545 §3.2.14: RELATED=END sets the alarm relative to the end of the event.
    objs = cals(
        ics(
            vevent(
                "DTSTART:20260301T100000Z",
                "DURATION:PT2H",
                alarms=(valarm("TRIGGER;RELATED=END:-PT5M"),),
            )
        )
    )
    assert walk(objs, T0, 3) == [utc(2026, 3, 1, 11, 55)]


def test_absolute_trigger() -> None:
    # RFC 5545 §3.8.6.3: VALUE=DATE-TIME, in UTC.
    objs = cals(
        ics(
            vevent(
                "DTSTART:20260305T100000Z",
                alarms=(valarm("TRIGGER;VALUE=DATE-TIME:20260302T070000Z"),),
            )
        )
    )
    assert walk(objs, T0, 3) == [utc(2026, 3, 2, 7, 0)]


def test_repeat_and_duration() -> None:
    # RFC 5545 §3.6.6: the alarm repeats REPEAT more times, DURATION apart.
    objs = cals(
        ics(
            vevent(
                "DTSTART:20260301T100000Z",
                alarms=(valarm("TRIGGER:-PT30M", "REPEAT:2", "DURATION:PT10M"),),
            )
        )
    )
    expected = [utc(2026, 3, 1, 9, 30), utc(2026, 3, 1, 9, 40), utc(2026, 3, 1, 9, 50)]
    assert walk(objs, T0, 5) == expected
    assert due_times(objs, T0, utc(2026, 3, 2)) == expected


def test_weekly_rrule_with_exdate_and_overridden_instance() -> None:
    master = vevent(
        "DTSTART:20260302T100000Z",
        "DTEND:20260302T110000Z",
        "RRULE:FREQ=WEEKLY;COUNT=4",
        "EXDATE:20260309T100000Z",
        alarms=(valarm("TRIGGER:-PT10M"),),
    )
    moved = vevent(
        "RECURRENCE-ID:20260316T100000Z",
        "DTSTART:20260316T140000Z",
        "DTEND:20260316T150000Z",
        alarms=(valarm("TRIGGER:-PT1H"),),
        summary="Moved",
    )
    objs = cals(ics(master, moved))
    expected = [
        utc(2026, 3, 2, 9, 50),  # 9 March is excluded
        utc(2026, 3, 16, 13, 0),  # the override: its own time and alarm
        utc(2026, 3, 23, 9, 50),
    ]
    assert walk(objs, T0, 10) == expected
    alarms = calendar.due(objs, T0, utc(2026, 4, 1))
    assert [a.when for a in alarms] == expected
    assert [a.summary for a in alarms] == ["Meeting", "Moved", "Meeting"]


def test_rdate_adds_an_instance() -> None:
    objs = cals(
        ics(
            vevent(
                "DTSTART:20260302T100000Z",
                "RDATE:20260304T120000Z",
                alarms=(valarm("TRIGGER:-PT10M"),),
            )
        )
    )
    assert walk(objs, T0, 5) == [utc(2026, 3, 2, 9, 50), utc(2026, 3, 4, 11, 50)]


def test_all_day_event() -> None:
    # A DATE start is midnight; taken in UTC (docs/calendar.md). No DTEND: one day long.
    objs = cals(ics(vevent("DTSTART;VALUE=DATE:20260303", alarms=(valarm("TRIGGER:-PT15M"),))))
    [alarm] = calendar.due(objs, T0, utc(2026, 3, 4))
    assert alarm.when == utc(2026, 3, 2, 23, 45)
    assert (alarm.all_day, alarm.start, alarm.end, alarm.timezone) == (
        True,
        "20260303",
        "20260304",
        "",
    )


def test_tzid_across_daylight_saving_change() -> None:
    # 09:00 Europe/Berlin each week: 08:00Z in winter, 07:00Z after 29 March 2026.
    objs = cals(
        ics(
            vevent(
                "DTSTART;TZID=Europe/Berlin:20260320T090000",
                "DTEND;TZID=Europe/Berlin:20260320T100000",
                "RRULE:FREQ=WEEKLY;COUNT=3",
                alarms=(valarm("TRIGGER:-PT15M"),),
            )
        )
    )
    assert walk(objs, T0, 5) == [
        utc(2026, 3, 20, 7, 45),
        utc(2026, 3, 27, 7, 45),
        utc(2026, 4, 3, 6, 45),
    ]
    alarm = calendar.due(objs, T0, utc(2026, 3, 21))[0]
    assert (alarm.timezone, alarm.start) == ("Europe/Berlin", "20260320T080000Z")


def test_tzid_from_vtimezone() -> None:
    # A zone zoneinfo does not know, defined by the object's own VTIMEZONE (UTC+05:30).
    zone = (
        "BEGIN:VTIMEZONE\r\nTZID:Custom/Zone\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000"
        "\r\nTZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    objs = cals(
        ics(
            vevent("DTSTART;TZID=Custom/Zone:20260302T100000", alarms=(valarm("TRIGGER:-PT30M"),)),
            extra=zone,
        )
    )
    assert walk(objs, T0, 2) == [utc(2026, 3, 2, 4, 0)]


def test_floating_time_is_utc() -> None:
    objs = cals(ics(vevent("DTSTART:20260302T100000", alarms=(valarm("TRIGGER:-PT30M"),))))
    [alarm] = calendar.due(objs, T0, utc(2026, 3, 3))
    assert (alarm.when, alarm.timezone) == (utc(2026, 3, 2, 9, 30), "")


def test_acknowledged_alarm_does_not_fire_again() -> None:
    # RFC 9074 §6: ACKNOWLEDGED is when the alarm was last sent or acknowledged.
    objs = cals(
        ics(
            vevent(
                "DTSTART:20260302T100000Z",
                "RRULE:FREQ=DAILY;COUNT=3",
                alarms=(valarm("TRIGGER:-PT10M", "ACKNOWLEDGED:20260303T095000Z"),),
            )
        )
    )
    assert walk(objs, T0, 5) == [utc(2026, 3, 4, 9, 50)]


def test_event_values_and_recipients() -> None:
    objs = cals(
        ics(
            vevent(
                "DTSTART;TZID=Australia/Melbourne:20151119T183000",
                "DTEND;TZID=Australia/Melbourne:20151119T193000",
                "LOCATION:Room 1",
                "DESCRIPTION:Bring slides",
                "ORGANIZER;CN=Mary:mailto:mary@example.org",
                "ATTENDEE;CN=John;PARTSTAT=ACCEPTED:mailto:john@example.org",
                "ATTENDEE:MAILTO:ann@example.org",
                alarms=(
                    valarm("TRIGGER:-PT1H", "ATTENDEE:mailto:mary@example.org", action="EMAIL"),
                ),
            )
        ),
        multipart=True,
    )
    [a] = calendar.due(objs, utc(2015, 11, 1), utc(2015, 12, 1))
    assert (calendar.stamp(a.when), a.recipients, a.action, a.timezone) == (
        "20151119T063000Z",
        ("mailto:mary@example.org",),
        "email",
        "Australia/Melbourne",
    )
    assert (a.start, a.end, a.location, a.description, a.organizer) == (
        "20151119T073000Z",
        "20151119T083000Z",
        "Room 1",
        "Bring slides",
        "mary@example.org",
    )
    assert a.attendee_names == ("John", "")
    assert a.attendee_emails == ("john@example.org", "ann@example.org")
    assert a.attendee_status == ("ACCEPTED", "NEEDS-ACTION")


def test_open_ended_series_without_alarm_in_span_is_looked_at_again() -> None:
    objs = cals(
        ics(
            vevent(
                "DTSTART:20260302T100000Z",
                "RRULE:FREQ=YEARLY;INTERVAL=10",
                alarms=(valarm("TRIGGER:-PT10M"),),
            )
        )
    )
    after = utc(2026, 3, 3)
    nxt = calendar.next_alarm(objs, after)
    assert nxt == after + calendar.HORIZON  # nothing in 5 years: look again then
    assert calendar.due(objs, after, nxt) == []
    assert calendar.next_alarm(objs, nxt) == utc(2036, 3, 2, 9, 50)


def test_secondly_rule_is_bounded() -> None:
    # Every instance until 2030 acknowledged: the search stops after MAX_OCCURRENCES
    # occurrences and names where it stopped, to be looked at again from there.
    objs = cals(
        ics(
            vevent(
                "DTSTART:20260302T100000Z",
                "RRULE:FREQ=SECONDLY",
                alarms=(valarm("TRIGGER:-PT1S", "ACKNOWLEDGED:20300101T000000Z"),),
            )
        )
    )
    nxt = calendar.next_alarm(objs, T0)
    stop = utc(2026, 3, 2, 10) + dt.timedelta(seconds=calendar.MAX_OCCURRENCES)
    assert nxt is not None
    assert stop <= nxt <= stop + calendar.FIRST_WINDOW  # a re-check point, not 2030
    assert calendar.due(objs, T0, nxt) == []
    later = calendar.next_alarm(objs, nxt)  # and the next look goes on from there
    assert later is not None and nxt < later < utc(2026, 3, 3)


@pytest.mark.parametrize(
    "text",
    [
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n",  # cut short
        "this is not iCalendar\r\n",
        ics(""),  # no VEVENT
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(calendar.MalformedCalendar):
        cals(text)


def test_oversized_text_is_refused_before_parsing() -> None:
    big = ics(vevent("DTSTART:20260302T100000Z", "DESCRIPTION:" + "x" * calendar.MAX_ICAL_OCTETS))
    with pytest.raises(calendar.MalformedCalendar, match="octets"):
        cals(big)


def test_plain_mail_is_no_calendar_object() -> None:
    raw = b"From: a@example.org\r\nSubject: hi\r\n\r\nBEGIN:VCALENDAR\r\n"
    assert calendar.parse(raw) == []
