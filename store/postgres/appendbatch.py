"""A group of APPENDs written by one statement (issue 18: APPEND's CPU on PostgreSQL).

Owns: `AppendBatch._append_batch`, which store/postgres/groupcommit.py calls for a group
whose jobs are all APPENDs (`append.Appending`) under one key, i.e. by one user to one
target as named. When the target is the user's own selectable mailbox (the one-statement
path of `PostgresAppend._append_in`), the group's messages are written by that one
statement, in queue order, instead of one statement per APPEND: one round trip, one
statement's planning and executor start, one update of the mailbox row. Otherwise nothing
is written and the group runs job by job as before. Must not import imapd or notify.

What each APPEND gets is what it would get in the group job by job: UIDs and MODSEQs
ascending in queue order, one MODSEQ per APPEND (the row's HIGHESTMODSEQ goes up by the
group's size; a message's MODSEQ is set per message: `_append_own`'s ``back``); each
APPEND's MessagesAdded carries its own messages and the counts as they are after it (the
row's, less the later APPENDs' additions), its own origin and kind; one clock reading for
the group. The quota is
checked on the group's sum, under the quota roots' locks as for one APPEND: a refusal
raises and the group commit runs every APPEND again alone, so each gets its own answer
(store/postgres/groupcommit.py).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from store.changes import Change
from store.postgres.append import Appending, PostgresAppend, _own_target
from store.postgres.base import Mbox, Tx

Pending = list[tuple[Change, str | None]]


class AppendBatch(PostgresAppend):
    """`_append_batch` (see the module)."""

    if TYPE_CHECKING:  # provided by PostgresCalendar (store/postgres/calendar.py)

        async def _calendar_index(self, tx: Tx) -> None: ...

    async def _append_batch(
        self, conn: Any, batches: list[Appending]
    ) -> list[tuple[Any, Pending]] | None:
        """Write ``batches`` (one key's APPENDs, in queue order) in the open transaction of
        ``conn`` by one statement: per APPEND its result and its pending Changes; None when
        nothing was written (the target is not the user's own selectable mailbox). Raises
        as an APPEND does (QuotaRefused ...)."""
        first = batches[0]
        own = _own_target(first.mailbox)
        if own is None or any(b.user_id != first.user_id for b in batches):
            return None
        prepared = [p for b in batches for p in b.prepared]
        last = len(batches) - 1
        back = [last - i for i, b in enumerate(batches) for _ in b.prepared]
        at = self._now()
        tx = Tx(conn, at)
        row = await self._append_own(tx, own, first.user_id, first.mailbox, prepared, back)
        if row is None:
            return None
        dest = Mbox.from_row(row)
        ref = dest.ref
        content_ids = list(row[16])
        self._quota_seen(first.user_id, bool(row[17]))
        if row[17]:  # RFC 9208 §4.3.1: the group's sum; a refusal rolls the group back
            await self._quota(
                tx,
                {ref.id: (len(prepared), sum(p.size for p in prepared))},
                first.origin,
                applied=True,
            )
        jobs: list[tuple[Tx, Any]] = []
        counts = dest.counts
        end = len(prepared)
        for batch in reversed(batches):  # counts after each APPEND: the row's less the later
            start = end - len(batch.prepared)
            job = Tx(conn, at)
            result = self._appended(
                job, ref, counts, batch.prepared, content_ids[start:end], batch.origin, batch.kind
            )
            jobs.append((job, result))
            added = batch.prepared
            counts = dataclasses.replace(
                counts,
                messages=counts.messages - len(added),
                unseen=counts.unseen - sum(not p.seen for p in added),
                uidnext=counts.uidnext - len(added),
                size=counts.size - sum(p.size for p in added),
                deleted=counts.deleted - sum(p.deleted for p in added),
                highestmodseq=counts.highestmodseq - 1,
            )
            end = start
        jobs.reverse()
        jobs[0][0].pending[:0] = tx.pending  # the quota's Changes (if any) first, as alone
        for job, _ in jobs:
            await self._calendar_index(job)  # store/postgres/calendar.py
        return [(result, job.pending) for job, result in jobs]
