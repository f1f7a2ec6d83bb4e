"""The calendar index and alarm firing of `PostgresStore` (schema: migrations/0002_calendar.sql),
the PostgreSQL twin of store/sqlite/calendar.py with the same contract: the index is kept
inside the transaction that changes a message or a mailbox (`_calendar_index`, run by
store/postgres/store.py after each write body, from the Changes it queued; removals are the
schema's foreign keys and trigger), and one transaction logs a firing's CalendarAlarmFired
changes *and* advances each object's ``fired_through``/``next_alarm``.

Several instances share one database: every instance's scheduler may read the same due
objects, but the applying transaction locks each object row (``FOR UPDATE``) and applies
only if it is still as read (compare-and-set), so an alarm fires once across the cluster.
Parsing happens outside any transaction, in a worker thread (store/calendarfire.py). Without
the ``[calendar]`` extra nothing here does anything. Must not import imapd or notify.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Iterable

from store import calendar, calendarfire
from store.changes import (
    AclChanged,
    MailboxCreated,
    MailboxRenamed,
    MessagesAdded,
    MetadataChanged,
)
from store.metadata import SHARED
from store.postgres.base import PostgresBase, Tx, fetch_one

#: Objects indexed per statement, and fired per transaction.
_BATCH = 200
_FIRE_BATCH = 20

#: How a text/calendar part shows in store.mime.structure_to_json (see the SQLite twin).
_CALENDAR_PART = '"calendar"'
_DUE = (
    "SELECT co.mailbox_id, co.uid, co.fired_through, co.next_alarm, c.raw"
    " FROM calendar_objects co JOIN messages m"
    " ON m.mailbox_id = co.mailbox_id AND m.uid = co.uid"
    " JOIN contents c ON c.id = m.content_id"
    " WHERE co.next_alarm IS NOT NULL AND co.next_alarm <= $1"
    " ORDER BY co.next_alarm LIMIT $2"
)
# The value's bytes compared as text without decoding them (a value need not be UTF-8).
_IS_CALENDAR = (
    "SELECT 1 FROM mailboxes mb JOIN metadata md ON md.mailbox_id = mb.id"
    " WHERE mb.id = $1 AND mb.selectable AND ("
    f" (md.user_id = {SHARED} AND md.entry = $2) OR (md.user_id = mb.owner_id AND md.entry = $3))"
    " AND lower(btrim(encode(md.value, 'escape'), ' ')) IN ($4, $5) LIMIT 1"
)
_CANDIDATES = (
    "SELECT DISTINCT md.mailbox_id FROM metadata md WHERE md.mailbox_id != 0"
    " AND md.entry IN ($1, $2)"
    " AND md.mailbox_id NOT IN (SELECT mailbox_id FROM calendar_mailboxes)"
)


class PostgresCalendar(PostgresBase):
    """The calendar index and alarm firing (mixed into `PostgresStore`)."""

    # --- the index, inside each write transaction --------------------------------------------
    async def _calendar_index(self, tx: Tx) -> None:
        """Bring the index up to date with the Changes ``tx`` queued."""
        if not tx.pending or not _AVAILABLE:
            return
        recheck: list[int] = []
        added: dict[int, list[int]] = {}
        for change, _ in tx.pending:
            match change:
                case MessagesAdded():
                    # APPEND and delivery carry the structure; COPY and MOVE are looked up.
                    uids = [
                        m.uid
                        for m in change.messages
                        if m.structure is None or _CALENDAR_PART in m.structure.lower()
                    ]
                    if uids:
                        added.setdefault(change.mailbox.id, []).extend(uids)
                case MetadataChanged() if change.mailbox is not None:
                    recheck.append(change.mailbox.id)
                case MailboxCreated() | AclChanged():
                    recheck.append(change.mailbox.id)
                case MailboxRenamed():
                    recheck.extend(new.id for _, new in change.renames)
                case _:
                    pass
        fresh = set()
        for mailbox_id in dict.fromkeys(recheck):
            if await self._recheck_calendar(tx, mailbox_id):
                fresh.add(mailbox_id)
        for mailbox_id, uids in added.items():
            if (
                mailbox_id in fresh
                or await tx.one(
                    "SELECT 1 FROM calendar_mailboxes WHERE mailbox_id = $1", mailbox_id
                )
                is None
            ):
                continue
            await self._index_objects(tx, mailbox_id, uids)

    async def _recheck_calendar(self, tx: Tx, mailbox_id: int) -> bool:
        """Decide again whether a mailbox is a calendar; True when it just became one (its
        messages are then indexed)."""
        shared, private = calendar.FOLDER_TYPE_ENTRIES
        now = await tx.one(_IS_CALENDAR, mailbox_id, shared, private, *calendar.CALENDAR_TYPES)
        was = await tx.one("SELECT 1 FROM calendar_mailboxes WHERE mailbox_id = $1", mailbox_id)
        if now is not None and was is None:
            inserted = await tx.one(
                "INSERT INTO calendar_mailboxes (mailbox_id) VALUES ($1)"
                " ON CONFLICT (mailbox_id) DO NOTHING RETURNING mailbox_id",
                mailbox_id,
            )
            if inserted is None:  # another instance's transaction indexed it meanwhile
                return False
            uids = [
                int(r[0])
                for r in await tx.rows(
                    "SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid", mailbox_id
                )
            ]
            await self._index_objects(tx, mailbox_id, uids)
            return True
        if now is None and was is not None:
            await tx.run("DELETE FROM calendar_objects WHERE mailbox_id = $1", mailbox_id)
            await tx.run("DELETE FROM calendar_mailboxes WHERE mailbox_id = $1", mailbox_id)
        return False

    async def _index_objects(self, tx: Tx, mailbox_id: int, uids: Iterable[int]) -> None:
        """Index messages of a calendar mailbox whose structure names a text/calendar part,
        to be planned (parsed, their first alarm found) by the next firing round."""
        ordered = sorted(set(uids))
        at = calendarfire.epoch(tx.at)
        for start in range(0, len(ordered), _BATCH):
            await tx.run(
                "INSERT INTO calendar_objects (mailbox_id, uid, fired_through, next_alarm)"
                " SELECT m.mailbox_id, m.uid, $1, $1 FROM messages m"
                " JOIN contents c ON c.id = m.content_id WHERE m.mailbox_id = $2"
                " AND m.uid = ANY($3::bigint[]) AND strpos(lower(c.structure), $4) > 0"
                " ON CONFLICT (mailbox_id, uid) DO UPDATE SET"
                " fired_through = excluded.fired_through, next_alarm = excluded.next_alarm",
                at,
                mailbox_id,
                ordered[start : start + _BATCH],
                _CALENDAR_PART,
            )

    async def sync_calendar_index(self) -> int:
        """Index mailboxes annotated as calendars but not indexed yet (annotated while the
        ``[calendar]`` extra was missing). Returns how many became calendars."""
        if not _AVAILABLE or not await self._pool.fetch(_CANDIDATES, *calendar.FOLDER_TYPE_ENTRIES):
            return 0  # the usual case: no write at all

        async def body(tx: Tx) -> int:
            candidates = [
                int(r[0]) for r in await tx.rows(_CANDIDATES, *calendar.FOLDER_TYPE_ENTRIES)
            ]
            return sum([await self._recheck_calendar(tx, m) for m in candidates])

        return await self._write(body)

    # --- firing ------------------------------------------------------------------------------
    async def next_calendar_alarm(self) -> dt.datetime | None:
        """The earliest ``next_alarm`` of any object (None: nothing scheduled)."""
        row = await fetch_one(self._pool, "SELECT min(next_alarm) FROM calendar_objects")
        return None if row is None or row[0] is None else calendarfire.instant(int(row[0]))

    async def fire_calendar_alarms(self, lookback: dt.timedelta) -> int:
        """Fire every alarm due by the store clock's now, earliest objects first, and plan
        newly indexed objects; per batch, read and plan outside any transaction, then one
        short transaction logging the CalendarAlarmFired changes and advancing the objects
        still as read. Returns how many alarms fired (by this instance)."""
        if not _AVAILABLE:
            return 0
        fired = 0
        while True:
            now = calendarfire.epoch(self._now())
            rows = [tuple(r) for r in await self._pool.fetch(_DUE, now, _FIRE_BATCH)]
            if not rows:
                return fired
            firings = await asyncio.to_thread(
                calendarfire.plan, rows, now, int(lookback.total_seconds())
            )
            fired += await self._write(
                functools.partial(self._apply_firings, firings=firings, now=now)
            )

    async def _apply_firings(self, tx: Tx, *, firings: list[calendarfire.Firing], now: int) -> int:
        """Each object still as `calendarfire.plan` read it (its row locked, so another
        instance's round waits, then sees it advanced) gets its changes logged and its times
        advanced; the others are left to the next round."""
        count = 0
        rows = await tx.rows(  # locked in key order: no deadlock with another instance
            "SELECT co.mailbox_id, co.uid, co.fired_through, co.next_alarm"
            " FROM calendar_objects co JOIN unnest($1::bigint[], $2::bigint[]) AS x(b, u)"
            " ON co.mailbox_id = x.b AND co.uid = x.u"
            " ORDER BY co.mailbox_id, co.uid FOR UPDATE OF co",
            [f.mailbox_id for f in firings],
            [f.uid for f in firings],
        )
        found = {(int(r[0]), int(r[1])): (int(r[2]), r[3]) for r in rows}
        for f in firings:  # in the order read (earliest alarm first), as SQLite does
            current = found.get((f.mailbox_id, f.uid))
            if current is None or current != (f.fired_through, f.next_was):
                continue  # gone, changed, or fired by another instance meanwhile
            calendarfire.log_firing(f)
            if f.alarms:
                mbox = await self._by_id(tx.db, f.mailbox_id)
                for a in f.alarms:
                    tx.emit(calendarfire.alarm_change(tx.at, mbox.ref, f.uid, a), mbox.owner)
                    count += 1
            await tx.run(
                "UPDATE calendar_objects SET fired_through = $1, next_alarm = $2"
                " WHERE mailbox_id = $3 AND uid = $4",
                now,
                f.next_alarm,
                f.mailbox_id,
                f.uid,
            )
        return count


_AVAILABLE = calendar.available()
