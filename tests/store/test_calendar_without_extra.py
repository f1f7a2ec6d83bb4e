"""Without the ``[calendar]`` extra a calendar mailbox is a plain mailbox (docs/calendar.md):
a fresh interpreter in which the iCalendar libraries cannot be imported opens a real store,
annotates a mailbox as a calendar and appends an event to it; the message is stored, nothing
is indexed, no library module was loaded, and nothing is scheduled."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    sys.modules["icalendar"] = None  # as if not installed: any import fails
    sys.modules["recurring_ical_events"] = None
    from store.api import NewMessage
    from store.changes import Origin
    from store.metadata import MetadataLimits
    from store.sqlite import SqliteStore
    from store import calendar
    from tests.store.calendar_data import ics, message, valarm, vevent

    async def main(path):
        assert not calendar.available()
        store = await SqliteStore.open(path, lambda changes: None, scrypt_n=16)
        user = await store.create_user("bob", "pw")
        origin = Origin(service="cli")
        await store.create_mailbox(user.id, "Calendar", origin)
        await store.set_metadata(user.id, "Calendar",
                                 [("/shared/vendor/kolab/folder-type", b"event")], origin,
                                 MetadataLimits(1024, 16))
        raw = message(ics(vevent("DTSTART:20000101T100000Z",
                                 alarms=(valarm("TRIGGER:-PT15M"),))))
        result = await store.append(user.id, "Calendar", [NewMessage(raw)], origin)
        assert result.uids == (1,)
        assert await store.next_calendar_alarm() is None
        assert await store.sync_calendar_index() == 0
        assert await store.fire_calendar_alarms(__import__("datetime").timedelta(days=1)) == 0
        await store.close()
        assert sys.modules["icalendar"] is None  # never imported for real
        print("plain mailbox")

    asyncio.run(main(sys.argv[1]))
""")


def test_calendar_mailbox_is_plain_without_the_extra(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "s.sqlite3")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "plain mailbox"
