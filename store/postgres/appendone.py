"""A lone APPEND committed in one round trip (issue 18: APPEND's CPU on PostgreSQL).

Owns: `AppendAlone._append_alone`, which store/postgres/groupcommit.py tries for a group of
one APPEND, and the deferral of LISTEN wake-ups while such a statement is in flight
(`_defer_notified`). Must not import imapd or notify.

Why: a lone APPEND to the user's own mailbox was four round trips (BEGIN, the APPEND's
statement, the change-log call, COMMIT), each a wake-up of the backend and of the event loop.
Here it is ONE statement sent outside any transaction (an implicit transaction: it commits
when it ends, or nothing of it does): the mailbox row updated, the message rows written
(`_append_own`'s statement), and, last in the statement, ``imapd_log_changes``
(migrations/0009) called with the MessagesAdded payload, which PostgreSQL completes from the
rows it just wrote (mailbox, counts, UIDs, MODSEQ, contents ids: `_PAYLOAD`) on a template
made here by `store.changes.to_json`. The advisory lock that orders the numbering is taken
by that call and released by the implicit COMMIT right after it, as before; a VOLATILE
function takes a fresh snapshot per statement, so its max(seq) sees every commit numbered
before it.

When it does not apply, nothing is written and the usual transaction runs
(`_transaction`): the target is not the user's own selectable mailbox (a shared, missing
or \\Noselect one), a quota root applies (the check under the roots' locks needs the
transaction: store/postgres/quota.py; a user whose last APPEND found one goes there at once,
`PostgresAppend._under_quota`), a message may hold a calendar object (the calendar
index, store/postgres/calendar.py), or this process does not follow the change log
(`follow_foreign_commits`: publication order then rests on the numbering alone, which this
path gives up; see below).

Publication: the seq is known only after COMMIT, so the slot (store/postgres/store.py) is
queued then, at its seq's place among the slots not yet published; a slot with a higher seq
published meanwhile read this commit back from change_log first (`_publish_locked`), so
order holds. The NOTIFY of this commit may reach the listener before the statement's answer:
while such statements are in flight, a wake-up is held (`_defer_notified`) and looked at
again when one ends: a seq of this process's is dropped, any other (foreign) below the
ended statement's seq, or any at all once none is in flight, wakes `publish_foreign`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from store import names
from store.changes import Counts, MailboxRef, to_json
from store.errors import StoreError
from store.postgres.append import _INSERT_ROWS, Appending, _insert_params, _own_target
from store.postgres.appendbatch import AppendBatch
from store.postgres.base import MBOX_COLUMNS, Mbox, Tx

if TYPE_CHECKING:
    from store.postgres.store import _Slot

log = logging.getLogger("store.postgres")

#: `store.postgres.calendar`'s test for a part the calendar index reads.
_CALENDAR_PART = '"calendar"'

#: The mailbox row as `_append_own` returns it, named (MBOX_COLUMNS has two ``name``).
_MB = (
    "mb(id, owner_id, owner, name, uidvalidity, uidnext, highestmodseq, messages, unseen,"
    " size, deleted, recent_uid, special_use, selectable, retention_days, quota_root_id)"
)

#: The MessagesAdded payload: the template $24 with the mailbox, its counts and each
#: message's UID, MODSEQ and contents id as written (`store.changes.to_json`'s fields).
_PAYLOAD = (
    "jsonb_set(jsonb_set(jsonb_set($24::jsonb, '{mailbox}', jsonb_build_object('id', mb.id,"
    " 'owner', mb.owner, 'name', mb.name, 'uidvalidity', mb.uidvalidity, 'special_use',"
    " to_jsonb(coalesce(regexp_split_to_array(nullif(btrim(mb.special_use), ''), '\\s+'),"
    " '{}'::text[])))), '{counts}', jsonb_build_object('messages', mb.messages, 'unseen',"
    " mb.unseen, 'uidnext', mb.uidnext, 'highestmodseq', mb.highestmodseq, 'size', mb.size,"
    " 'deleted', mb.deleted)), '{messages}', (SELECT jsonb_agg(x.e || jsonb_build_object("
    "'uid', mb.uidnext - $8 + x.n - 1, 'modseq', mb.highestmodseq, 'content_id', cn.id)"
    " ORDER BY x.n) FROM jsonb_array_elements($24::jsonb -> 'messages') WITH ORDINALITY"
    " AS x(e, n) JOIN cn ON cn.n = x.n))::text"
)

#: $9 (the commit time), once every row is written: an argument is evaluated before the call,
#: and reading a data-modifying CTE runs it to completion; unread, they would run after the
#: main query, i.e. with the numbering lock held (the GIN insert among them).
_AFTER_WRITES = (
    "CASE WHEN (SELECT count(*) FROM t) + (SELECT count(*) FROM p) + (SELECT count(*) FROM w)"
    " + (SELECT count(*) FROM ms) >= 0 THEN $9 END"
)

#: `_append_own`'s statement without a quota root, its change_log row numbered last.
_ALONE = (
    "WITH " + _MB + " AS (UPDATE mailboxes AS m SET uidnext = m.uidnext + $8,"
    " highestmodseq = m.highestmodseq + 1, messages = m.messages + $8,"
    " unseen = m.unseen + $18, size = m.size + $19, deleted = m.deleted + $20"
    " FROM users AS u WHERE {own} AND m.owner_id = $22 AND m.selectable"
    " AND u.id = m.owner_id AND NOT EXISTS (SELECT 1 FROM quota_roots AS q"
    " WHERE q.id = m.quota_root_id OR q.user_id = m.owner_id) RETURNING "
    + MBOX_COLUMNS
    + ", m.quota_root_id)"
    + _INSERT_ROWS
    + "SELECT mb.*, array(SELECT id FROM cn ORDER BY n),"
    " imapd_log_changes($23, ARRAY['MessagesAdded'], ARRAY[mb.owner], ARRAY["
    + _PAYLOAD
    + "], "
    + _AFTER_WRITES
    + ", $25) FROM mb"
)


class AppendAlone(AppendBatch):
    """`_append_alone` (see the module)."""

    _published: int | None
    _order: Any  # collections.deque[_Slot]
    _own_last: set[int]
    #: Lone APPEND statements in flight, and the LISTEN wake-ups held meanwhile.
    _alone: int
    _held: set[int]

    if TYPE_CHECKING:  # provided by PostgresStore (store/postgres/store.py)

        async def _drain(self) -> None: ...

        async def publish_foreign(self) -> int: ...

        _wakeups: set[asyncio.Task[int]]

    async def _append_alone(self, batch: Appending, answer: asyncio.Future[Any]) -> bool:
        """Commit ``batch`` in one statement and answer it; False when that does not apply
        (nothing written: the caller runs the usual transaction). Raises as an APPEND does."""
        own = _own_target(batch.mailbox)
        if (
            own is None
            or self._published is None
            or batch.user_id in self._under_quota
            or any(_CALENDAR_PART in p.structure.lower() for p in batch.prepared)
        ):
            return False
        from store.postgres.store import CHANNEL, COMMIT_LOCK, _Slot

        prepared = batch.prepared
        target = batch.mailbox if isinstance(batch.mailbox, int) else names.canonical(batch.mailbox)
        self._alone += 1
        first = 0
        try:
            async with self._pool.acquire() as conn:
                tx = Tx(conn, self._now())
                # The payload's template: this APPEND's MessagesAdded, its placeholders
                # (mailbox, counts, UIDs, MODSEQ, contents ids) replaced by `_PAYLOAD`.
                nobody = MailboxRef(0, "", "", 0)
                zero = Counts(0, 0, 0, 0, 0)
                ids = [0] * len(prepared)
                self._appended(tx, nobody, zero, prepared, ids, batch.origin, batch.kind)
                template = to_json(tx.pending.pop()[0])
                row = await tx.one(
                    _ALONE.replace("{own}", own),
                    *_insert_params(prepared, tx.at_iso),
                    sum(not p.seen for p in prepared),
                    sum(p.size for p in prepared),
                    sum(p.deleted for p in prepared),
                    target,
                    batch.user_id,
                    COMMIT_LOCK,
                    template,
                    CHANNEL,
                )
            if row is None:
                return False
            dest = Mbox.from_row(row)
            result = self._appended(
                tx, dest.ref, dest.counts, prepared, list(row[16]), batch.origin, batch.kind
            )
            first = int(row[17])
            changes = [dataclasses.replace(c, seq=first + i) for i, (c, _) in enumerate(tx.pending)]
            slot = _Slot(changes)
            self._queue_committed(slot)
        finally:
            self._alone -= 1
            self._release_held(first)

        def answered() -> None:
            if not answer.done():
                answer.set_result(result)

        slot.answer = answered
        try:
            await self._drain()
        except StoreError as exc:  # committed: the caller's answer stands (Unavailable)
            log.warning("publishing after COMMIT delayed: %s", exc.text)
        answered()
        return True

    def _queue_committed(self, slot: _Slot) -> None:
        """Queue a committed slot at its seq's place: before the waiting slots with higher
        seqs (none of them is published: the head waits for its COMMIT)."""
        slot.done = True
        seq = slot.changes[0].seq
        at = len(self._order)
        while at > 0 and (
            not self._order[at - 1].changes or self._order[at - 1].changes[0].seq > seq
        ):
            at -= 1
        self._order.insert(at, slot)
        self._own_last.add(slot.changes[-1].seq)

    def _defer_notified(self, seq: int) -> bool:
        """Hold a LISTEN wake-up while a lone APPEND is in flight (it may be its own)."""
        if self._alone <= 0:
            return False
        self._held.add(seq)
        return True

    def _release_held(self, first: int) -> None:
        """A lone APPEND ended (``first``: its seq, 0 if it wrote nothing): wake
        `publish_foreign` for the held seqs that are not this process's and cannot be a
        statement still in flight's (below ``first``, or any when none is in flight)."""
        if not self._held:
            return
        foreign = False
        for seq in list(self._held):
            if seq in self._own_last or (self._published is not None and seq <= self._published):
                self._held.discard(seq)
            elif self._alone == 0 or seq < first:
                self._held.discard(seq)
                foreign = True
        if foreign:
            task = asyncio.ensure_future(self.publish_foreign())
            self._wakeups.add(task)
            task.add_done_callback(self._wakeups.discard)
