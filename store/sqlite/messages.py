"""Messages in the SQLite store: `SqliteMessages`, the mixin of `SqliteStore` for what is in
a mailbox.

Owns: REPLACE (its APPEND part is store/sqlite/append.py's), FETCH rows and the
BODYSTRUCTURE cache, STORE, EXPUNGE, COPY/MOVE, SEARCH (compiled by store/sqlite/search.py),
QRESYNC's vanished UIDs, retention and expiry (store/expire.py, store/sqlite/expire.py), and
the quota accounting of these changes (store/quota.py, store/sqlite/quota.py). A UID set
travels as one JSON array of ranges (store/ranges.py). Must not import imapd or notify.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from store import acl as aclrules
from store import expire, mime, names, newmessage
from store import flags as flagrules
from store.api import (
    CONTENT_COLUMNS,
    HEADER_ROW_MAX,
    PLAIN_COLUMNS,
    AppendResult,
    CopyResult,
    Criterion,
    MessageRecord,
    NewMessage,
    StoreFlagsResult,
)
from store.changes import (
    Counts,
    FlagChange,
    FlagsChanged,
    MessageFacts,
    MessagesAdded,
    MessagesExpunged,
    Origin,
)
from store.errors import MailboxNotFound, MessageGone
from store.mime import BodyPart
from store.ranges import number_ranges
from store.sqlite import expire as expire_sql
from store.sqlite import quota as quota_sql
from store.sqlite import search
from store.sqlite.append import SqliteAppend
from store.sqlite.base import (
    _COUNTS,
    _FACTS,
    Row,
    _facts,
    _one,
    _rows,
    _Tx,
)

STRUCTURE_CACHE = 256  # parsed BODYSTRUCTUREs kept by content id (contents never change)

# A UID set as one JSON array of [low, high] ranges driving a PK range seek per range.
_IN_RANGES = "json_each(?) AS r CROSS JOIN messages AS m"
_RANGE_MATCH = "m.mailbox_id = ? AND m.uid BETWEEN r.value->>0 AND r.value->>1"


#: `fetch_plain`'s columns that are not ``m.<name>``.
_ROW_COLUMN = {
    "wire": "w.wire",
    # The header block from its own table (migration 0015_content_header), never touching
    # the message; a contents row without one (a block over 64 KiB) cut from the message.
    "header": "coalesce(h.header, (SELECT CASE WHEN x.header_len <= "
    f"{HEADER_ROW_MAX} THEN substr(x.raw, 1, x.header_len) END"
    " FROM contents AS x WHERE x.id = m.content_id))",
    "raw": "c.raw",
}


def _allowed_flags(row: Row, rights: str) -> Row:
    """A ``_FACTS`` row (and what follows) with only the flags ``rights`` let a user set
    (RFC 4314 §4 COPY/APPEND: \\Seen needs s, \\Deleted t, any other flag w)."""
    kept = aclrules.settable(flagrules.from_text(row[2]), rights)
    return (
        *row[:2],
        flagrules.to_text(kept),
        row[3],
        row[4],
        row[5],
        "\\Seen" in kept,
        "\\Deleted" in kept,
        *row[8:],
    )


class SqliteMessages(SqliteAppend):
    """REPLACE, FETCH, STORE, EXPUNGE, COPY/MOVE, SEARCH and expiry (see the module); APPEND
    is `SqliteAppend`'s (store/sqlite/append.py)."""

    # --- removal and quota accounting (RFC 9208; store/quota.py) ----------------------------
    async def _remove(
        self, tx: _Tx, mbox_id: int, rows: list[Row], *, record: bool
    ) -> tuple[Counts, int]:
        """Delete the messages of ``rows`` (``_FACTS`` rows) from a mailbox, adjusting its
        counters with one new modseq; ``record`` keeps them in ``expunged`` for QRESYNC."""
        uids = json.dumps([row[0] for row in rows])
        row = await tx.one(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1, messages = messages - ?,"
            " unseen = unseen - ?, size = size - ?, deleted = deleted - ? WHERE id = ? " + _COUNTS,
            (
                len(rows),
                sum(not r[6] for r in rows),
                sum(r[3] for r in rows),
                sum(r[7] for r in rows),
                mbox_id,
            ),
        )
        assert row is not None
        counts = Counts(*row)
        await tx.run(
            "DELETE FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
            (mbox_id, uids),
        )
        if record:
            await tx.run(
                "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
                " SELECT ?, value, ? FROM json_each(?)",
                (mbox_id, counts.highestmodseq, uids),
            )
        return counts, counts.highestmodseq

    async def _quota(
        self, tx: _Tx, deltas: dict[int, tuple[int, int]], origin: Origin, *, applied: bool
    ) -> None:
        """Apply the quota rules to a transaction's (messages, octets) per mailbox: raises
        QuotaRefused, or emits the QuotaChanged(kind="within") of roots no longer full."""
        for change in await quota_sql.settle(tx.db, deltas, tx.at, origin, applied=applied):
            tx.emit(change, change.user)

    async def replace(
        self,
        mailbox_id: int,
        uid: int,
        user_id: int,
        target: str | int,
        message: NewMessage,
        origin: Origin,
        *,
        need: str = "",
    ) -> AppendResult:
        """REPLACE (RFC 8508): append ``message`` to ``target`` and expunge ``uid`` from
        ``mailbox_id`` in one transaction, emitting MessagesAdded ("append") then
        MessagesExpunged ("expunge"). ``target``/``need`` as `append`'s. Raises MessageGone
        when ``uid`` no longer exists (nothing is appended), and as `append` does."""
        if newmessage.parse_off_loop([message.content]):
            prepared = await self._prepare_off_loop(message)
        else:
            prepared = self._prepare(message)

        async def body(tx: _Tx) -> AppendResult:
            source = await self._by_id(tx.db, mailbox_id)
            rows = await tx.rows(
                "SELECT " + _FACTS + ", m.content_id FROM messages AS m"
                " JOIN contents AS c ON c.id = m.content_id"
                " WHERE m.mailbox_id = ? AND m.uid = ?",
                (mailbox_id, uid),
            )
            if not rows:
                raise MessageGone("The message to replace has been expunged")
            removing = (mailbox_id, *rows[0])
            result = await tx.call(
                lambda sync: self._append_sync(
                    sync, user_id, target, [prepared], origin, "append", need, removing
                )
            )
            counts, modseq = await self._remove(tx, mailbox_id, rows, record=True)
            facts = tuple(_facts(r, content_id=r[8]) for r in rows)
            tx.emit(
                MessagesExpunged(0, tx.at, origin, source.ref, counts, facts, modseq, "expunge"),
                source.owner,
            )
            return result

        return await self._write(body)

    def _structure(self, content_id: int, text: str) -> BodyPart:
        found = self._structures.get(content_id)
        if found is None:
            found = mime.structure_from_json(text)
            self._remember_structure(content_id, found)
        else:
            self._structures.move_to_end(content_id)
        return found

    def _remember_structure(self, content_id: int, part: BodyPart) -> None:
        cache = self._structures
        cache[content_id] = part
        cache.move_to_end(content_id)
        if len(cache) > STRUCTURE_CACHE:
            cache.popitem(last=False)

    async def fetch(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        *,
        content: bool = False,
        structure: bool = False,
        changedsince: int | None = None,
        wire: bool = False,
        header: bool = False,
    ) -> list[MessageRecord]:
        """Records of the existing messages among ``uids``, in UID order; ``changedsince``
        keeps only those with modseq > it. One query; contents joined only when asked, and
        a structure decoded only when asked or (``wire``) when no wire bytes are stored."""
        ranges = number_ranges(uids)
        if not ranges:
            return []
        select = "SELECT m.uid, m.modseq, m.flags, m.internaldate, m.size, m.savedate, m.content_id"
        join = ""
        if content or structure or wire or header:
            join = " JOIN contents AS c ON c.id = m.content_id"
        # Columns 7.. : raw, structure, wire, header, each present only when asked.
        select += ", c.raw" if content else ", NULL"
        if structure:
            select += ", c.structure"
        elif wire:
            select += ", CASE WHEN w.wire IS NULL THEN c.structure END"
        else:
            select += ", NULL"
        if wire:
            select += ", w.wire"
            join += " LEFT JOIN content_wire AS w ON w.id = m.content_id"
        else:
            select += ", NULL"
        if header:  # its own table when stored there (migration 0015_content_header)
            select += ", coalesce(h.header, substr(c.raw, 1, c.header_len))"
            join += " LEFT JOIN content_header AS h ON h.id = m.content_id"
        else:
            select += ", NULL"
        where = " AND m.modseq > ?" if changedsince is not None else ""
        params: list[object] = [json.dumps(ranges), mailbox_id]
        if changedsince is not None:
            params.append(changedsince)
        rows = await _rows(
            self._reader,
            select
            + " FROM "
            + _IN_RANGES
            + join
            + " WHERE "
            + _RANGE_MATCH
            + where
            + " ORDER BY m.uid",
            params,
        )
        parsed: dict[int, BodyPart] = {}
        if structure or wire:
            fresh = {r[6]: r[8] for r in rows if r[8] is not None and r[6] not in self._structures}
            if sum(map(len, fresh.values())) > newmessage.PARSE_IN_THREAD:
                # Thousands of parts or addresses: decoding is dear, do it off the loop.
                parsed = await asyncio.to_thread(
                    lambda: {k: mime.structure_from_json(v) for k, v in fresh.items()}
                )
                for content_id, part in parsed.items():
                    self._remember_structure(content_id, part)
        fromiso = dt.datetime.fromisoformat
        return [
            MessageRecord(
                uid=r[0],
                modseq=r[1],
                flags=tuple(r[2].split()),
                internaldate=fromiso(r[3]),
                size=r[4],
                savedate=fromiso(r[5]),
                content_id=r[6],
                content=r[7],
                structure=(parsed.get(r[6]) or self._structure(r[6], r[8]))
                if r[8] is not None
                else None,
                wire=r[9],
                header=r[10],
            )
            for r in rows
        ]

    async def fetch_expunged(
        self, facts: Sequence[MessageFacts], *, content: bool = False, structure: bool = False
    ) -> list[MessageRecord]:
        """Records of messages already expunged, from the facts their MessagesExpunged
        carried (for a session not yet told of it: RFC 2180 §4.1.1). Without ``content`` or
        ``structure`` every one is served; with either, only those whose contents row still
        exists (shared by a copy or a MOVE). In UID order."""
        ordered = sorted(facts, key=lambda f: f.uid)
        found: dict[int, tuple[int, bytes, str]] = {}
        if content or structure:
            ids = sorted({f.content_id for f in ordered if f.content_id is not None})
            rows = (
                await _rows(
                    self._reader,
                    "SELECT c.id, c.raw, c.structure FROM contents AS c"
                    " WHERE c.id IN (SELECT value FROM json_each(?))",
                    (json.dumps(ids),),
                )
                if ids
                else []
            )
            found = {r[0]: (r[0], r[1], r[2]) for r in rows}
        out: list[MessageRecord] = []
        for f in ordered:
            row = found.get(f.content_id) if f.content_id is not None else None
            if (content or structure) and row is None:
                continue
            out.append(
                MessageRecord(
                    uid=f.uid,
                    modseq=f.modseq,
                    flags=f.flags,
                    internaldate=f.internaldate,
                    size=f.size,
                    content_id=f.content_id,
                    content=row[1] if content and row is not None else None,
                    structure=self._structure(row[0], row[2]) if structure and row else None,
                )
            )
        return out

    async def fetch_plain(
        self, mailbox_id: int, uids: Sequence[int], columns: Sequence[str] = PLAIN_COLUMNS
    ) -> list[tuple[Any, ...]]:
        """``(uid, *columns)`` of the existing messages among ``uids``, in UID order, as
        SQLite returns them: the FETCH (UID FLAGS) hot path of synchronising clients, with
        no record objects and no date parsing. Only the columns asked for are read (each
        costs as much as a whole row's worth of the rest), and one range (``1:*``) is one
        primary-key range scan, without the ranges table and its sort."""
        unknown = set(columns) - set(PLAIN_COLUMNS) - set(CONTENT_COLUMNS)
        if unknown:
            raise ValueError(f"not a plain column: {sorted(unknown)}")
        ranges = number_ranges(uids)
        if not ranges:
            return []
        select = "SELECT " + ", ".join(["m.uid", *(_ROW_COLUMN.get(c, "m." + c) for c in columns)])
        # The contents' columns (issue 17: FETCH rendered from rows) in the same query.
        if "raw" in columns:
            select += " FROM messages AS m JOIN contents AS c ON c.id = m.content_id"
        else:
            select += " FROM messages AS m"
        if "header" in columns:
            select += " LEFT JOIN content_header AS h ON h.id = m.content_id"
        if "wire" in columns:
            select += " LEFT JOIN content_wire AS w ON w.id = m.content_id"
        if len(ranges) == 1:
            ((low, high),) = ranges
            sql = select + " WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid"
            return await _rows(self._reader, sql, (mailbox_id, low, high))
        sql = select.replace(" FROM messages AS m", " FROM " + _IN_RANGES, 1)
        sql += " WHERE " + _RANGE_MATCH + " ORDER BY m.uid"
        return await _rows(self._reader, sql, [json.dumps(ranges), mailbox_id])

    async def deleted_size(self, mailbox_id: int) -> int:
        """Octets an EXPUNGE would free: the sizes of the \\Deleted messages (RFC 9208
        §4.1.4 allows this sum for DELETED-STORAGE); read on the (mailbox, deleted) index."""
        row = await _one(
            self._reader,
            "SELECT COALESCE(SUM(size), 0) FROM messages WHERE mailbox_id = ? AND deleted = 1",
            (mailbox_id,),
        )
        return int(row[0]) if row else 0

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: Sequence[str],
        origin: Origin,
        *,
        unchangedsince: int | None = None,
        kind: str = "store",
    ) -> StoreFlagsResult:
        """mode: "+" add, "-" remove, "" replace. Changed messages share one new modseq;
        unchanged ones get none and no FlagChange. Raises MailboxNotFound, ValueError (mode)."""
        if mode not in {"+", "-", ""}:
            raise ValueError(f"bad STORE mode {mode!r}")
        given = flagrules.canonical_flags(flags)
        ranges = number_ranges(uids)

        async def body(tx: _Tx) -> StoreFlagsResult:
            mbox = await self._by_id(tx.db, mailbox_id)
            if not ranges:
                return StoreFlagsResult((), {})
            rows = await tx.rows(
                "SELECT m.uid, m.modseq, m.flags, c.message_id FROM "
                + _IN_RANGES
                + " JOIN contents AS c ON c.id = m.content_id WHERE "
                + _RANGE_MATCH
                + " ORDER BY m.uid",
                (json.dumps(ranges), mailbox_id),
            )
            modseq = mbox.highestmodseq + 1
            current: dict[int, tuple[tuple[str, ...], int]] = {}
            modified: list[int] = []
            changes: list[FlagChange] = []
            updates: list[tuple[object, ...]] = []
            unseen_delta = deleted_delta = 0
            for uid, old_modseq, text, message_id in rows:
                old = flagrules.from_text(text)
                current[uid] = (old, old_modseq)
                if unchangedsince is not None and old_modseq > unchangedsince:
                    modified.append(uid)  # RFC 7162 §3.1.3
                    continue
                new, added, removed = flagrules.apply(mode, old, given)
                if not added and not removed:
                    continue
                seen, deleted = "\\Seen" in new, "\\Deleted" in new
                unseen_delta += ("\\Seen" in old) - seen
                deleted_delta += deleted - ("\\Deleted" in old)
                current[uid] = (new, modseq)
                changes.append(FlagChange(uid, modseq, new, added, removed, message_id))
                updates.append((flagrules.to_text(new), seen, deleted, modseq, mailbox_id, uid))
            if not changes:
                return StoreFlagsResult((), current, tuple(modified))
            await tx.many(
                "UPDATE messages SET flags = ?, seen = ?, deleted = ?, modseq = ?"
                " WHERE mailbox_id = ? AND uid = ?",
                updates,
            )
            row = await tx.one(
                "UPDATE mailboxes SET highestmodseq = ?, unseen = unseen + ?,"
                " deleted = deleted + ? WHERE id = ? " + _COUNTS,
                (modseq, unseen_delta, deleted_delta, mailbox_id),
            )
            assert row is not None
            tx.emit(
                FlagsChanged(0, tx.at, origin, mbox.ref, Counts(*row), tuple(changes), kind),
                mbox.owner,
            )
            return StoreFlagsResult(tuple(changes), current, tuple(modified))

        return await self._write(body)

    async def expunge(
        self,
        mailbox_id: int,
        origin: Origin,
        uids: Sequence[int] | None = None,
        *,
        kind: str = "expunge",
    ) -> tuple[int, ...]:
        """Remove messages flagged \\Deleted (restricted to ``uids`` when given: UID
        EXPUNGE). Returns the removed UIDs, ascending; remembered with their new modseq.
        ``kind`` (expunge|expire) is the MessagesExpunged kind. Raises MailboxNotFound."""
        ranges = None if uids is None else number_ranges(uids)
        if ranges == []:
            return ()

        async def body(tx: _Tx) -> tuple[int, ...]:
            mbox = await self._by_id(tx.db, mailbox_id)
            join = " JOIN contents AS c ON c.id = m.content_id"
            if ranges is None:
                rows = await tx.rows(
                    "SELECT "
                    + _FACTS
                    + ", m.content_id FROM messages AS m"
                    + join
                    + " WHERE m.mailbox_id = ? AND m.deleted = 1 ORDER BY m.uid",
                    (mailbox_id,),
                )
            else:
                rows = await tx.rows(
                    "SELECT "
                    + _FACTS
                    + ", m.content_id FROM "
                    + _IN_RANGES
                    + join
                    + " WHERE "
                    + _RANGE_MATCH
                    + " AND m.deleted = 1 ORDER BY m.uid",
                    (json.dumps(ranges), mailbox_id),
                )
            if not rows:
                return ()
            counts, modseq = await self._remove(tx, mailbox_id, rows, record=True)
            facts = tuple(_facts(r, content_id=r[8]) for r in rows)
            tx.emit(
                MessagesExpunged(0, tx.at, origin, mbox.ref, counts, facts, modseq, kind),
                mbox.owner,
            )
            await self._quota(
                tx, {mailbox_id: (-len(rows), -sum(r[3] for r in rows))}, origin, applied=True
            )
            return tuple(f.uid for f in facts)

        return await self._write(body)

    async def copy_messages(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        user_id: int,
        target: str | int,
        origin: Origin,
        *,
        move: bool = False,
        need: str = "",
    ) -> CopyResult:
        """COPY/MOVE in one transaction; never partial. New UIDs in source UID order; flags
        and INTERNALDATE kept, the bytes shared. Copy into the same mailbox is allowed.
        ``target``: a client name of ``user_id`` or the id of the mailbox the caller
        resolved. ``need``: the rights ``user_id`` must have on it, checked in this
        transaction; those rights then keep only the flags they allow (RFC 4314 §4:
        \\Seen needs s, \\Deleted t, others w). Raises MailboxNotFound (source gone, or
        destination: handler adds TRYCREATE), NoPermission, MailboxInvalid (destination
        \\Noselect)."""
        ranges = number_ranges(uids)

        async def body(tx: _Tx) -> CopyResult:
            source = await self._by_id(tx.db, mailbox_id)
            dest, rights = await self._target(tx, user_id, target, need)
            rows = (
                await tx.rows(
                    "SELECT "
                    + _FACTS
                    + ", m.internal_epoch, m.content_id FROM "
                    + _IN_RANGES
                    + " JOIN contents AS c ON c.id = m.content_id WHERE "
                    + _RANGE_MATCH
                    + " ORDER BY m.uid",
                    (json.dumps(ranges), mailbox_id),
                )
                if ranges
                else []
            )
            if not rows:
                return CopyResult(dest.uidvalidity, (), ())
            added = rows if rights is None else [_allowed_flags(r, rights) for r in rows]
            count = len(rows)
            octets = sum(r[3] for r in rows)
            deltas = {dest.id: (count, octets)}
            if move:  # a MOVE within one quota root changes no usage
                back = deltas.get(mailbox_id, (0, 0))
                deltas[mailbox_id] = (back[0] - count, back[1] - octets)
            within = await quota_sql.settle(tx.db, deltas, tx.at, origin)  # before any insert
            row = await tx.one(
                "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1,"
                " messages = messages + ?, unseen = unseen + ?, size = size + ?,"
                " deleted = deleted + ? WHERE id = ? " + _COUNTS,
                (
                    count,
                    count,
                    sum(not r[6] for r in added),
                    sum(r[3] for r in rows),
                    sum(r[7] for r in added),
                    dest.id,
                ),
            )
            assert row is not None
            counts = Counts(*row)
            first, modseq = counts.uidnext - count, counts.highestmodseq
            await tx.many(
                "INSERT INTO messages (mailbox_id, uid, modseq, seen, deleted, size,"
                " internal_epoch, internaldate, savedate, flags, content_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        dest.id,
                        first + i,
                        modseq,
                        r[6],
                        r[7],
                        r[3],
                        r[8],
                        r[4],
                        tx.at_iso,
                        r[2],
                        r[9],
                    )
                    for i, r in enumerate(added)
                ],
            )
            source_uids = tuple(r[0] for r in rows)
            facts = tuple(
                _facts(r, uid=first + i, modseq=modseq, content_id=r[9])
                for i, r in enumerate(added)
            )
            how = "move" if move else "copy"
            tx.emit(
                MessagesAdded(
                    0, tx.at, origin, dest.ref, counts, facts, how, source.ref, source_uids
                ),
                dest.owner,
            )
            if move:
                src_counts, src_modseq = await self._remove(tx, mailbox_id, rows, record=True)
                gone = tuple(_facts(r, content_id=r[9]) for r in rows)
                tx.emit(
                    MessagesExpunged(
                        0, tx.at, origin, source.ref, src_counts, gone, src_modseq, "move"
                    ),
                    source.owner,
                )
            for change in within:  # the source's root, left by a MOVE
                tx.emit(change, change.user)
            return CopyResult(
                dest.uidvalidity,
                source_uids,
                tuple(f.uid for f in facts),
                source_uids if move else (),
            )

        return await self._write(body)

    async def mailbox_keywords(self, mailbox_id: int) -> tuple[str, ...]:
        """Keywords in use: one row per distinct flags text (few), on the reader."""
        rows = await _rows(
            self._reader,
            "SELECT DISTINCT flags FROM messages WHERE mailbox_id = ?"
            " AND (' ' || flags) GLOB '* [^\\]*'",  # some token not starting with \\
            (mailbox_id,),
        )
        found: dict[str, str] = {}
        for row in rows:
            for flag in flagrules.keywords(flagrules.from_text(str(row[0]))):
                found.setdefault(flag.lower(), flag)
        return tuple(found.values())

    async def search(self, mailbox_id: int, criterion: Criterion) -> list[int]:
        """UIDs matching, ascending. Raises ValueError for an unknown key (a bug upstream)."""
        compiled = search.compile_criterion(criterion, self._now())
        join = " JOIN contents AS c ON c.id = m.content_id" if compiled.needs_content else ""
        if compiled.needs_search:
            join += " LEFT JOIN content_search AS s ON s.id = m.content_id"
        # One row, one string: no per-row work in Python (thousands of UIDs for UNSEEN).
        row = await _one(
            self._reader,
            "SELECT group_concat(uid) FROM (SELECT m.uid FROM messages AS m"
            + join
            + " WHERE m.mailbox_id = ? AND ("
            + compiled.sql
            + ") ORDER BY m.uid)",
            [mailbox_id, *compiled.params],
        )
        if row is None or row[0] is None:
            return []
        uids = list(map(int, str(row[0]).split(",")))
        uids.sort()  # already ascending; group_concat's order is not a documented promise
        return uids

    async def vanished_since(
        self, mailbox_id: int, modseq: int, uids: Sequence[tuple[int, int]] | None = None
    ) -> list[int]:
        """UIDs expunged with a modseq > ``modseq`` (restricted to ranges), for QRESYNC."""
        if uids is None:
            rows = await _rows(
                self._reader,
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                (mailbox_id, modseq),
            )
        else:
            if not uids:
                return []
            rows = await _rows(
                self._reader,
                "SELECT DISTINCT e.uid FROM json_each(?) AS r CROSS JOIN expunged AS e"
                " WHERE e.mailbox_id = ? AND e.uid BETWEEN r.value->>0 AND r.value->>1"
                " AND e.modseq > ? ORDER BY e.uid",
                (json.dumps([list(r) for r in uids]), mailbox_id, modseq),
            )
        return [r[0] for r in rows]

    # --- expiry (store/expire.py) ------------------------------------------------------------
    async def set_retention(self, user_id: int, name: str, days: int | None) -> None:
        """Set (or with None/0 clear) a mailbox's retention in days; no Change (nothing a
        client sees changes until messages expire). Raises MailboxNotFound, ValueError."""
        value = expire.check_days(days)
        name = names.canonical(name)

        async def body(tx: _Tx) -> None:
            row = await tx.one(
                "UPDATE mailboxes SET retention_days = ? WHERE owner_id = ? AND name = ?"
                " RETURNING id",
                (value, user_id, name),
            )
            if row is None:
                raise MailboxNotFound("Mailbox does not exist")

        await self._write(body)

    async def expire(self, now: dt.datetime | None = None) -> int:
        """Remove the messages older than their mailbox's retention (see store/expire.py):
        one transaction per mailbox, each publishing MessagesExpunged(kind="expire") with
        Origin(service="expire"). Returns how many messages were removed."""
        if now is not None and now.tzinfo is None:
            raise ValueError("expire needs an aware datetime")  # as the store clock must be
        when = self._now() if now is None else now
        origin = Origin(service="expire")
        total = 0
        for due in await expire_sql.due_mailboxes(self._reader):
            before = expire.cutoff(when, due.retention_days)

            async def body(tx: _Tx, due: expire.DueMailbox = due, before: str = before) -> int:
                try:
                    mbox = await self._by_id(tx.db, due.id)
                except MailboxNotFound:
                    return 0  # deleted since the list was read
                if mbox.retention_days != due.retention_days or not mbox.selectable:
                    return 0  # changed since: the next run uses the new value
                rows = await tx.rows(
                    "SELECT " + _FACTS + ", m.content_id FROM messages AS m JOIN contents AS c"
                    " ON c.id = m.content_id WHERE " + expire_sql.EXPIRED_WHERE + " ORDER BY m.uid",
                    (due.id, before),
                )
                if not rows:
                    return 0
                counts, modseq = await self._remove(tx, due.id, rows, record=True)
                facts = tuple(_facts(r, content_id=r[8]) for r in rows)
                tx.emit(
                    MessagesExpunged(0, tx.at, origin, mbox.ref, counts, facts, modseq, "expire"),
                    mbox.owner,
                )
                await self._quota(
                    tx, {due.id: (-len(rows), -sum(r[3] for r in rows))}, origin, applied=True
                )
                return len(rows)

            total += await self._write(body)
        return total
