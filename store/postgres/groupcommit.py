"""Group commit on PostgreSQL: concurrent APPENDs to one mailbox, queued by different
sessions of this process, share one transaction and one COMMIT (one WAL flush), as the
SQLite store's writer does (store/sqlite/groupcommit.py, whose shape this mirrors).

Owns: the per-target queues of APPEND jobs and the task draining each (`GroupCommit`, a
mixin of `PostgresStore`, store/postgres/store.py). Must not import imapd or notify.

Why: every APPEND to a mailbox starts by updating its row, so concurrent APPENDs to it wait
for one another's COMMIT: one transaction, one WAL flush and a row-lock hand-over each, the
backends taking turns. Batched, the turn is taken once per group.

How a group runs:
- `_write_grouped(key, body)` queues the job under ``key`` (the APPEND's user and target,
  as the caller named it) and returns once its transaction committed (or failed). One drain
  task per key runs at a time; it takes every job queued so far (at most `GROUP_MAX`).
  While a group's COMMIT waits for its flush, the sessions go on queueing: the next group is
  whatever came meanwhile. No timer: a lone APPEND commits at once, in one round trip when
  it can (store/postgres/appendone.py), else by `_transaction` (the one-transaction path).
- A larger group: one connection, one ``BEGIN``, then all its jobs written at once when
  each carries a ``batch`` and `_append_batch` can (APPENDs to the user's own mailbox:
  store/postgres/appendbatch.py), else the jobs one after the other, each with its
  own `Tx` (its own clock reading, its own pending Changes), no savepoints: a savepoint per
  job cost a round trip per job and a subtransaction (its own XID, pg_subtrans) in
  PostgreSQL. Optimistic: if any job raises (quota exceeded, no right, mailbox gone or not
  selectable...), the group is rolled back as a whole and every job of it is run again
  alone, in queue order, by the one-transaction path (`_single`), which answers each caller
  as a lone APPEND would be answered (a refused quota's QuotaChanged("exceeded") logged by
  `_record_refusal`). A job's body is a closure over its prepared input: running it again
  after a ROLLBACK writes what the first run would have written.
- Numbering stays commit-ordered: the group's Changes, job after job, are numbered by one
  ``imapd_log_changes`` call right before COMMIT (under `COMMIT_LOCK`, held only for that
  and the COMMIT, as for a lone transaction; store/postgres/store.py). Job order is UID and
  MODSEQ order: the jobs update the mailbox row one after the other in one transaction.
- Locks: a group writes one mailbox (its key), so it takes what one APPEND takes, the
  mailbox row, then the quota roots, only held longer: no new lock cycle with other
  writers. Quotas stay exact across instances: a later job sums the group's earlier jobs
  (same transaction), another instance waits for the root's lock and sums the committed.
- If the connection is lost, or BEGIN, the ROLLBACK of a failed group, the numbering or COMMIT fail,
  nothing of the group committed and every job gets the error (a lost connection as
  `Unavailable`). Nothing is retried behind a caller's back.
- After COMMIT: each caller is answered in queue order right before the group's Changes are
  published (`_Slot.answer`, store/postgres/store.py), in seq order. An answer comes only
  after COMMIT returned: an acknowledged APPEND is durable (``synchronous_commit`` is left
  as PostgreSQL ships it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from store.changes import Change
from store.errors import StoreError
from store.postgres.base import PostgresBase, Tx
from store.postgres.pool import lost

if TYPE_CHECKING:
    from store.postgres.store import _Slot

T = TypeVar("T")

log = logging.getLogger("store.postgres")

#: Jobs committed together at most: bounds what one failing COMMIT takes down, how long the
#: first job of a group waits for the last, and what one failing job makes run again.
GROUP_MAX = 32

#: Opens a group. (Forcing generic plans here, SET LOCAL plan_cache_mode, made PostgreSQL
#: plan more, not less: 7 % of its APPEND CPU against 1 % without; its plan cache turns to
#: the generic plan by itself once one connection runs the statements.)
_BEGIN = "BEGIN"


@dataclass(slots=True)
class _Job:
    body: Callable[[Tx], Awaitable[Any]]
    answer: asyncio.Future[Any]
    batch: Any = None  # `_append_batch`'s input for this job (store/postgres/appendbatch.py)
    result: Any = None
    error: BaseException | None = None
    pending: list[tuple[Change, str | None]] = field(default_factory=list)


def _settle(job: _Job) -> None:
    """Answer a job's caller (unless the caller is gone: a cancelled future)."""
    if job.answer.done():
        return
    if job.error is not None:
        job.answer.set_exception(job.error)
    else:
        job.answer.set_result(job.result)


class GroupCommit(PostgresBase):
    """`_write_grouped` by group commit (see the module). The store provides the rest."""

    _closed: bool
    _inflight: set[asyncio.Task[Any]]
    #: key -> jobs queued for it; a key is present while its drain task runs.
    _grouped: dict[Hashable, deque[_Job]]

    if TYPE_CHECKING:  # provided by PostgresStore and its mixins (store/postgres/store.py)

        async def _transaction(
            self, body: Callable[[Tx], Awaitable[T]], answer: asyncio.Future[T]
        ) -> T: ...

        async def _calendar_index(self, tx: Tx) -> None: ...

        async def _numbered(self, tx: Tx) -> _Slot: ...

        async def _drain(self) -> None: ...

        async def _abandon(self, slot: _Slot) -> None: ...

        async def _append_batch(
            self, conn: Any, batches: list[Any]
        ) -> list[tuple[Any, list[tuple[Change, str | None]]]] | None: ...

        async def _append_alone(self, batch: Any, answer: asyncio.Future[Any]) -> bool: ...

        def _done(self, task: asyncio.Task[Any]) -> None: ...

    # --- the queues --------------------------------------------------------------------------
    async def _write_grouped(
        self, key: Hashable, body: Callable[[Tx], Awaitable[T]], batch: object = None
    ) -> T:
        """`_write` for a job that may share its transaction with the other jobs queued
        under ``key`` (see the module). A cancelled caller never cancels the transaction:
        the drain task runs it; the caller only waits for its answer."""
        if self._closed:
            raise StoreError("The store is closed")
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        queue = self._grouped.get(key)
        if queue is None:
            queue = self._grouped[key] = deque()
            task = asyncio.ensure_future(self._drain_key(key, queue))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        queue.append(_Job(body, answer, batch))
        result: T = await answer
        return result

    async def _drain_key(self, key: Hashable, queue: deque[_Job]) -> None:
        try:
            while queue:
                group = [queue.popleft() for _ in range(min(len(queue), GROUP_MAX))]
                try:
                    if len(group) == 1:
                        await self._single(group[0])
                    else:
                        await self._group(group)
                except BaseException as exc:
                    for job in group:
                        if job.error is None:
                            job.error = exc
                        _settle(job)
                    raise
        finally:
            # No await between the last look at the queue and this: a job queued later
            # finds no queue and starts a new drain task.
            del self._grouped[key]
            for job in queue:  # only after a failure above (a cancelled drain)
                job.error = StoreError("The store is closed")
                _settle(job)

    async def _single(self, job: _Job) -> None:
        """A group of one: an APPEND in one round trip when it can (`_append_alone`,
        store/postgres/appendone.py), else the one-transaction path (it answers the caller)."""
        try:
            if job.batch is not None and await self._append_alone(job.batch, job.answer):
                return
            await self._transaction(job.body, job.answer)
        except Exception as exc:  # noqa: BLE001 - handed to the caller through its answer
            job.error = exc
            _settle(job)

    # --- a group -----------------------------------------------------------------------------
    async def _group(self, group: list[_Job]) -> None:
        slot: _Slot | None = None
        retry = False
        try:
            async with self._pool.acquire() as conn:
                try:
                    await conn.execute(_BEGIN)
                    batched = await self._batched(conn, group)
                    if batched is None:
                        retry = True
                    elif not batched:
                        for job in group:
                            if not await self._one(conn, job):
                                retry = True
                                break
                    if retry:
                        await conn.execute("ROLLBACK")
                    else:
                        tx = Tx(conn, self._now())
                        tx.pending = [p for job in group for p in job.pending]
                        if tx.pending:
                            slot = await self._numbered(tx)
                        await conn.execute("COMMIT")
                except BaseException:
                    if not conn.is_closed() and conn.is_in_transaction():
                        await conn.execute("ROLLBACK")
                    raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the group
            if slot is not None:
                await self._abandon(slot)
            failed = lost(exc) or exc
            log.warning("group commit of %d APPENDs failed, none committed: %s", len(group), exc)
            for job in group:
                job.error = failed
                _settle(job)
            return
        except BaseException:  # cancelled (shutdown): nothing committed; the drain answers
            if slot is not None:
                await self._abandon(slot)
            raise
        if retry:  # nothing committed: each job alone, in queue order (see the module)
            for job in group:
                job.result, job.error, job.pending = None, None, []
                await self._single(job)
            return
        if slot is None:  # no job logged anything
            for job in group:
                _settle(job)
            return

        def answered() -> None:
            for job in group:
                _settle(job)

        slot.answer = answered
        slot.done = True
        try:
            await self._drain()
        except StoreError as exc:  # committed: the callers' answers stand (Unavailable)
            log.warning("publishing after COMMIT delayed: %s", exc.text)
        answered()

    async def _batched(self, conn: Any, group: list[_Job]) -> bool | None:
        """The whole group as one write when every job allows it (`_append_batch`): True
        when written (each job's result and Changes set), False when not (nothing written:
        job by job then), None when it raised (the group is rolled back and run again job
        by job). A lost connection takes the group down (raised)."""
        if any(job.batch is None for job in group):
            return False
        try:
            done = await self._append_batch(conn, [job.batch for job in group])
        except Exception as exc:
            if lost(exc) is not None or conn.is_closed():
                raise
            if not isinstance(exc, StoreError):  # a refusal (quota) is for the jobs to tell
                log.warning("a group's APPENDs as one statement failed; job by job", exc_info=True)
            return None
        if done is None:
            return False
        for job, (result, pending) in zip(group, done, strict=True):
            job.result, job.pending = result, pending
        return True

    async def _one(self, conn: Any, job: _Job) -> bool:
        """One job in the group's open transaction; False if it raised (the group is then
        rolled back and run again job by job). A lost connection takes the group down
        (raised)."""
        tx = Tx(conn, self._now())
        try:
            job.result = await job.body(tx)
            if tx.pending:
                await self._calendar_index(tx)  # store/postgres/calendar.py
        except Exception as exc:
            if lost(exc) is not None or conn.is_closed():
                raise
            return False
        job.pending = tx.pending
        return True
