"""iCalendar objects for the calendar tests, built as messages the way clients store them
(Kolab: a MIME message whose body or a part is text/calendar)."""

from __future__ import annotations

import datetime as dt


def ics(*events: str, extra: str = "") -> str:
    body = "".join(events)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//imapd tests//EN\r\n"
        + extra
        + body
        + "END:VCALENDAR\r\n"
    )


def vevent(
    *lines: str, alarms: tuple[str, ...] = (), uid: str = "ev-1", summary: str = "Meeting"
) -> str:
    out = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", f"SUMMARY:{summary}", *lines]
    text = "\r\n".join(out) + "\r\n"
    for alarm in alarms:
        text += alarm
    return text + "END:VEVENT\r\n"


def valarm(*lines: str, action: str = "DISPLAY") -> str:
    return (
        "\r\n".join(
            ["BEGIN:VALARM", f"ACTION:{action}", "DESCRIPTION:Reminder", *lines, "END:VALARM"]
        )
        + "\r\n"
    )


def message(calendar: str, *, multipart: bool = False, subject: str = "event") -> bytes:
    """A Kolab-style message: text/calendar as the body, or as the second MIME part."""
    head = (
        f"From: alice@example.org\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    )
    if not multipart:
        return (head + "Content-Type: text/calendar; charset=utf-8\r\n\r\n" + calendar).encode()
    return (
        head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nThis is a calendar object.\r\n"
        "--b1\r\nContent-Type: text/calendar; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + calendar + "--b1--\r\n"
    ).encode()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)  # type: ignore[arg-type,misc]
