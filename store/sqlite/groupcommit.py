"""Group commit: write transactions queued by different sessions share one COMMIT (and so one
fsync of the WAL under ``synchronous=FULL``), as databases do (issue 17 point 2).

Owns: the writer's queue of write jobs and the loop that drains it (`GroupCommit`, a mixin of
`SqliteStore`, store/sqlite/store.py). Must not import imapd or notify.

How a group runs (the implementation notes atop store/sqlite/store.py hold the rules):
- `_write` queues the job and returns once its transaction committed (or failed). One drain
  task runs at a time; it takes the writer lock, then every job queued so far (at most
  `GROUP_MAX`). While a group's COMMIT waits for its fsync, the sessions go on queueing: the
  next group is whatever came meanwhile. No timer: an idle server commits a lone job at once.
- A group of one runs as before (``BEGIN IMMEDIATE``, the job, COMMIT: `_transaction`).
- A larger group: one ``BEGIN IMMEDIATE``; each job inside ``SAVEPOINT`` .. ``RELEASE``
  with its own `_Tx` (its own clock reading), its Changes logged to change_log inside its
  savepoint, so a change and its change_log rows are released together or rolled back
  together. A job that raises is rolled back to its savepoint alone (quota exceeded, no
  rights, a missing mailbox...) and gets its exception; the others are unaffected. A refused
  quota's QuotaExceed is logged in that savepoint after the rollback, at the job's place.
  The savepoint steps ride with the neighbouring statement in one round trip to the
  writer's thread (BEGIN + SAVEPOINT, RELEASE + SAVEPOINT, RELEASE + COMMIT).
- If SQLite abandoned the whole transaction (a full disk or an I/O error can do that; then
  no savepoint is left to roll back to), or BEGIN or COMMIT fail, no job of the group
  committed, and every one of them gets the error. Nothing is retried behind a caller's back.
- After the one COMMIT: each job's caller is answered in queue order, then the group's
  Changes are published in one call, in seq order (= commit order), still under the lock.
  An answer comes only after COMMIT returned: an acknowledged write is durable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiosqlite

from store import quota
from store.changes import Change, QuotaChanged
from store.sqlite import files, synctx
from store.sqlite.base import _Tx
from store.sqlite.calendar import calendar_work
from store.sqlite.synctx import SyncTx

T = TypeVar("T")

log = logging.getLogger("store.sqlite")

#: Jobs committed together at most: bounds what one failing COMMIT takes down and how long
#: the first job of a group waits for the last.
GROUP_MAX = 64


@dataclass(slots=True)
class _Job:
    body: Callable[[_Tx], Awaitable[Any]]
    answer: asyncio.Future[Any]
    #: The body as a function run on the writer's thread (`_write_sync`), else None.
    sync: Callable[[SyncTx], Any] | None = None
    #: Run before BEGIN when the job commits alone (`_write_sync`); a group skips it.
    before: Callable[[], object] | None = None
    result: Any = None
    error: BaseException | None = None
    changes: list[Change] = field(default_factory=list)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _settle(job: _Job) -> None:
    """Answer a job's caller (unless the caller is gone: a cancelled future)."""
    if job.answer.done():
        return
    if job.error is not None:
        job.answer.set_exception(job.error)
    else:
        job.answer.set_result(job.result)


class GroupCommit:
    """`_write` by group commit (see the module). The store provides the rest."""

    _writer: aiosqlite.Connection
    _lock: asyncio.Lock
    _path: Path | None
    _queue: deque[_Job]
    _drainer: asyncio.Task[None] | None

    if TYPE_CHECKING:  # provided by SqliteStore and its mixins (store/sqlite/store.py)

        def _now(self) -> dt.datetime: ...

        async def _transaction(
            self,
            body: Callable[[_Tx], Awaitable[T]],
            answer: asyncio.Future[T] | None,
            sync: Callable[[SyncTx], T] | None = None,
            before: Callable[[], object] | None = None,
        ) -> T: ...

        async def _calendar_index(self, tx: _Tx) -> None: ...

        @staticmethod
        async def _log_changes(tx: _Tx) -> list[Change]: ...

        async def _foreign_before(self, own: list[Change]) -> list[Change]: ...

        def _announce_own(self, changes: Sequence[Change]) -> None: ...

    # --- the queue -------------------------------------------------------------------------
    async def _write(self, body: Callable[[_Tx], Awaitable[T]]) -> T:
        """Run ``body`` in a write transaction (maybe shared with other queued jobs), then
        publish its Changes. A cancelled caller never cancels the transaction: the drain task
        runs it; the caller only waits for its answer, which comes right after COMMIT and
        before the Changes are published (the committing session resumes ahead of the
        listeners the publication wakes)."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        return await self._enqueue(_Job(body, answer), answer)

    async def _write_sync(
        self, fn: Callable[[SyncTx], T], *, before: Callable[[], object] | None = None
    ) -> T:
        """`_write` of a body that runs on the writer's thread (store/sqlite/synctx.py): alone,
        ``before()``, ``BEGIN IMMEDIATE`` .. ``COMMIT`` take one round trip to it; in a
        group, the job and its change_log rows take one (``before`` is not called: ``fn``
        must do without it)."""

        async def body(tx: _Tx) -> T:
            return await tx.call(fn)

        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        return await self._enqueue(_Job(body, answer, fn, before), answer)

    def _writer_idle(self) -> bool:
        """No write queued or committing now: one queued now would commit alone."""
        return not self._queue and (self._drainer is None or self._drainer.done())

    async def _enqueue(self, job: _Job, answer: asyncio.Future[T]) -> T:
        self._queue.append(job)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
            self._drainer.add_done_callback(_retrieve)
        result: T = await answer
        return result

    async def _drain(self) -> None:
        queue = self._queue
        while queue:
            async with self._lock:
                group = [queue.popleft() for _ in range(min(len(queue), GROUP_MAX))]
                if not group:
                    continue
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

    async def _single(self, job: _Job) -> None:
        """A group of one: exactly the one-transaction path (`_transaction` answers)."""
        try:
            await self._transaction(job.body, job.answer, job.sync, job.before)
        except Exception as exc:  # noqa: BLE001 - handed to the caller through its answer
            job.error = exc
            _settle(job)

    # --- a group ---------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> BaseException:
        """What a caller gets for an error that took its whole group down."""
        refused = files.unavailable(exc, self._path)
        if refused is not None:
            log.warning(
                "write refused, nothing changed: %s (%s: %s)", refused.text, self._path, exc
            )
            return refused
        return exc

    async def _group(self, group: list[_Job]) -> None:
        try:
            await self._statements("BEGIN IMMEDIATE", "SAVEPOINT job")
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the group
            await self._rollback()
            failed = self._fail(exc)
            for job in group:
                job.error = failed
                _settle(job)
            return
        try:
            for i, job in enumerate(group):
                if not await self._one(job):
                    raise _Abandoned(job.error)
                if i + 1 < len(group):  # the next job's savepoint, in the same round trip
                    await self._statements("RELEASE job", "SAVEPOINT job")
            changes = [c for job in group for c in job.changes]
            changes = [*await self._foreign_before(changes), *changes]
            await self._statements("RELEASE job", "COMMIT")
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the group
            await self._rollback()
            cause = exc.error if isinstance(exc, _Abandoned) and exc.error is not None else exc
            log.warning("group commit of %d writes failed, none committed: %s", len(group), cause)
            failed = self._fail(cause)
            for job in group:
                job.error, job.changes = failed, []
                _settle(job)
            return
        except BaseException:  # cancelled (shutdown): nothing committed; _drain answers
            await self._rollback()
            raise
        for job in group:
            _settle(job)
        if changes:
            self._announce_own(changes)

    async def _statements(self, *sql: str) -> None:
        """Statements without parameters or rows, in one round trip to the writer's thread
        (aiosqlite runs each call there: a savepoint step costs no hop of its own)."""
        db = self._writer

        def run() -> None:
            for statement in sql:
                db._conn.execute(statement)

        await db._execute(run)  # type: ignore[no-untyped-call]

    async def _rollback(self) -> None:
        if self._writer.in_transaction:
            try:
                await self._writer.execute("ROLLBACK")
            except sqlite3.OperationalError:  # COMMIT failed and SQLite rolled back
                log.debug("no transaction to roll back", exc_info=True)

    async def _one(self, job: _Job) -> bool:
        """One job in the open savepoint ``job`` (rolled back to it if the job fails; the
        caller releases it). False if SQLite abandoned the whole transaction."""
        db = self._writer
        tx = _Tx(db, self._now())
        sync = job.sync
        try:
            changes = None
            if sync is not None:  # the job and its change_log rows: one round trip
                ran = await tx.call(lambda s: synctx.run_in_savepoint(s, sync, calendar_work))
                job.result, changes = ran.result, ran.changes
            else:
                job.result = await job.body(tx)
            if changes is None:
                await self._calendar_index(tx)
                changes = await self._log_changes(tx)
            job.changes = changes
        except Exception as exc:  # noqa: BLE001 - the job's own failure, handed to its caller
            job.changes = []
            if not db.in_transaction:  # SQLite rolled the whole group back
                job.error = exc
                return False
            await db.execute("ROLLBACK TO job")
            job.error = self._fail(exc)
            if isinstance(exc, quota.QuotaRefused):
                job.changes = await self._refusal(exc.change)
        return True

    async def _refusal(self, change: QuotaChanged) -> list[Change]:
        """A refused job's QuotaExceed, logged in the job's (rolled back) savepoint, at the
        job's place (as `_record_refusal` commits it right after a lone job's ROLLBACK)."""
        db = self._writer
        try:
            tx = _Tx(db, change.at)
            tx.emit(change, change.user)
            return await self._log_changes(tx)
        except Exception:
            if not db.in_transaction:
                raise
            await db.execute("ROLLBACK TO job")
            log.exception("quota: the QuotaExceed of root %r was not recorded", change.root)
            return []


class _Abandoned(Exception):
    """SQLite rolled the whole group back while running ``error``'s job."""

    def __init__(self, error: BaseException | None) -> None:
        super().__init__("transaction abandoned")
        self.error = error
