"""Write transactions run on the writer's own thread: one hop to it instead of one per statement
(issue 17 point 2).

Owns: `SyncTx`, the synchronous view of a write transaction (`store.sqlite.base._Tx`: the same
clock reading and pending Changes) for code that runs *on* the connection's thread, where each
statement is a plain `sqlite3` call; `log_changes`, the change_log rows of its Changes; and the
two in-thread runs group commit (store/sqlite/groupcommit.py) uses for a job written this way:
`run_alone` (``BEGIN IMMEDIATE``, the job, its change_log rows, ``COMMIT``: a whole write in
one hop) and `run_in_savepoint` (the job and its change_log rows inside the group's open
savepoint).

Why: aiosqlite runs each call on the connection's thread, and each call is a queue put, a
thread wake and a future resolved back on the event loop (tens of µs of CPU, more in latency
on a loaded machine). An APPEND made 8 of them on the writer; now it makes 1.

Rules (the implementation notes atop store/sqlite/store.py hold): what runs here holds the
writer's lock (the caller's), never awaits, never touches the event loop and only reads state
the loop does not change while the lock is held. Anything an in-thread run cannot finish the
way the awaiting path would (the calendar index has work to do; other processes committed
since the last publish) is left to the awaiting path with the transaction still open:
``done`` False. A failure leaves the transaction as the statement left it; the caller rolls
back (as it does for the awaiting path). Must not import imapd or notify.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from store.changes import Change, change_kind, to_json

T = TypeVar("T")
Row = tuple[Any, ...]

_CHANGE_ROWS_PER_INSERT = 500  # 4 parameters a row, far below SQLITE_MAX_VARIABLE_NUMBER


class SyncTx:
    """One write transaction as seen from the writer's thread: ``pending`` is the list of
    the `_Tx` it was made from (`_Tx.call`), so Changes emitted here are logged by either
    path."""

    __slots__ = ("at", "at_iso", "conn", "pending")

    def __init__(
        self,
        conn: sqlite3.Connection,
        at: dt.datetime,
        at_iso: str,
        pending: list[tuple[Change, str | None]],
    ) -> None:
        self.conn = conn
        self.at = at
        self.at_iso = at_iso
        self.pending = pending

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def run(self, sql: str, params: Sequence[object] = ()) -> None:
        self.conn.execute(sql, params)

    def many(self, sql: str, params: Iterable[Sequence[object]]) -> None:
        self.conn.executemany(sql, params)

    def emit(self, change: Change, user: str | None) -> None:
        """Queue a Change built with ``seq=0``; `log_changes` gives it its change_log seq."""
        self.pending.append((change, user))


def log_changes(tx: SyncTx) -> list[Change]:
    """Insert a transaction's pending Changes into change_log; return them with their seqs."""
    out: list[Change] = []
    pending = tx.pending
    for start in range(0, len(pending), _CHANGE_ROWS_PER_INSERT):
        chunk = pending[start : start + _CHANGE_ROWS_PER_INSERT]
        params: list[object] = []
        for change, user in chunk:
            params += [change_kind(change), user, to_json(change), tx.at_iso]
        values = ", ".join("(?, ?, ?, ?)" for _ in chunk)
        rows = tx.rows(
            "INSERT INTO change_log (kind, user, payload, created) VALUES "
            + values
            + " RETURNING seq",
            params,
        )
        # Seqs are assigned in VALUES order; RETURNING's row order is not promised.
        seqs = sorted(row[0] for row in rows)
        out += [dataclasses.replace(c, seq=s) for (c, _), s in zip(chunk, seqs, strict=True)]
    return out


@dataclasses.dataclass(slots=True)
class Ran(Generic[T]):
    """What an in-thread run did: the job's ``result``; its logged ``changes`` (None: not
    logged yet, the calendar index comes first); ``done``: committed (`run_alone`)."""

    result: T
    changes: list[Change] | None
    done: bool = False


def run_in_savepoint(
    tx: SyncTx, job: Callable[[SyncTx], T], calendar_work: Callable[[SyncTx], bool]
) -> Ran[T]:
    """``job`` inside the open transaction (or savepoint), then its change_log rows, unless
    the calendar index has work to do first (then ``changes`` is None)."""
    result = job(tx)
    if calendar_work(tx):
        return Ran(result, None)
    return Ran(result, log_changes(tx))


def run_alone(
    tx: SyncTx,
    job: Callable[[SyncTx], T],
    calendar_work: Callable[[SyncTx], bool],
    published: int | None,
    before: Callable[[], object] | None = None,
) -> Ran[T]:
    """``before()`` (work without SQL, such as parsing the messages of an APPEND, done
    outside the transaction), then a whole write transaction: ``BEGIN IMMEDIATE``,
    ``job``, its change_log rows and ``COMMIT``, unless something is left to the awaiting
    path (the calendar index, or a gap before the first seq: other processes' commits,
    published ahead of these Changes by `SqliteStore._foreign_before`); then ``done`` is
    False and the transaction open.
    ``published``: the last seq published (None: not following other processes)."""
    if before is not None:
        before()
    tx.conn.execute("BEGIN IMMEDIATE")
    ran = run_in_savepoint(tx, job, calendar_work)
    own = ran.changes
    if own is None or (published is not None and own and own[0].seq != published + 1):
        return ran
    tx.conn.execute("COMMIT")
    ran.done = True
    return ran
