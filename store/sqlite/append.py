"""APPEND in the SQLite store: `SqliteAppend`, the mixin of `SqliteStore` (through
`SqliteMessages`, store/sqlite/messages.py, whose REPLACE uses it) that adds messages.

Owns: preparing a NewMessage once (MIME parsed, structure, search texts, preview, FETCH's
pre-rendered answers: `_Prepared`), where that runs (on the event loop when small, else in a
worker thread or on the idle writer's thread), and the rows of an APPEND, written on the
writer's thread in one round trip (store/sqlite/synctx.py): the target and its rights, the
quota (store/sqlite/quota.py), the counters, the message rows through the ``message_in``
view, a spooled message's octets, the preview and the MessagesAdded Change. Must not import
imapd or notify.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from store import acl as aclrules
from store import flags as flagrules
from store import newmessage, parseproc
from store.api import AppendResult, NewMessage
from store.changes import Counts, MessageFacts, MessagesAdded, Origin
from store.sqlite import headers, search
from store.sqlite import quota as quota_sql
from store.sqlite.base import _COUNTS, Row, SqliteBase, _target_sync
from store.sqlite.synctx import SyncTx

#: APPENDs up to this many octets that would parse in a worker thread parse on the idle
#: writer's thread instead, in their write's round trip: one thread hop, not two. Bounds
#: what a write queued meanwhile waits for (~6 us per octet for hostile shapes).
PARSE_IN_WRITE = 64 * 1024

_INSERT_MESSAGE = (
    "INSERT INTO message_in (mailbox_id, uid, modseq, seen, deleted, size,"
    " internal_epoch, internaldate, savedate, flags, header_len, message_id,"
    " structure, raw, from_text, to_text, cc_text, bcc_text, subject_text, wire)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, %s, ?, ?, ?, ?, ?, ?)"
)
#: Octets copied per step from a spooled message's file into its contents row.
BLOB_CHUNK = 1024 * 1024


def _fill_raw(tx: SyncTx, mailbox_id: int, uid: int, path: Path, size: int) -> None:
    """Copy ``path`` into the raw of the message just inserted (empty so far), in chunks
    with SQLite's incremental blob I/O: never the whole message in memory, in the same
    transaction (so a MULTIAPPEND stays all or none, RFC 3502).

    The zeroblob is set only after the rows are in: SQLite materialises a zeroblob that
    passes through the insert view's trigger, and the refs UPDATE of the messages trigger
    rewrites the contents row, big value and all; both would cost the message's size twice
    in memory. Set on its own, as the row's last column, it stays a count of zeros."""
    row = tx.one(
        "SELECT content_id FROM messages WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid)
    )
    assert row is not None
    tx.run("UPDATE contents SET raw = zeroblob(?) WHERE id = ?", (size, row[0]))
    # On the connection's own thread (`SqliteMessages._append_sync`), as its statements run.
    with tx.conn.blobopen("contents", "raw", row[0]) as blob, path.open("rb") as f:
        while chunk := f.read(BLOB_CHUNK):
            blob.write(chunk)
    headers.fill_spooled(tx, row[0], path)  # its trigger saw no octets (issue 17)


def _in_process(content: bytes | Path) -> bool:
    """Whether ``content`` parses in a parse process (`parseproc.IN_PROCESS`)."""
    return isinstance(content, Path) and newmessage.octets(content) > parseproc.IN_PROCESS


def _quota_sync(
    tx: SyncTx, deltas: dict[int, tuple[int, int]], origin: Origin, *, applied: bool
) -> None:
    """`SqliteMessages._quota` on the writer's thread."""
    for change in quota_sql.settle_sync(tx.conn, deltas, tx.at, origin, applied=applied):
        tx.emit(change, change.user)


def _allowed(message: _Prepared, rights: str) -> _Prepared:
    """``message`` with only the flags ``rights`` let a user set (RFC 4314 §4)."""
    kept = aclrules.settable(message.flags, rights)
    if len(kept) == len(message.flags):
        return message
    return dataclasses.replace(
        message, flags=kept, seen="\\Seen" in kept, deleted="\\Deleted" in kept
    )


@dataclass(slots=True)
class _Prepared:
    """A NewMessage made ready outside the lock: flags canonical, MIME parsed once."""

    raw: bytes | Path  # a Path: the octets are in that file (`NewMessage.content`)
    size: int
    flags: tuple[str, ...]
    seen: bool
    deleted: bool
    internaldate: dt.datetime
    header_len: int
    structure: str
    message_id: str | None
    search_texts: tuple[str, ...]  # content_search, in search.STORED_KEYS order
    wire: bytes | None  # content_wire (store.api.Prerender), None without a renderer
    preview: str = ""  # content_preview (RFC 8970, store/sqlite/preview.py)


class SqliteAppend(SqliteBase):
    """APPEND, delivery and import (see the module)."""

    # --- messages ---------------------------------------------------------------------------
    def _prepare(self, message: NewMessage) -> _Prepared:
        p = newmessage.parse(message, self._now)
        # A spooled message was read whole for parsing, then dropped: the rows get it from
        # the file (`_fill_raw`).
        return _Prepared(
            raw=message.content,
            size=p.size,
            flags=p.flags,
            seen=p.seen,
            deleted=p.deleted,
            internaldate=p.internaldate,
            header_len=p.header_len,
            structure=p.structure,
            message_id=p.message_id,
            search_texts=search.search_texts(p.data, p.parsed),
            wire=self._prerender(p.parsed) if self._prerender is not None else None,
            preview=p.preview,
        )

    async def _prepare_off_loop(self, message: NewMessage) -> _Prepared:
        """`_prepare` away from the event loop: a big spooled message in a parse process
        (store/parseproc.py: its long C calls would hold the GIL, and its octets stay out
        of this process), else in a worker thread."""
        path = message.content
        if not isinstance(path, Path) or not _in_process(path):
            return await asyncio.to_thread(self._prepare, message)
        f = await parseproc.parse_spooled(path, search.search_texts)
        prerender = self._prerender
        wire = None if prerender is None else await asyncio.to_thread(prerender, f.parsed)
        flags = flagrules.canonical_flags(message.flags)
        return _Prepared(
            raw=path,
            size=f.size,
            flags=flags,
            seen="\\Seen" in flags,
            deleted="\\Deleted" in flags,
            internaldate=newmessage.internaldate(message, self._now),
            header_len=f.parsed.body_start,
            structure=f.structure,
            message_id=f.message_id,
            search_texts=f.extra,
            wire=wire,
            preview=f.preview,
        )

    async def append(
        self,
        user_id: int,
        mailbox: str | int,
        messages: Sequence[NewMessage],
        origin: Origin,
        *,
        kind: str = "append",
        need: str = "",
    ) -> AppendResult:
        """Atomic: all or none (MULTIAPPEND). Parses structure once and keeps it. ``kind``
        (append|deliver|import) is the MessagesAdded kind. ``mailbox``: a client name of
        ``user_id`` or the id of the mailbox the caller resolved. ``need``: the rights
        ``user_id`` must have on it, checked in the write transaction, whose rights then
        drop the flags they do not allow (RFC 4314 §4). Raises MailboxNotFound (handler
        adds TRYCREATE), NoPermission, MailboxInvalid for \\Noselect, ValueError for no
        messages."""
        if not messages:
            raise ValueError("nothing to append")
        prepared: list[_Prepared] = []

        def prepare() -> None:  # one message at a time: a spooled one is read whole
            if not prepared:
                prepared.extend(self._prepare(m) for m in messages)

        def body(tx: SyncTx) -> AppendResult:
            prepare()  # done already, unless parsed in the write's round trip (in a group)
            return self._append_sync(tx, user_id, mailbox, prepared, origin, kind, need)

        contents = [m.content for m in messages]
        if any(_in_process(c) for c in contents):
            prepared.extend([await self._prepare_off_loop(m) for m in messages])
            return await self._write_sync(body)
        if not newmessage.parse_off_loop(contents):
            prepare()
        elif self._writer_idle() and sum(map(newmessage.octets, contents)) <= PARSE_IN_WRITE:
            # Nothing else to commit: parsed on the writer's thread before its BEGIN, in
            # the write's own round trip (a hop to a worker thread saved).
            return await self._write_sync(body, before=prepare)
        else:
            await asyncio.to_thread(prepare)
        return await self._write_sync(body)  # one round trip to the writer's thread

    def _append_sync(
        self,
        tx: SyncTx,
        user_id: int,
        mailbox: str | int,
        prepared: list[_Prepared],
        origin: Origin,
        kind: str,
        need: str,
        removing: Row | None = None,
    ) -> AppendResult:
        """`append`'s work inside the caller's write transaction (APPEND, REPLACE), on the
        writer's thread (store/sqlite/synctx.py): no round trip per statement. ``removing``:
        REPLACE's source row (mailbox id first, then ``_FACTS``), about to be removed: the
        quota sees only the net change (RFC 8508 §3.4)."""
        count = len(prepared)
        dest, rights = _target_sync(tx, user_id, mailbox, need)  # any namespace
        kept = prepared if rights is None else [_allowed(p, rights) for p in prepared]
        if removing is not None:
            deltas = {dest.id: (count, sum(p.size for p in kept))}
            back = deltas.get(removing[0], (0, 0))
            deltas[removing[0]] = (back[0] - 1, back[1] - removing[4])
            _quota_sync(tx, deltas, origin, applied=False)
        row = tx.one(
            "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1,"
            " messages = messages + ?, unseen = unseen + ?, size = size + ?,"
            " deleted = deleted + ? WHERE id = ? " + _COUNTS,
            (
                count,
                count,
                sum(not p.seen for p in kept),
                sum(p.size for p in kept),
                sum(p.deleted for p in kept),
                dest.id,
            ),
        )
        assert row is not None
        counts = Counts(*row)
        ref = dest.ref
        if removing is None:
            # RFC 9208 §4.3.1: refused before any message row (the counters roll back).
            _quota_sync(tx, {ref.id: (count, sum(p.size for p in kept))}, origin, applied=True)
        first_uid, modseq = counts.uidnext - count, counts.highestmodseq
        rows = [
            (
                ref.id,
                first_uid + i,
                modseq,
                p.seen,
                p.deleted,
                p.size,
                int(p.internaldate.timestamp()),
                p.internaldate.isoformat(),
                tx.at_iso,
                flagrules.to_text(p.flags),
                p.header_len,
                p.message_id,
                p.structure,
                p.size if isinstance(p.raw, Path) else p.raw,
                *p.search_texts,
                p.wire,
            )
            for i, p in enumerate(kept)
        ]
        # the message_in view inserts contents, content_search, messages; then the contents
        # rows it inserted are read back: EMAILID in the events (store/objectid.py)
        plain = [r for r, p in zip(rows, kept, strict=True) if not isinstance(p.raw, Path)]
        new_ids = "SELECT uid, content_id FROM messages WHERE mailbox_id = ? AND uid >= ?"
        tx.many(_INSERT_MESSAGE % "?", plain)
        for i, p in enumerate(kept):
            if isinstance(p.raw, Path):  # the rows first, then the file's octets
                tx.run(_INSERT_MESSAGE % "X''", rows[i][:13] + rows[i][14:])
                _fill_raw(tx, ref.id, first_uid + i, p.raw, p.size)
        id_rows = tx.rows(new_ids, (ref.id, first_uid))
        ids: dict[int, int] = dict(id_rows)
        # --- RFC 8970 PREVIEW (store/sqlite/preview.py) ---
        tx.many(
            "INSERT INTO content_preview (id, preview) VALUES (?, ?)",
            [(ids[first_uid + i], p.preview) for i, p in enumerate(kept)],
        )
        # --- end PREVIEW ---
        facts = tuple(
            MessageFacts(
                first_uid + i,
                modseq,
                p.flags,
                p.size,
                p.internaldate,
                p.message_id,
                p.structure,
                ids.get(first_uid + i),
                p.wire,  # for the events of the published Change (store/changes.py)
            )
            for i, p in enumerate(kept)
        )
        tx.emit(MessagesAdded(0, tx.at, origin, ref, counts, facts, kind), ref.owner)
        return AppendResult(ref, tuple(f.uid for f in facts))
