"""The calendar index and alarm firing of `SqliteStore` (schema: migrations/0009_calendar.sql).

Owns: keeping ``calendar_mailboxes`` and ``calendar_objects`` current inside the transaction
that changes a message or a mailbox (`_calendar_index`, run by store/sqlite/store.py after each
write body, from the Changes it queued: MessagesAdded for APPEND, delivery, COPY, MOVE;
MetadataChanged, MailboxCreated, MailboxRenamed and AclChanged re-decide whether a mailbox is
a calendar; removals are triggers in the migration), and firing due alarms (`fire_calendar_
alarms`): one transaction logs the CalendarAlarmFired changes *and* advances each object's
``fired_through``/``next_alarm``, so a crash either loses neither or keeps both, and a second
server on the same store finds nothing left to fire.

Parsing is never done holding the writer lock (one client's big COPY of calendar objects must
not stall everyone's writes): a transaction adding an object records it with ``next_alarm``
= ``fired_through`` = its own time ("to be planned", due at once); the firing path reads due
objects on the reader, parses and expands them (store/calendar.py, bounded) in a worker
thread, and only then takes the lock for a short transaction that applies the outcome if the
object is still as it read it (compare-and-set: otherwise another server, or a change,
came first, and it is read again). Without the ``[calendar]`` extra nothing here does
anything. Must not import imapd or notify.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
from collections.abc import Iterable

from store import calendar, calendarfire
from store.changes import (
    AclChanged,
    Change,
    MailboxCreated,
    MailboxRenamed,
    MessagesAdded,
    MetadataChanged,
)
from store.sqlite.base import SqliteBase, _one, _Tx
from store.sqlite.synctx import SyncTx

#: Objects read per statement when a mailbox becomes a calendar, and fired per transaction.
_BATCH = 200
_FIRE_BATCH = 20

#: How a text/calendar part shows in store.mime.structure_to_json (type and subtype are
#: separate JSON strings); a false match (a subject "calendar") only costs a parse.
_CALENDAR_PART = '"calendar"'
_DUE = (
    "SELECT co.mailbox_id, co.uid, co.fired_through, co.next_alarm, c.raw"
    " FROM calendar_objects co JOIN messages m"
    " ON m.mailbox_id = co.mailbox_id AND m.uid = co.uid"
    " JOIN contents c ON c.id = m.content_id"
    " WHERE co.next_alarm IS NOT NULL AND co.next_alarm <= ?"
    " ORDER BY co.next_alarm LIMIT ?"
)
_IS_CALENDAR = (
    "SELECT 1 FROM mailboxes mb JOIN metadata md ON md.mailbox_id = mb.id"
    " WHERE mb.id = ? AND mb.selectable = 1 AND ("
    " (md.user_id = 0 AND md.entry = ?) OR (md.user_id = mb.owner_id AND md.entry = ?))"
    " AND lower(trim(CAST(md.value AS TEXT))) IN (?, ?) LIMIT 1"
)
_CANDIDATES = (
    "SELECT DISTINCT md.mailbox_id FROM metadata md WHERE md.mailbox_id != 0 AND md.entry IN"
    " (?, ?) AND md.mailbox_id NOT IN (SELECT mailbox_id FROM calendar_mailboxes)"
)


def calendar_work(tx: SyncTx) -> bool:
    """Whether `SqliteCalendar._calendar_index` has anything to do for ``tx``'s Changes (an
    in-thread write leaves the index to the awaiting path then: store/sqlite/synctx.py)."""
    if not tx.pending or not _AVAILABLE:
        return False
    recheck, added = _index_work(tx.pending)
    return bool(recheck or added)


def _index_work(
    pending: Iterable[tuple[Change, str | None]],
) -> tuple[list[int], dict[int, list[int]]]:
    """The mailboxes to decide again and the new messages (mailbox id -> UIDs) that may be
    calendar objects, among a transaction's Changes."""
    recheck: list[int] = []
    added: dict[int, list[int]] = {}
    for change, _ in pending:
        match change:
            case MessagesAdded():
                # APPEND and delivery carry the structure: plain mail costs no query.
                # COPY and MOVE do not: their target is looked up.
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
    return recheck, added


class SqliteCalendar(SqliteBase):
    """The calendar index and alarm firing (mixed into `SqliteStore`)."""

    # --- the index, inside each write transaction --------------------------------------------
    async def _calendar_index(self, tx: _Tx) -> None:
        """Bring the index up to date with the Changes ``tx`` queued (store/sqlite/store.py calls
        this after the body, so it sees the transaction's final rows)."""
        if not tx.pending or not _AVAILABLE:
            return
        recheck, added = _index_work(tx.pending)
        fresh = set()
        for mailbox_id in dict.fromkeys(recheck):
            if await self._recheck_calendar(tx, mailbox_id):
                fresh.add(mailbox_id)
        for mailbox_id, uids in added.items():
            if (
                mailbox_id in fresh
                or await tx.one(
                    "SELECT 1 FROM calendar_mailboxes WHERE mailbox_id = ?", (mailbox_id,)
                )
                is None
            ):
                continue
            await self._index_objects(tx, mailbox_id, uids)

    async def _recheck_calendar(self, tx: _Tx, mailbox_id: int) -> bool:
        """Decide again whether a mailbox is a calendar; True when it just became one (its
        messages are then indexed)."""
        shared, private = calendar.FOLDER_TYPE_ENTRIES
        now = await tx.one(_IS_CALENDAR, (mailbox_id, shared, private, *calendar.CALENDAR_TYPES))
        was = await tx.one("SELECT 1 FROM calendar_mailboxes WHERE mailbox_id = ?", (mailbox_id,))
        if now is not None and was is None:
            await tx.run("INSERT INTO calendar_mailboxes (mailbox_id) VALUES (?)", (mailbox_id,))
            uids = [
                int(r[0])
                for r in await tx.rows(
                    "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,)
                )
            ]
            await self._index_objects(tx, mailbox_id, uids)
            return True
        if now is None and was is not None:
            await tx.run("DELETE FROM calendar_mailboxes WHERE mailbox_id = ?", (mailbox_id,))
            await tx.run("DELETE FROM calendar_objects WHERE mailbox_id = ?", (mailbox_id,))
        return False

    async def _index_objects(self, tx: _Tx, mailbox_id: int, uids: Iterable[int]) -> None:
        """Index messages of a calendar mailbox whose structure names a text/calendar part,
        to be planned (parsed, their first alarm found) by the next firing round."""
        ordered = sorted(set(uids))
        at = calendarfire.epoch(tx.at)
        for start in range(0, len(ordered), _BATCH):
            chunk = ordered[start : start + _BATCH]
            await tx.run(
                "INSERT OR REPLACE INTO calendar_objects (mailbox_id, uid, fired_through,"
                " next_alarm) SELECT m.mailbox_id, m.uid, ?, ? FROM messages m"
                " JOIN contents c ON c.id = m.content_id WHERE m.mailbox_id = ?"
                " AND m.uid IN (SELECT value FROM json_each(?))"
                " AND instr(lower(c.structure), ?) > 0",
                (at, at, mailbox_id, json.dumps(chunk), _CALENDAR_PART),
            )

    async def sync_calendar_index(self) -> int:
        """Index mailboxes annotated as calendars but not indexed yet (annotated while the
        ``[calendar]`` extra was missing). Returns how many became calendars."""
        if not _AVAILABLE or not await self._reader.execute_fetchall(
            _CANDIDATES, calendar.FOLDER_TYPE_ENTRIES
        ):
            return 0  # the usual case: no write at all

        async def body(tx: _Tx) -> int:
            candidates = [
                int(r[0]) for r in await tx.rows(_CANDIDATES, calendar.FOLDER_TYPE_ENTRIES)
            ]
            return sum([await self._recheck_calendar(tx, m) for m in candidates])

        return await self._write(body)

    # --- firing ------------------------------------------------------------------------------
    async def next_calendar_alarm(self) -> dt.datetime | None:
        """The earliest ``next_alarm`` of any object (None: nothing scheduled)."""
        row = await _one(self._reader, "SELECT min(next_alarm) FROM calendar_objects")
        return None if row is None or row[0] is None else calendarfire.instant(int(row[0]))

    async def fire_calendar_alarms(self, lookback: dt.timedelta) -> int:
        """Fire every alarm due by the store clock's now, earliest objects first, and plan
        newly indexed objects. Per batch: read and compute outside the writer lock, then
        one short transaction logging the CalendarAlarmFired changes and advancing the
        objects still as read. Alarms older than ``lookback`` (fallen due while no server
        ran) are skipped with a log line. Returns how many alarms fired."""
        if not _AVAILABLE:
            return 0
        fired = 0
        while True:
            now = calendarfire.epoch(self._now())
            rows = [tuple(r) for r in await self._reader.execute_fetchall(_DUE, (now, _FIRE_BATCH))]
            if not rows:
                return fired
            firings = await asyncio.to_thread(
                calendarfire.plan, rows, now, int(lookback.total_seconds())
            )
            fired += await self._write(
                functools.partial(self._apply_firings, firings=firings, now=now)
            )

    async def _apply_firings(self, tx: _Tx, *, firings: list[calendarfire.Firing], now: int) -> int:
        """The short transaction of a firing round: each object still as `calendarfire.plan` read it
        gets its changes logged and its times advanced; the others are left to the next
        round (read again)."""
        count = 0
        for f in firings:
            current = await tx.one(
                "SELECT fired_through, next_alarm FROM calendar_objects"
                " WHERE mailbox_id = ? AND uid = ?",
                (f.mailbox_id, f.uid),
            )
            if current is None or (current[0], current[1]) != (f.fired_through, f.next_was):
                continue  # gone, changed, or fired by another server meanwhile: read again
            calendarfire.log_firing(f)
            if f.alarms:
                mbox = await self._by_id(tx.db, f.mailbox_id)
                for a in f.alarms:
                    tx.emit(calendarfire.alarm_change(tx.at, mbox.ref, f.uid, a), mbox.owner)
                    count += 1
            await tx.run(
                "UPDATE calendar_objects SET fired_through = ?, next_alarm = ?"
                " WHERE mailbox_id = ? AND uid = ?",
                (now, f.next_alarm, f.mailbox_id, f.uid),
            )
        return count


_AVAILABLE = calendar.available()
