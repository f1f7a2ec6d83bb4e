"""The calendar index in the store (store/sqlite/calendar.py, store/postgres/calendar.py) on
both backends, with the store's settable clock: which mailboxes are calendars, the index kept
by APPEND, COPY, MOVE, EXPUNGE, RENAME, DELETE and METADATA in their own transactions, and
firing: one transaction logging the CalendarAlarmFired changes and advancing the objects, so
that a restart or a second store on the same file (or database) never fires an alarm twice,
and a late start fires back to the look-back only."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from store.api import NewMessage, User
from store.changes import CalendarAlarmFired
from store.metadata import MetadataLimits
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, START, Env
from tests.store.calendar_data import ics, message, valarm, vevent

pytest.importorskip("icalendar")
pytest.importorskip("recurring_ical_events")

BOTH_BACKENDS = True  # tests/store/conftest.py: SQLite and PostgreSQL

LIMITS = MetadataLimits(max_size=1024, max_entries=16)
HOUR = dt.timedelta(hours=1)
LOOKBACK = dt.timedelta(hours=1)
FOLDER_TYPE = "/shared/vendor/kolab/folder-type"

# START is 2024-03-01 12:00Z: an event at 13:00 with its alarm 15 minutes before.
EVENT = message(
    ics(
        vevent(
            "DTSTART:20240301T130000Z", "DTEND:20240301T140000Z", alarms=(valarm("TRIGGER:-PT15M"),)
        )
    )
)


@pytest.fixture
async def bob(store: SqliteStore, env: Env) -> User:
    user = await store.create_user("bob", "pw")
    await store.create_mailbox(user.id, "Calendar", ORIGIN)
    await store.set_metadata(user.id, "Calendar", [(FOLDER_TYPE, b"event")], ORIGIN, LIMITS)
    env.take()
    return user


def fired(env: Env) -> list[CalendarAlarmFired]:
    return [c for c in env.logged() if isinstance(c, CalendarAlarmFired)]


def objects(env: Env) -> list[tuple[object, ...]]:
    return env.rows(
        "SELECT mailbox_id, uid, fired_through, next_alarm"
        " FROM calendar_objects ORDER BY mailbox_id, uid"
    )


async def append(
    store: SqliteStore, user: User, raw: bytes = EVENT, mailbox: str = "Calendar"
) -> int:
    result = await store.append(user.id, mailbox, [NewMessage(raw)], ORIGIN)
    return result.uids[0]


async def test_append_indexes_and_alarm_fires_once(store: SqliteStore, env: Env, bob: User) -> None:
    uid = await append(store, bob)
    # Indexed in the APPEND's transaction, to be planned (due at once, parsed off the lock).
    at = int(START.timestamp())
    assert [r[1:] for r in objects(env)] == [(uid, at, at)]
    assert await store.next_calendar_alarm() == START
    assert await store.fire_calendar_alarms(LOOKBACK) == 0
    assert [r[1:] for r in objects(env)] == [(uid, at, at + 45 * 60)]
    assert await store.next_calendar_alarm() == START + dt.timedelta(minutes=45)
    env.clock.advance(44 * 60)
    assert await store.fire_calendar_alarms(LOOKBACK) == 0
    env.clock.advance(60)
    assert await store.fire_calendar_alarms(LOOKBACK) == 1
    [change] = fired(env)
    assert (change.user, change.mailbox.name, change.uid) == ("bob", "Calendar", uid)
    assert (change.alarm_time, change.ical_uid, change.action) == (
        "20240301T124500Z",
        "ev-1",
        "display",
    )
    assert change in env.take()  # published too, after the commit
    assert await store.next_calendar_alarm() is None
    env.clock.advance(3600)
    assert await store.fire_calendar_alarms(LOOKBACK) == 0
    assert len(fired(env)) == 1


async def test_plain_mailbox_is_not_indexed(store: SqliteStore, env: Env, bob: User) -> None:
    await append(store, bob, mailbox="INBOX")
    assert objects(env) == []


async def test_private_annotation_of_the_owner(store: SqliteStore, env: Env, bob: User) -> None:
    await store.create_mailbox(bob.id, "Mine", ORIGIN)
    await store.set_metadata(
        bob.id, "Mine", [("/private/vendor/kolab/folder-type", b"event.default")], ORIGIN, LIMITS
    )
    await append(store, bob, mailbox="Mine")
    assert len(objects(env)) == 1


async def test_metadata_set_later_indexes_and_removal_drops(
    store: SqliteStore, env: Env, bob: User
) -> None:
    await store.create_mailbox(bob.id, "Later", ORIGIN)
    await append(store, bob, mailbox="Later")
    await append(store, bob, raw=b"Subject: mail\r\n\r\nplain\r\n", mailbox="Later")
    assert objects(env) == []
    await store.set_metadata(bob.id, "Later", [(FOLDER_TYPE, b"Event")], ORIGIN, LIMITS)
    assert [r[1] for r in objects(env) if r[0] != 0] == [1]  # the event, not the mail
    await store.set_metadata(bob.id, "Later", [(FOLDER_TYPE, b"mail")], ORIGIN, LIMITS)
    await store.set_metadata(bob.id, "Calendar", [(FOLDER_TYPE, None)], ORIGIN, LIMITS)
    assert objects(env) == []


async def test_move_out_before_the_alarm_fires_nothing(
    store: SqliteStore, env: Env, bob: User
) -> None:
    uid = await append(store, bob)
    box = await store.get_mailbox(bob.id, "Calendar")
    await store.copy_messages(box.id, [uid], bob.id, "Archive", ORIGIN, move=True)
    assert objects(env) == []
    env.clock.advance(2 * 3600)
    assert await store.fire_calendar_alarms(LOOKBACK) == 0
    assert fired(env) == []


async def test_copy_and_move_into_a_calendar(store: SqliteStore, env: Env, bob: User) -> None:
    uid = await append(store, bob, mailbox="INBOX")
    inbox = await store.get_mailbox(bob.id, "INBOX")
    await store.copy_messages(inbox.id, [uid], bob.id, "Calendar", ORIGIN)
    await store.copy_messages(inbox.id, [uid], bob.id, "Calendar", ORIGIN, move=True)
    assert [r[1] for r in objects(env)] == [1, 2]
    env.clock.advance(3600)
    assert await store.fire_calendar_alarms(LOOKBACK) == 2


async def test_expunge_rename_delete(store: SqliteStore, env: Env, bob: User) -> None:
    uid = await append(store, bob)
    await append(store, bob)
    box = await store.get_mailbox(bob.id, "Calendar")
    await store.store_flags(box.id, [uid], "+", ["\\Deleted"], ORIGIN)
    assert len(objects(env)) == 2  # \Deleted alone changes nothing
    await store.expunge(box.id, ORIGIN)
    assert [r[1] for r in objects(env)] == [2]
    await store.rename_mailbox(bob.id, "Calendar", "Work/Calendar", ORIGIN)
    assert [r[1] for r in objects(env)] == [2]  # annotations follow RENAME, so does the index
    env.clock.advance(3600)
    assert await store.fire_calendar_alarms(LOOKBACK) == 1
    assert fired(env)[0].mailbox.name == "Work/Calendar"
    await append(store, bob, mailbox="Work/Calendar")
    await store.delete_mailbox(bob.id, "Work/Calendar", ORIGIN)
    assert objects(env) == []
    assert env.rows("SELECT count(*) FROM calendar_mailboxes") == [(0,)]


async def test_malformed_icalendar_is_mail_and_logged(
    store: SqliteStore, env: Env, bob: User, caplog: pytest.LogCaptureFixture
) -> None:
    bad = message("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n")
    uid = await append(store, bob, raw=bad)
    box = await store.get_mailbox(bob.id, "Calendar")
    assert box.messages == 1  # stored as mail
    with caplog.at_level(logging.WARNING, logger="store.calendar"):
        assert await store.fire_calendar_alarms(LOOKBACK) == 0  # planning it
    assert [r[1:] for r in objects(env)] == [(uid, int(START.timestamp()), None)]
    assert await store.next_calendar_alarm() is None  # schedules nothing
    [record] = [r for r in caplog.records if r.name == "store.calendar"]
    assert f"uid {uid}" in record.getMessage()
    assert "malformed iCalendar" in record.getMessage()


async def test_restart_between_scheduling_and_firing(
    env: Env, store: SqliteStore, bob: User
) -> None:
    await append(store, bob)
    await store.close()
    env.clock.advance(50 * 60)  # 5 minutes after the alarm, within the look-back
    again = await env.open()
    assert await again.fire_calendar_alarms(LOOKBACK) == 1
    await again.close()
    third = await env.open()
    assert await third.fire_calendar_alarms(LOOKBACK) == 0
    assert len(fired(env)) == 1


async def test_alarm_older_than_lookback_is_skipped_with_a_log_line(
    env: Env, store: SqliteStore, bob: User, caplog: pytest.LogCaptureFixture
) -> None:
    await append(store, bob)
    repeat = message(
        ics(
            vevent(
                "DTSTART:20240301T150000Z",
                uid="ev-2",
                alarms=(valarm("TRIGGER:-PT2H", "REPEAT:3", "DURATION:PT30M"),),
            )
        )
    )  # 13:00 .. 14:30
    await append(store, bob, raw=repeat)
    env.clock.advance(2.5 * 3600)  # 14:30: 12:45 and 13:00, 13:30 are over an hour old
    with caplog.at_level(logging.WARNING, logger="store.calendar"):
        assert await store.fire_calendar_alarms(LOOKBACK) == 2  # 14:00, 14:30
    assert [c.alarm_time for c in fired(env)] == ["20240301T140000Z", "20240301T143000Z"]
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 2


async def test_two_stores_on_one_file_fire_once(env: Env, store: SqliteStore, bob: User) -> None:
    await append(store, bob)
    other = await env.open()
    env.clock.advance(3600)
    counts = [
        await store.fire_calendar_alarms(LOOKBACK),
        await other.fire_calendar_alarms(LOOKBACK),
    ]
    assert sorted(counts) == [0, 1]
    assert len(fired(env)) == 1


async def test_recurring_object_advances(store: SqliteStore, env: Env, bob: User) -> None:
    daily = message(
        ics(
            vevent(
                "DTSTART:20240301T130000Z",
                "RRULE:FREQ=DAILY;COUNT=3",
                alarms=(valarm("TRIGGER:-PT15M"),),
            )
        )
    )
    await append(store, bob, raw=daily)
    times = []
    for _ in range(4):
        env.clock.advance(24 * 3600)
        await store.fire_calendar_alarms(dt.timedelta(days=2))
        times = [c.alarm_time for c in fired(env)]
    assert times == ["20240301T124500Z", "20240302T124500Z", "20240303T124500Z"]
    assert objects(env)[0][3] is None  # none left


async def test_weekly_series_across_dst_with_exdate_and_override_fires_in_order(
    store: SqliteStore, env: Env, bob: User
) -> None:
    # 09:00 Europe/Berlin on Mondays from 18 March 2024 (CET), DST starts 31 March: the
    # 25 March instance is excluded, 1 April's is moved to 14:00 with its own alarm.
    series = message(
        ics(
            vevent(
                "DTSTART;TZID=Europe/Berlin:20240318T090000",
                "DTEND;TZID=Europe/Berlin:20240318T100000",
                "RRULE:FREQ=WEEKLY;COUNT=4",
                "EXDATE;TZID=Europe/Berlin:20240325T090000",
                alarms=(valarm("TRIGGER:-PT15M"),),
            ),
            vevent(
                "RECURRENCE-ID;TZID=Europe/Berlin:20240401T090000",
                "DTSTART;TZID=Europe/Berlin:20240401T140000",
                "DTEND;TZID=Europe/Berlin:20240401T150000",
                summary="Moved",
                alarms=(valarm("TRIGGER:-PT1H"),),
            ),
            vevent(
                "DTSTART;VALUE=DATE:20240320",
                uid="all-day",
                summary="Holiday",
                alarms=(valarm("TRIGGER:-PT12H"),),
            ),
        )
    )
    await append(store, bob, raw=series)
    for _ in range(40):  # a day at a time from 1 March, firing as a server would
        env.clock.advance(24 * 3600)
        await store.fire_calendar_alarms(LOOKBACK * 24)
    got = [(c.alarm_time, c.summary, c.start, c.timezone, c.all_day) for c in fired(env)]
    assert got == [
        ("20240318T074500Z", "Meeting", "20240318T080000Z", "Europe/Berlin", False),
        ("20240319T120000Z", "Holiday", "20240320", "", True),
        ("20240401T110000Z", "Moved", "20240401T120000Z", "Europe/Berlin", False),
        ("20240408T064500Z", "Meeting", "20240408T070000Z", "Europe/Berlin", False),
    ]
