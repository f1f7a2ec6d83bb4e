"""CalendarAlarm end to end (docs/calendar.md): real IMAP clients fill a calendar mailbox (the
Kolab folder-type annotation by SETMETADATA, events by APPEND), the server's clock is moved
by the test (``calendar_test_clock``: a `ManualClock`, advanced on the server's loop; for
the `python -m imapd` process, the instant it starts at), and the events arrive through the
notification socket and the outbox (``imapd events tail``). Nothing sleeps for the alarms.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import imapclient
import pytest

from imapd.alarms import ManualClock
from notify import cyrus
from tests.conftest import PASSWORD, RunningServer
from tests.e2e.process import Proc, imapd
from tests.e2e.test_webhook import Start, check_signed, path, receiver, start_hook
from tests.notify.listener import Listener, example_keys
from tests.notify.receiver import Receiver
from tests.reference import REFERENCE
from tests.store.calendar_data import ics, message, valarm, vevent

__all__ = ["path", "receiver", "start_hook"]  # the webhook tests' fixtures, used here too

pytest.importorskip("icalendar")
pytest.importorskip("recurring_ical_events")

# imaplib refuses commands it does not know; RFC 5464 §4.3: authenticated or selected.
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))

T0 = "2026-03-02T09:00:00+00:00"
EXAMPLE_ORDER = list(json.loads((REFERENCE / "cyrus-events" / "CalendarAlarm.json").read_text()))
SERVERNAME = "imap.example.org"


def calendar_event(uid: str, start: str, *alarm: str, summary: str = "Meeting") -> bytes:
    return message(
        ics(
            vevent(
                f"DTSTART:{start}",
                uid=uid,
                summary=summary,
                alarms=(valarm(*alarm, "ATTENDEE:mailto:mary@example.org", action="EMAIL"),),
            )
        )
    )


def make_calendar(imap: imaplib.IMAP4) -> None:
    assert imap.create("Calendar")[0] == "OK"
    typ, _ = imap._simple_command(
        "SETMETADATA", "Calendar", '(/shared/vendor/kolab/folder-type "event")'
    )
    assert typ == "OK"


def append(imap: imaplib.IMAP4, raw: bytes, mailbox: str = "Calendar") -> None:
    assert imap.append(mailbox, "", None, raw)[0] == "OK"


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


def advance(running: RunningServer, minutes: float) -> None:
    clock = running.server.clock
    assert isinstance(clock, ManualClock)
    running.loop.call_soon_threadsafe(clock.advance, minutes * 60)


def test_alarms_fire_as_the_clock_moves(server_factory: Any, listener: Listener) -> None:
    running: RunningServer = server_factory(
        notify_socket=listener.path,
        servername=SERVERNAME,
        calendar_test_clock=T0,
        event_groups=("calendar",),
    )
    running.add_user("mary")
    c = imapclient.IMAPClient(running.host, port=running.port, ssl=False, timeout=10)
    c.login("mary", PASSWORD)
    imap = c._imap
    make_calendar(imap)
    append(imap, calendar_event("relative", "20260302T100000Z", "TRIGGER:-PT15M"))  # 09:45
    append(imap, calendar_event("moved", "20260302T100000Z", "TRIGGER:-PT10M"))  # 09:50
    append(
        imap,
        calendar_event(
            "absolute",
            "20260302T120000Z",  # 09:55
            "TRIGGER;VALUE=DATE-TIME:20260302T095500Z",
        ),
    )
    append(
        imap, calendar_event("relative", "20260302T100000Z", "TRIGGER:-PT15M"), mailbox="INBOX"
    )  # not a calendar: never fires
    c.select_folder("Calendar")
    c.move([2], "Archive")  # out of the calendar before its alarm

    advance(running, 46)  # 09:46
    first = listener.next()
    assert set(first) == example_keys("CalendarAlarm")
    assert list(first) == EXAMPLE_ORDER
    assert (first["event"], first["uid"], first["alarmTime"]) == (
        "CalendarAlarm",
        "relative",
        "20260302T094500Z",
    )
    assert (first["userId"], first["calendarName"], first["serverFQDN"]) == (
        "mary",
        "Calendar",
        SERVERNAME,
    )
    assert (first["alarmRecipients"], first["action"], first["allDay"]) == (
        ["mailto:mary@example.org"],
        "email",
        0,
    )
    assert (first["start"], first["end"], first["timezone"]) == (
        "20260302T100000Z",
        "20260302T100000Z",
        "UTC",
    )

    advance(running, 5)  # 09:51: the moved event's time; it is no longer in the calendar
    advance(running, 5)  # 09:56
    second = listener.next()
    assert (second["uid"], second["alarmTime"]) == ("absolute", "20260302T095500Z")
    c.logout()


# --- the real process: restart and kill -9 -------------------------------------------------
def alarm_events(proc: Proc) -> list[dict[str, Any]]:
    """The CalendarAlarm events in the outbox, as ``imapd events tail`` prints them."""
    out = imapd("events", "tail", "--from", "1", data_dir=proc.data_dir)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [e for e in events if e["event"] == "CalendarAlarm"]


def wait_for(proc: Proc, uid: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Read the outbox until an alarm of ``uid`` is there (the scheduler fires at start)."""
    db = proc.data_dir / "imapd.sqlite3"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT payload FROM change_log WHERE kind = ?", ("CalendarAlarmFired",)
            ).fetchall()
        if any(json.loads(r[0])["ical_uid"] == uid for r in rows):
            return alarm_events(proc)
        time.sleep(0.05)
    raise AssertionError(f"no alarm of {uid} within {timeout} s")


def at(minutes: int) -> str:
    return (dt.datetime.fromisoformat(T0) + dt.timedelta(minutes=minutes)).isoformat()


def test_restart_and_kill9_fire_each_alarm_once(
    proc: Proc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAPD_CALENDAR_TEST_CLOCK", at(0))  # 09:00
    proc.start()
    c = proc.client()
    make_calendar(c)
    append(c, calendar_event("first", "20260302T100000Z", "TRIGGER:-PT15M"))  # 09:45
    append(c, calendar_event("second", "20260302T100000Z", "TRIGGER:-PT5M"))  # 09:55
    c.logout()
    assert proc.stop() == 0
    assert alarm_events(proc) == []  # scheduled, not fired

    # Restarted at 09:50: "first" (09:45, fallen due while stopped) fires at start, once.
    # Killed -9 as soon as it is in the outbox.
    monkeypatch.setenv("IMAPD_CALENDAR_TEST_CLOCK", at(50))  # 09:50
    proc.start()
    events = wait_for(proc, "first")
    proc.kill9()
    assert [e["uid"] for e in events] == ["first"]

    # Again at 09:56: "second" fires; "first" is not repeated (its firing and the advance
    # of its next alarm were one transaction, committed before the kill).
    monkeypatch.setenv("IMAPD_CALENDAR_TEST_CLOCK", at(56))
    proc.start()
    events = wait_for(proc, "second")
    assert [e["uid"] for e in events] == ["first", "second"]
    assert set(events[0]) == example_keys("CalendarAlarm") | {cyrus.SEQ_PARAM}
    assert proc.stop() == 0


def test_late_start_skips_alarms_older_than_the_lookback(
    proc: Proc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAPD_CALENDAR_TEST_CLOCK", at(0))
    proc.start()
    c = proc.client()
    make_calendar(c)
    append(c, calendar_event("stale", "20260302T100000Z", "TRIGGER:-PT50M"))  # 09:10
    append(c, calendar_event("fresh", "20260302T110000Z", "TRIGGER:-PT45M"))  # 10:15
    c.logout()
    assert proc.stop() == 0
    monkeypatch.setenv("IMAPD_CALENDAR_TEST_CLOCK", at(80))  # 10:20; look-back 1 h
    proc.start()
    events = wait_for(proc, "fresh")
    assert [e["uid"] for e in events] == ["fresh"]
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)  # stopped here to read its log to the end
    output, _ = proc.proc.communicate(timeout=15)
    assert proc.proc.returncode == 0
    log = output.decode()
    assert "skipped (older than the look-back)" in log


# --- the webhook sink ------------------------------------------------------------------------
def test_alarm_reaches_the_webhook(
    server_factory: Any, receiver: Receiver, path: str, start_hook: Start
) -> None:
    start_hook()
    running: RunningServer = server_factory(
        notify_socket=path,
        event_extra_params=(*cyrus.DEFAULT_EXTRA_PARAMS, cyrus.SEQ_PARAM),
        event_groups=("calendar",),
        calendar_test_clock=T0,
    )
    running.add_user("mary")
    c = imapclient.IMAPClient(running.host, port=running.port, ssl=False, timeout=10)
    c.login("mary", PASSWORD)
    make_calendar(c._imap)
    append(c._imap, calendar_event("hooked", "20260302T100000Z", "TRIGGER:-PT15M"))
    c.logout()
    advance(running, 45)
    [req] = receiver.wait(1)
    check_signed(req)
    body = req.json()
    assert list(body) == [*EXAMPLE_ORDER, cyrus.SEQ_PARAM]
    assert (body["event"], body["uid"], body["alarmTime"]) == (
        "CalendarAlarm",
        "hooked",
        "20260302T094500Z",
    )
