"""Messages in the PostgreSQL store: `PostgresMessages`, the mixin of `PostgresStore` for
what is in a mailbox: FETCH, STORE, EXPUNGE, COPY/MOVE, SEARCH, QRESYNC's vanished UIDs,
with their quota accounting (store/postgres/quota.py). The PostgreSQL twin of
store/sqlite/messages.py; APPEND and REPLACE are in store/postgres/append.py.

Concurrency: every change to a mailbox's messages starts by updating (or locking) the
mailbox row, so changes to one mailbox are serialised and UIDs and MODSEQs are handed out in
commit order; contents are shared by copies and deleted with their last message.
Must not import imapd or notify.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

from store import acl as aclrules
from store import flags as flagrules
from store import mime, names, newmessage
from store.api import (
    CONTENT_COLUMNS,
    PLAIN_COLUMNS,
    CopyResult,
    Criterion,
    MessageRecord,
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
from store.errors import MailboxNotFound
from store.postgres import quota as quota_sql
from store.postgres import search, trigram
from store.postgres.base import (
    COUNTS,
    FACTS,
    PostgresBase,
    Row,
    Tx,
    facts,
    fetch_one,
)
from store.ranges import number_ranges
from store.textsearch import SENT_KEYS, TextMatcher

#: Messages of mailbox $1 whose UID lies in one of the ranges $2 (lows) .. $3 (highs).
_IN_RANGES = (
    "m.mailbox_id = $1 AND EXISTS (SELECT 1 FROM unnest($2::bigint[], $3::bigint[]) AS r(lo, hi)"
    " WHERE m.uid BETWEEN r.lo AND r.hi)"
    # The ranges ascend (store/ranges.py): their span bounds the primary key's index scan,
    # instead of testing every message of the mailbox against the ranges.
    " AND m.uid >= $2[1] AND m.uid <= $3[cardinality($3)]"
)


def _messages_first(where: str) -> str:
    """FROM the messages matching ``where`` in UID order, aliased ``m``, for a query that
    joins their contents: the narrow message rows are sorted, then each is joined (nested
    loop, the order kept), never the wide rows with their bodies (a sort of those copied
    every body once more; issue 18, FETCH BODY[])."""
    return " FROM (SELECT * FROM messages AS m WHERE " + where + " ORDER BY m.uid OFFSET 0) AS m"


#: `fetch_plain`'s columns that are not ``m.<name>``.
_ROW_COLUMN = {
    "wire": "w.wire",
    # Stored apart from raw (migration 0011_content_header), NULL over HEADER_ROW_MAX.
    "header": "c.header",
    "raw": "c.raw",
}


def _bounds(ranges: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
    return [r[0] for r in ranges], [r[1] for r in ranges]


def _allowed_flags(row: Row, rights: str) -> tuple[Any, ...]:
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


class _AnyUids(dict[int, list[int]]):
    """For a validating compile before any scan: every text leaf matches nothing."""

    def __missing__(self, key: int) -> list[int]:
        return []


class PostgresMessages(PostgresBase):
    """APPEND, FETCH, STORE, EXPUNGE, COPY/MOVE and expiry."""

    async def _remove(self, tx: Tx, mbox_id: int, rows: list[Row]) -> tuple[Counts, int]:
        """Delete ``rows`` (FACTS rows + content_id last) with one new modseq, recorded in
        ``expunged`` for QRESYNC; contents without a message left go too."""
        uids = [r[0] for r in rows]
        row = await tx.one(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1, messages = messages - $1,"
            " unseen = unseen - $2, size = size - $3, deleted = deleted - $4 WHERE id = $5 "
            + COUNTS,
            len(rows),
            sum(not r[6] for r in rows),
            sum(r[3] for r in rows),
            sum(bool(r[7]) for r in rows),
            mbox_id,
        )
        assert row is not None
        counts = Counts(*row)
        gone = await tx.rows(
            "DELETE FROM messages WHERE mailbox_id = $1"
            " AND uid = ANY($2::bigint[]) RETURNING content_id",
            mbox_id,
            uids,
        )
        await self._drop_contents(tx, [r[0] for r in gone])
        await tx.run(
            "INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, u, $2"
            " FROM unnest($3::bigint[]) AS u"
            " ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq",
            mbox_id,
            counts.highestmodseq,
            uids,
        )
        return counts, counts.highestmodseq

    async def _quota(
        self, tx: Tx, deltas: dict[int, tuple[int, int]], origin: Origin, *, applied: bool
    ) -> None:
        for change in await quota_sql.settle(tx.db, deltas, tx.at, origin, applied=applied):
            tx.emit(change, change.user)

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
        select += ", c.raw" if content else ", NULL::bytea"
        if structure:
            select += ", c.structure"
        elif wire:
            select += ", CASE WHEN w.wire IS NULL THEN c.structure END"
        else:
            select += ", NULL::text"
        if wire:
            select += ", w.wire"
            join += " LEFT JOIN content_wire AS w ON w.id = m.content_id"
        else:
            select += ", NULL::bytea"
        # Stored apart from raw (migration 0011_content_header) but for long blocks.
        header_sql = "coalesce(c.header, substring(c.raw from 1 for c.header_len))"
        select += ", " + header_sql if header else ", NULL::bytea"
        where = " AND m.modseq > $4" if changedsince is not None else ""
        params: list[object] = [mailbox_id, *_bounds(ranges)]
        if changedsince is not None:
            params.append(changedsince)
        source = (
            _messages_first(_IN_RANGES + where) + join
            if join
            else " FROM messages AS m WHERE " + _IN_RANGES + where
        )
        rows = await self._pool.fetch(select + source + " ORDER BY m.uid", *params)
        parse = mime.structure_from_json
        texts = {r[6]: r[8] for r in rows if r[8] is not None}
        if sum(map(len, texts.values())) > newmessage.PARSE_IN_THREAD:
            parsed = await asyncio.to_thread(lambda: {k: parse(v) for k, v in texts.items()})
        else:
            parsed = {k: parse(v) for k, v in texts.items()}
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
                content=None if r[7] is None else bytes(r[7]),
                structure=parsed.get(r[6]),
                wire=None if r[9] is None else bytes(r[9]),
                header=None if r[10] is None else bytes(r[10]),
            )
            for r in rows
        ]

    async def fetch_expunged(
        self, facts: Sequence[MessageFacts], *, content: bool = False, structure: bool = False
    ) -> list[MessageRecord]:
        ordered = sorted(facts, key=lambda f: f.uid)
        found: dict[int, Row] = {}
        if content or structure:
            ids = sorted({f.content_id for f in ordered if f.content_id is not None})
            rows = (
                await self._pool.fetch(
                    "SELECT id, raw, structure FROM contents WHERE id = ANY($1::bigint[])",
                    ids,
                )
                if ids
                else []
            )
            found = {r[0]: r for r in rows}
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
                    content=bytes(row[1]) if content and row is not None else None,
                    structure=mime.structure_from_json(row[2]) if structure and row else None,
                )
            )
        return out

    async def fetch_plain(
        self, mailbox_id: int, uids: Sequence[int], columns: Sequence[str] = PLAIN_COLUMNS
    ) -> list[tuple[Any, ...]]:
        unknown = set(columns) - set(PLAIN_COLUMNS) - set(CONTENT_COLUMNS)
        if unknown:
            raise ValueError(f"not a plain column: {sorted(unknown)}")
        ranges = number_ranges(uids)
        if not ranges:
            return []
        select = "SELECT " + ", ".join(["m.uid", *(_ROW_COLUMN.get(c, "m." + c) for c in columns)])
        join = ""
        if "header" in columns or "raw" in columns:  # issue 17: FETCH rendered from rows
            join += " JOIN contents AS c ON c.id = m.content_id"
        if "wire" in columns:
            join += " LEFT JOIN content_wire AS w ON w.id = m.content_id"
        if join:
            source = _messages_first(_IN_RANGES) + join
        else:
            source = " FROM messages AS m WHERE " + _IN_RANGES
        rows = await self._pool.fetch(
            select + source + " ORDER BY m.uid", mailbox_id, *_bounds(ranges)
        )
        return [tuple(r) for r in rows]

    async def deleted_size(self, mailbox_id: int) -> int:
        row = await fetch_one(
            self._pool,
            "SELECT coalesce(sum(size), 0)::bigint FROM messages WHERE mailbox_id = $1 AND deleted",
            mailbox_id,
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
        if mode not in {"+", "-", ""}:
            raise ValueError(f"bad STORE mode {mode!r}")
        given = flagrules.canonical_flags(flags)
        ranges = number_ranges(uids)

        async def body(tx: Tx) -> StoreFlagsResult:
            row = await tx.one(
                "SELECT highestmodseq FROM mailboxes WHERE id = $1 FOR UPDATE", mailbox_id
            )
            if row is None:
                raise MailboxNotFound("Mailbox no longer exists")
            mbox = await self._by_id(tx.db, mailbox_id)
            if not ranges:
                return StoreFlagsResult((), {})
            rows = await tx.rows(
                "SELECT m.uid, m.modseq, m.flags, c.message_id FROM messages AS m"
                " JOIN contents AS c ON c.id = m.content_id WHERE "
                + _IN_RANGES
                + " ORDER BY m.uid",
                mailbox_id,
                *_bounds(ranges),
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
                    modified.append(uid)
                    continue
                new, added, removed = flagrules.apply(mode, old, given)
                if not added and not removed:
                    continue
                seen, deleted = "\\Seen" in new, "\\Deleted" in new
                unseen_delta += ("\\Seen" in old) - seen
                deleted_delta += deleted - ("\\Deleted" in old)
                current[uid] = (new, modseq)
                changes.append(FlagChange(uid, modseq, new, added, removed, message_id))
                updates.append((flagrules.to_text(new), seen, deleted, uid))
            if not changes:
                return StoreFlagsResult((), current, tuple(modified))
            await tx.run(
                "UPDATE messages AS m SET flags = x.f, seen = x.s, deleted = x.d, modseq = $1"
                " FROM unnest($2::text[], $3::bool[], $4::bool[], $5::bigint[]) AS x(f, s, d, u)"
                " WHERE m.mailbox_id = $6 AND m.uid = x.u",
                modseq,
                [u[0] for u in updates],
                [u[1] for u in updates],
                [u[2] for u in updates],
                [u[3] for u in updates],
                mailbox_id,
            )
            row = await tx.one(
                "UPDATE mailboxes SET highestmodseq = $1, unseen = unseen + $2,"
                " deleted = deleted + $3 WHERE id = $4 " + COUNTS,
                modseq,
                unseen_delta,
                deleted_delta,
                mailbox_id,
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
        ranges = None if uids is None else number_ranges(uids)
        if ranges == []:
            return ()

        async def body(tx: Tx) -> tuple[int, ...]:
            if await tx.one("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", mailbox_id) is None:
                raise MailboxNotFound("Mailbox no longer exists")
            mbox = await self._by_id(tx.db, mailbox_id)
            select = (
                "SELECT " + FACTS + ", m.content_id FROM messages AS m"
                " JOIN contents AS c ON c.id = m.content_id WHERE "
            )
            if ranges is None:
                rows = await tx.rows(
                    select + "m.mailbox_id = $1 AND m.deleted ORDER BY m.uid", mailbox_id
                )
            else:
                rows = await tx.rows(
                    select + _IN_RANGES + " AND m.deleted ORDER BY m.uid",
                    mailbox_id,
                    *_bounds(ranges),
                )
            if not rows:
                return ()
            counts, modseq = await self._remove(tx, mailbox_id, rows)
            gone = tuple(facts(r, content_id=r[8]) for r in rows)
            tx.emit(
                MessagesExpunged(0, tx.at, origin, mbox.ref, counts, gone, modseq, kind), mbox.owner
            )
            await self._quota(
                tx, {mailbox_id: (-len(rows), -sum(r[3] for r in rows))}, origin, applied=True
            )
            return tuple(f.uid for f in gone)

        return await self._write(body)

    async def _lock_pair(self, tx: Tx, user_id: int, mailbox_id: int, target: int | str) -> None:
        """Lock the source mailbox's row and the target's (by id, or by name when it exists)
        in id order, so two transactions crossing the same pair cannot deadlock; the source
        must still exist."""
        dest_id = target
        if isinstance(target, str):
            found = await self._by_name(
                tx.db, *await self._locate(tx.db, user_id, names.canonical(target))
            )
            dest_id = found.id if found is not None else mailbox_id
        locked = await tx.rows(
            "SELECT id FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            [mailbox_id, dest_id],
        )
        if mailbox_id not in {r[0] for r in locked}:
            raise MailboxNotFound("Mailbox no longer exists")

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
        """COPY/MOVE in one transaction; never partial. ``target`` and ``need`` as in
        `append`. The source row is locked first, then the destination's."""
        ranges = number_ranges(uids)

        async def body(tx: Tx) -> CopyResult:
            # Both mailbox rows locked in id order (no deadlock with a copy the other way).
            await self._lock_pair(tx, user_id, mailbox_id, target)
            dest, rights = await self._target(tx, user_id, target, need)
            source = await self._by_id(tx.db, mailbox_id)
            rows = (
                await tx.rows(
                    "SELECT " + FACTS + ", m.internal_epoch, m.content_id, m.sent"
                    " FROM messages AS m"
                    " JOIN contents AS c ON c.id = m.content_id WHERE "
                    + _IN_RANGES
                    + " ORDER BY m.uid",
                    mailbox_id,
                    *_bounds(ranges),
                )
                if ranges
                else []
            )
            if not rows:
                return CopyResult(dest.uidvalidity, (), ())
            added = (
                [tuple(r) for r in rows]
                if rights is None
                else [_allowed_flags(r, rights) for r in rows]
            )
            count = len(rows)
            octets = sum(r[3] for r in rows)
            deltas = {dest.id: (count, octets)}
            if move:
                back = deltas.get(mailbox_id, (0, 0))
                deltas[mailbox_id] = (back[0] - count, back[1] - octets)
            within = await quota_sql.settle(tx.db, deltas, tx.at, origin)
            row = await tx.one(
                "UPDATE mailboxes SET uidnext = uidnext + $1, highestmodseq = highestmodseq + 1,"
                " messages = messages + $1, unseen = unseen + $2, size = size + $3,"
                " deleted = deleted + $4 WHERE id = $5 " + COUNTS,
                count,
                sum(not r[6] for r in added),
                octets,
                sum(bool(r[7]) for r in added),
                dest.id,
            )
            assert row is not None
            counts = Counts(*row)
            first, modseq = counts.uidnext - count, counts.highestmodseq
            await tx.run(
                "INSERT INTO messages (mailbox_id, uid, modseq, seen, deleted, size,"
                " internal_epoch, internaldate, savedate, flags, content_id, sent)"
                " SELECT $1, u, $2, s, d, z, e, i, $3, f, c, t FROM unnest($4::bigint[],"
                " $5::bool[], $6::bool[], $7::bigint[], $8::bigint[], $9::text[], $10::text[],"
                " $11::bigint[], $12::text[]) AS x(u, s, d, z, e, i, f, c, t)",
                dest.id,
                modseq,
                tx.at_iso,
                [first + i for i in range(count)],
                [bool(r[6]) for r in added],
                [bool(r[7]) for r in added],
                [r[3] for r in added],
                [r[8] for r in added],
                [r[4] for r in added],
                [r[2] for r in added],
                [r[9] for r in added],
                [r[10] for r in added],
            )
            source_uids = tuple(r[0] for r in rows)
            new_facts = tuple(
                facts(r, uid=first + i, modseq=modseq, content_id=r[9]) for i, r in enumerate(added)
            )
            how = "move" if move else "copy"
            tx.emit(
                MessagesAdded(
                    0, tx.at, origin, dest.ref, counts, new_facts, how, source.ref, source_uids
                ),
                dest.owner,
            )
            if move:
                src_counts, src_modseq = await self._remove(tx, mailbox_id, list(rows))
                gone = tuple(facts(r, content_id=r[9]) for r in rows)
                tx.emit(
                    MessagesExpunged(
                        0, tx.at, origin, source.ref, src_counts, gone, src_modseq, "move"
                    ),
                    source.owner,
                )
            for change in within:
                tx.emit(change, change.user)
            return CopyResult(
                dest.uidvalidity,
                source_uids,
                tuple(f.uid for f in new_facts),
                source_uids if move else (),
            )

        return await self._write(body)

    async def search(self, mailbox_id: int, criterion: Criterion) -> list[int]:
        """UIDs matching, ascending (store/postgres/search.py). Raises ValueError for an
        unknown key or a bad value (a bug upstream)."""
        search.compile_criterion(criterion, self._now(), _AnyUids())  # validate first
        search.validate(criterion)
        text_uids: dict[int, list[int]] = {}
        matcher = TextMatcher()
        unset: list[int] | None = None  # messages without ``sent`` (stored before it)
        for leaf in search.text_leaves(criterion):
            if leaf.name.upper() in SENT_KEYS:
                if unset is None:
                    rows = await self._pool.fetch(
                        "SELECT uid FROM messages WHERE mailbox_id = $1 AND sent IS NULL"
                        " ORDER BY uid",
                        mailbox_id,
                    )
                    unset = [int(r[0]) for r in rows]
                if unset:
                    text_uids[id(leaf)] = await self._scan(mailbox_id, matcher, leaf, unset)
                continue
            # Narrowed by the trigram index where it can (store/postgres/trigram.py).
            among = (
                await trigram.candidates(self._pool, mailbox_id, leaf)
                if trigram.indexed(leaf)
                else None
            )
            text_uids[id(leaf)] = await self._scan(mailbox_id, matcher, leaf, among)
        compiled = search.compile_criterion(criterion, self._now(), text_uids)
        rows = await self._pool.fetch(
            "SELECT m.uid FROM messages AS m WHERE m.mailbox_id = $1 AND ("
            + compiled.sql
            + ") ORDER BY m.uid",
            mailbox_id,
            *compiled.params,
        )
        return [int(r[0]) for r in rows]

    async def _scan(
        self, mailbox_id: int, matcher: TextMatcher, leaf: Criterion, among: list[int] | None
    ) -> list[int]:
        """The UIDs of the mailbox (or of ``among``, ascending) a text leaf matches:
        `search.SCAN_BATCH` messages a round trip, matched in a worker thread."""
        out: list[int] = []
        after = 0
        while True:
            if among is None:
                rows = await self._pool.fetch(
                    "SELECT m.uid, c.id, c.raw, c.structure FROM messages AS m JOIN contents AS c"
                    " ON c.id = m.content_id WHERE m.mailbox_id = $1 AND m.uid > $2"
                    " ORDER BY m.uid LIMIT $3",
                    mailbox_id,
                    after,
                    search.SCAN_BATCH,
                )
            else:
                chunk, among = among[: search.SCAN_BATCH], among[search.SCAN_BATCH :]
                rows = (
                    await self._pool.fetch(
                        "SELECT m.uid, c.id, c.raw, c.structure FROM messages AS m"
                        " JOIN contents AS c ON c.id = m.content_id WHERE m.mailbox_id = $1"
                        " AND m.uid = ANY($2::bigint[]) ORDER BY m.uid",
                        mailbox_id,
                        chunk,
                    )
                    if chunk
                    else []
                )
                if chunk and not rows:  # all expunged meanwhile: on to the next chunk
                    continue
            if not rows:
                return out
            batch = [(int(r[0]), int(r[1]), bytes(r[2]), str(r[3])) for r in rows]
            out += await search.in_thread(matcher, leaf, batch)
            after = batch[-1][0]

    async def mailbox_keywords(self, mailbox_id: int) -> tuple[str, ...]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT flags FROM messages WHERE mailbox_id = $1"
            " AND (' ' || flags) ~ ' [^\\\\]'",
            mailbox_id,
        )
        found: dict[str, str] = {}
        for row in rows:
            for flag in flagrules.keywords(flagrules.from_text(str(row[0]))):
                found.setdefault(flag.lower(), flag)
        return tuple(found.values())

    async def vanished_since(
        self, mailbox_id: int, modseq: int, uids: Sequence[tuple[int, int]] | None = None
    ) -> list[int]:
        if uids is None:
            rows = await self._pool.fetch(
                "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
                mailbox_id,
                modseq,
            )
        else:
            if not uids:
                return []
            rows = await self._pool.fetch(
                "SELECT e.uid FROM expunged AS e WHERE e.mailbox_id = $1 AND e.modseq > $4"
                " AND EXISTS (SELECT 1 FROM unnest($2::bigint[], $3::bigint[]) AS r(lo, hi)"
                " WHERE e.uid BETWEEN r.lo AND r.hi) ORDER BY e.uid",
                mailbox_id,
                [r[0] for r in uids],
                [r[1] for r in uids],
                modseq,
            )
        return [int(r[0]) for r in rows]
