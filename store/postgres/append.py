"""APPEND and REPLACE on PostgreSQL: `PostgresAppend`, the mixin of `PostgresStore` that
writes new messages (MIME parsed once, before the transaction: `_prepare`), split from
store/postgres/messages.py. The usual APPEND (the user's own selectable mailbox) is one
statement (`_append_own`); a group of them is one statement too
(store/postgres/appendbatch.py). The PostgreSQL twin of store/sqlite/append.py.
Must not import imapd or notify.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from store import acl as aclrules
from store import flags as flagrules
from store import names, namespace, newmessage, textsearch
from store.api import AppendResult, NewMessage
from store.changes import Counts, MailboxRef, MessageFacts, MessagesAdded, MessagesExpunged, Origin
from store.errors import MessageGone
from store.postgres.base import COUNTS, FACTS, MBOX_COLUMNS, Mbox, Row, Tx, facts
from store.postgres.messages import PostgresMessages

#: After a ``WITH mb AS (...)`` giving the target mailbox's ``id`` and its ``uidnext`` and
#: ``highestmodseq`` as they are after the APPEND: the rows of the new messages (contents,
#: content_text, content_preview, content_wire, messages) in one statement, one round trip
#: instead of five; ``cn`` numbers the new contents ids in insert order (identity values
#: ascend in it). Parameters $1..$17: `_insert_params`; a message's MODSEQ is ``mb``'s less
#: its ``back`` ($17: 0 but in a group written at once, store/postgres/appendbatch.py).
#: Nothing is written when ``mb`` is empty. Each INSERT returns a column, so that a statement
#: can read them all before a last step (store/postgres/appendone.py).
_INSERT_ROWS = (
    ", c AS (INSERT INTO contents (header_len, message_id, structure, raw)"
    " SELECT x.h, x.i, x.s, x.r FROM mb, unnest($1::int[], $2::text[], $3::text[],"
    " $4::bytea[]) WITH ORDINALITY AS x(h, i, s, r, n) ORDER BY x.n RETURNING id)"
    ", cn AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM c)"
    ", t AS (INSERT INTO content_text (id, text) SELECT cn.id, x.t FROM cn"
    " JOIN unnest($5::text[]) WITH ORDINALITY AS x(t, n) ON x.n = cn.n RETURNING id)"
    # --- RFC 8970 PREVIEW (store/postgres/preview.py) ---
    ", p AS (INSERT INTO content_preview (id, preview) SELECT cn.id, x.p FROM cn"
    " JOIN unnest($6::text[]) WITH ORDINALITY AS x(p, n) ON x.n = cn.n RETURNING id)"
    ", w AS (INSERT INTO content_wire (id, wire) SELECT cn.id, x.w FROM cn"
    " JOIN unnest($7::bytea[]) WITH ORDINALITY AS x(w, n) ON x.n = cn.n"
    " WHERE x.w IS NOT NULL RETURNING id)"
    ", ms AS (INSERT INTO messages (mailbox_id, uid, modseq, seen, deleted, size,"
    " internal_epoch, internaldate, savedate, flags, content_id, sent)"
    " SELECT mb.id, mb.uidnext - $8 + x.n - 1, mb.highestmodseq - x.back, x.s, x.d, x.z,"
    " x.e, x.i, $9, x.f, cn.id, x.sent FROM mb, cn JOIN unnest($10::bool[], $11::bool[],"
    " $12::bigint[], $13::bigint[], $14::text[], $15::text[], $16::text[], $17::bigint[])"
    " WITH ORDINALITY AS x(s, d, z, e, i, f, sent, back, n) ON x.n = cn.n RETURNING uid) "
)


def _insert_params(
    kept: Sequence[_Prepared], at_iso: str, back: Sequence[int] | None = None
) -> tuple[object, ...]:
    """$1..$17 of `_INSERT_ROWS`."""
    return (
        [p.header_len for p in kept],
        [p.message_id for p in kept],
        [p.structure for p in kept],
        [p.raw for p in kept],
        [p.text for p in kept],
        [p.preview for p in kept],
        [p.wire for p in kept],
        len(kept),
        at_iso,
        [p.seen for p in kept],
        [p.deleted for p in kept],
        [p.size for p in kept],
        [int(p.internaldate.timestamp()) for p in kept],
        [p.internaldate.isoformat() for p in kept],
        [flagrules.to_text(p.flags) for p in kept],
        [p.sent for p in kept],
        list(back) if back is not None else [0] * len(kept),
    )


def _own_target(mailbox: str | int) -> str | None:
    """The condition on ``m`` (the mailboxes row, $21 the target, $22 the user) of
    `_append_in`'s one-statement path: by id, or by a name in the user's personal namespace
    (the name owner-relative as it is; store/namespace.py), as `PostgresBase._target`
    resolves it. None for a name in another namespace: the general path resolves it."""
    if isinstance(mailbox, int):
        return "m.id = $21"
    if namespace.is_personal(mailbox):
        return "m.name = $21"
    return None


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
    raw: bytes
    size: int
    flags: tuple[str, ...]
    seen: bool
    deleted: bool
    internaldate: dt.datetime
    header_len: int
    structure: str
    message_id: str | None
    wire: bytes | None  # content_wire (store.api.Prerender), None without a renderer
    text: str  # content_text: textsearch.index_text, for the trigram index (trigram.py)
    preview: str = ""  # content_preview (RFC 8970, store/postgres/preview.py)
    sent: str = ""  # messages.sent: textsearch.sent_date, for SENT* (store/postgres/search.py)


@dataclass(frozen=True, slots=True)
class Appending:
    """One APPEND as a group commit may write it together with others
    (store/postgres/appendbatch.py)."""

    user_id: int
    mailbox: str | int
    prepared: list[_Prepared]
    origin: Origin
    kind: str


class PostgresAppend(PostgresMessages):
    """APPEND and REPLACE."""

    #: Users whose last APPEND here found a quota root: a lone APPEND of theirs goes the
    #: transaction's way at once (store/postgres/appendone.py) instead of first sending a
    #: statement that writes nothing. Only a shortcut: that statement checks by itself.
    _under_quota: set[int]

    def _quota_seen(self, user_id: int, applies: bool) -> None:
        if applies:
            self._under_quota.add(user_id)
        else:
            self._under_quota.discard(user_id)

    def _prepare(self, message: NewMessage) -> _Prepared:
        p = newmessage.parse(message, self._now)
        return _Prepared(
            raw=p.data,
            size=p.size,
            flags=p.flags,
            seen=p.seen,
            deleted=p.deleted,
            internaldate=p.internaldate,
            header_len=p.header_len,
            structure=p.structure,
            message_id=p.message_id,
            wire=self._prerender(p.parsed) if self._prerender is not None else None,
            text=textsearch.index_text(p.data, p.parsed),
            preview=p.preview,
            sent=textsearch.sent_date(p.data, p.parsed),
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
        """Atomic (MULTIAPPEND). ``mailbox``: a client name of ``user_id`` or a mailbox id;
        ``need``: rights checked in the transaction, which then drop the flags they do not
        allow (RFC 4314 §4). A spooled message (a Path) is read into memory here: no
        chunked large-value write yet (docs/postgresql.md)."""
        if not messages:
            raise ValueError("nothing to append")
        if newmessage.parse_off_loop(m.content for m in messages):
            prepared = await asyncio.to_thread(lambda: [self._prepare(m) for m in messages])
        else:  # small: cheaper than the thread hop
            prepared = [self._prepare(m) for m in messages]

        async def body(tx: Tx) -> AppendResult:
            return await self._append_in(tx, user_id, mailbox, prepared, origin, kind, need)

        # Concurrent APPENDs to one target share a COMMIT (store/postgres/groupcommit.py),
        # written by one statement when they can (store/postgres/appendbatch.py).
        batch = Appending(user_id, mailbox, prepared, origin, kind)
        return await self._write_grouped((user_id, mailbox), body, batch)

    async def _append_in(
        self,
        tx: Tx,
        user_id: int,
        mailbox: str | int,
        prepared: list[_Prepared],
        origin: Origin,
        kind: str,
        need: str,
        removing: Row | None = None,
    ) -> AppendResult:
        """`append`'s work inside the caller's transaction (APPEND, REPLACE). ``removing``:
        REPLACE's source row (mailbox id, then FACTS), about to be removed: the quota sees
        only the net change (RFC 8508 §3.4)."""
        count = len(prepared)
        own = _own_target(mailbox)
        if removing is None and own is not None:
            row = await self._append_own(tx, own, user_id, mailbox, prepared)
            if row is not None:
                dest = Mbox.from_row(row)
                counts, ref = dest.counts, dest.ref
                content_ids = list(row[16])
                self._quota_seen(user_id, bool(row[17]))
                if row[17]:  # RFC 9208 §4.3.1: refused, the transaction rolls back
                    await self._quota(
                        tx, {ref.id: (count, sum(p.size for p in prepared))}, origin, applied=True
                    )
                return self._appended(tx, ref, counts, prepared, content_ids, origin, kind)
        dest, rights = await self._target(tx, user_id, mailbox, need)
        kept = prepared if rights is None else [_allowed(p, rights) for p in prepared]
        if removing is not None:
            deltas = {dest.id: (count, sum(p.size for p in kept))}
            back = deltas.get(removing[0], (0, 0))
            deltas[removing[0]] = (back[0] - 1, back[1] - removing[4])
            await self._quota(tx, deltas, origin, applied=False)
        row = await tx.one(
            "UPDATE mailboxes SET uidnext = uidnext + $1,"
            " highestmodseq = highestmodseq + 1, messages = messages + $1,"
            " unseen = unseen + $2, size = size + $3, deleted = deleted + $4"
            " WHERE id = $5 " + COUNTS,
            count,
            sum(not p.seen for p in kept),
            sum(p.size for p in kept),
            sum(p.deleted for p in kept),
            dest.id,
        )
        assert row is not None
        counts = Counts(*row)
        ref = dest.ref
        if removing is None:  # RFC 9208 §4.3.1: refused before any message row
            await self._quota(
                tx, {ref.id: (count, sum(p.size for p in kept))}, origin, applied=True
            )
        row = await tx.one(
            "WITH mb AS (SELECT $18::bigint AS id, $19::bigint AS uidnext,"
            " $20::bigint AS highestmodseq)"
            + _INSERT_ROWS
            + "SELECT array(SELECT id FROM cn ORDER BY n)",
            *_insert_params(kept, tx.at_iso),
            ref.id,
            counts.uidnext,
            counts.highestmodseq,
        )
        assert row is not None
        return self._appended(tx, ref, counts, kept, list(row[0]), origin, kind)

    async def _append_own(
        self,
        tx: Tx,
        own: str,
        user_id: int,
        mailbox: str | int,
        prepared: Sequence[_Prepared],
        back: Sequence[int] | None = None,
    ) -> Row | None:
        """The usual APPEND in one statement (``own``: `_own_target`): the mailbox row updated
        (and locked) only when it is the user's own and selectable, where every right is held
        and no ACL is read, and the rows of ``prepared`` written; None when nothing was
        written (the general path decides). The row: `Mbox` columns, quota_root_id, the new
        contents ids in order, whether a quota root applies. ``back``: per message, how far
        below the row's new HIGHESTMODSEQ its MODSEQ is (a group written at once: each
        APPEND its own, store/postgres/appendbatch.py); the row's goes up by one more than
        the largest."""
        return await tx.one(
            "WITH mb AS (UPDATE mailboxes AS m SET uidnext = m.uidnext + $8,"
            " highestmodseq = m.highestmodseq + $23, messages = m.messages + $8,"
            " unseen = m.unseen + $18, size = m.size + $19, deleted = m.deleted + $20"
            " FROM users AS u WHERE "
            + own
            + " AND m.owner_id = $22 AND m.selectable AND u.id = m.owner_id RETURNING "
            + MBOX_COLUMNS
            + ", m.quota_root_id)"
            + _INSERT_ROWS
            + "SELECT mb.*, array(SELECT id FROM cn ORDER BY n), EXISTS (SELECT 1 FROM"
            " quota_roots AS q WHERE q.id = mb.quota_root_id OR q.user_id = mb.owner_id)"
            " FROM mb",
            *_insert_params(prepared, tx.at_iso, back),
            sum(not p.seen for p in prepared),
            sum(p.size for p in prepared),
            sum(p.deleted for p in prepared),
            mailbox if isinstance(mailbox, int) else names.canonical(mailbox),
            user_id,
            max(back, default=0) + 1 if back is not None else 1,
        )

    @staticmethod
    def _appended(
        tx: Tx,
        ref: MailboxRef,
        counts: Counts,
        kept: Sequence[_Prepared],
        content_ids: list[int],
        origin: Origin,
        kind: str,
    ) -> AppendResult:
        """The MessagesAdded of an APPEND whose rows are written, emitted; its result."""
        count = len(kept)
        first_uid, modseq = counts.uidnext - count, counts.highestmodseq
        added = tuple(
            MessageFacts(
                first_uid + i,
                modseq,
                p.flags,
                p.size,
                p.internaldate,
                p.message_id,
                p.structure,
                content_ids[i],  # EMAILID in the events (store/objectid.py)
            )
            for i, p in enumerate(kept)
        )
        tx.emit(MessagesAdded(0, tx.at, origin, ref, counts, added, kind), ref.owner)
        return AppendResult(ref, tuple(f.uid for f in added))

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
        when ``uid`` no longer exists (nothing is appended), and as `append` does.

        Locks: the target row (`_target`), then the source row; when they differ, both are
        locked first in id order, as COPY does, so two crossing REPLACEs cannot deadlock."""
        if newmessage.parse_off_loop([message.content]):
            prepared = await asyncio.to_thread(self._prepare, message)
        else:
            prepared = self._prepare(message)

        async def body(tx: Tx) -> AppendResult:
            await self._lock_pair(tx, user_id, mailbox_id, target)
            source = await self._by_id(tx.db, mailbox_id)
            rows = await tx.rows(
                "SELECT " + FACTS + ", m.content_id FROM messages AS m"
                " JOIN contents AS c ON c.id = m.content_id"
                " WHERE m.mailbox_id = $1 AND m.uid = $2",
                mailbox_id,
                uid,
            )
            if not rows:
                raise MessageGone("The message to replace has been expunged")
            result = await self._append_in(
                tx, user_id, target, [prepared], origin, "append", need, (mailbox_id, *rows[0])
            )
            counts, modseq = await self._remove(tx, mailbox_id, rows)
            gone = tuple(facts(r, content_id=r[8]) for r in rows)
            tx.emit(
                MessagesExpunged(0, tx.at, origin, source.ref, counts, gone, modseq, "expunge"),
                source.owner,
            )
            return result

        return await self._write(body)
