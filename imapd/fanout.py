"""Push fan-out: the listeners one commit rang, served in one loop instead of a task each.

Owns: `Fanout`, the server's queue of parked IDLE/NOTIFY listeners (imapd/listening.py) that a
delivery rang, and the in-process decision of who claims ``\\Recent`` for a new message among
them. Must not render or write anything itself: each listener's `Listener.push_now` renders
through the sans-IO core and hands bytes to its session's `_push` (`imapd.server.PushBatch`
writes them at the end of the turn).

Why (issue 17, "Push under load"): a commit to a mailbox with a thousand listeners used to
resolve a thousand futures, each resuming a session task through `Listener.wait`, `push`,
`_selected`, an awaited ``claim_recent`` and back to a new future: the task machinery cost
more than the rendering and the write together. Now a delivery only queues the listener
(`Listener._delivered`); one callback per loop turn walks the queue and each listener renders
and pushes synchronously. A listener whose push must await (the claim below, a FETCH item
read from the store, RFC 5267 contexts, an ACL re-check, a BYE, a full write buffer) is woken
as before and its task does the whole push: a session's responses come out of one place at a
time, so their order is the order of the queue.

The writer first (issue 17 point 4): publishing only appends to lists, and the walk is cut
into slices of ``SLICE_SECONDS``, one per loop turn, so a command of another session (the
writer's next APPEND) runs between two slices. That alone is not enough when the walk never
ends (10,000 listeners, a commit every 50 ms): the loop thread then holds the GIL without a
break, and the store's writer thread, which must take it back after each SQLite statement,
waited up to the interpreter's switch interval (5 ms) each time: an APPEND's transaction took
100-250 ms instead of 5 (measured, stage by stage, from its bytes to its tagged OK). So while
a command runs in this process (`commands`, counted by `Session._dispatch`), the walk leaves
the loop idle between two slices for a quarter of the slice's time (`PAUSE_RATIO`): the
command's thread work gets the GIL when it asks, and the walk keeps about four fifths of the
loop. Listeners that fall behind meanwhile get their new messages together
(imapd/pushshare.py, "Coalescing"): delivery is later, the writer is not slowed.

``\\Recent`` (RFC 3501 §2.3.2): the store decides, across processes, who is first
(``claim_recent``). Of the listeners woken by one new message exactly one may be first in
this process; `claim` names it (the first to ask), its task claims through the store, and
every other listener knows without awaiting that the store would refuse it: the answer the
store's own in-memory floor gives them today. If that one claim fails (the disk full), the
message stays unclaimed in the store and the next SELECT of the mailbox gets it, as after a
crash: never twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from imapd.pushshare import Added, added_facts
from store.changes import Change, MailboxCreated, MailboxDeleted, MailboxRenamed, MessagesAdded

if TYPE_CHECKING:
    from imapd.listening import Listener
    from imapd.server import Server

#: A slice of the walk: listeners are served in one loop turn until this much time passed
#: (~100-200 listeners at 10-20 µs each), then other sessions' work (the writer's next
#: APPEND) runs before the next slice.
SLICE_SECONDS = 0.002
#: While a command runs, the loop is left idle between two slices for this share of the
#: slice's time, at most PAUSE_MAX (`Fanout._run`). 10,000 listeners, the writer at 20/s,
#: alternating: 1 (as long as the slice) held the writer at 15-19/s with deliveries 3 s
#: late at p99; 0.5 and 0.25 kept it at 18-20/s, 0.25 with the shortest delays; 0 (no
#: pause) left it at 11/s.
PAUSE_RATIO = 0.25
PAUSE_MAX = 0.004
#: Runs of MessagesAdded whose shared facts are kept (`Fanout.added`): the listeners of a
#: walk are behind by a few changes at most, so a few runs each.
RUNS_MAX = 64


class Fanout:
    """The server's one queue of rung listeners (see the module docstring)."""

    __slots__ = ("_floor", "_latest", "_queue", "_runs", "_scheduled", "commands")

    def __init__(self) -> None:
        self._queue: list[Listener] = []
        self._scheduled = False
        #: Commands running in this process (`Session._dispatch`): while there are, the
        #: walk leaves the loop idle between slices (`PAUSE_RATIO` of each slice's time).
        self.commands = 0
        #: mailbox id -> UIDs below this have a claimer in this process (`claim`).
        self._floor: dict[int, int] = {}
        #: What the listeners behind one run of MessagesAdded share (imapd/pushshare.py),
        #: by (first change, last change, length): `added`.
        self._runs: dict[tuple[int, int, int], Added] = {}
        self._latest: Added | None = None

    def ring(self, listener: Listener) -> None:
        """Serve ``listener`` in a coming turn (it queued itself once: `Listener._delivered`)."""
        self._queue.append(listener)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        queue = self._queue
        start = time.perf_counter()
        end = start + SLICE_SECONDS
        served = 0
        while served < len(queue):
            queue[served].fan()
            served += 1
            if time.perf_counter() > end:
                break
        del queue[:served]  # ring() appends meanwhile: those are served after these
        if not queue:
            self._scheduled = False
        elif self.commands:
            # A command runs (the writer's APPEND): leave the loop idle for a quarter of
            # the time this slice took (at most PAUSE_MAX: a slice the OS cut into counts
            # its own time only), so that the store's thread, which takes the GIL back
            # after each statement of its transaction, is not kept waiting for it (see
            # "The writer first" above).
            pause = min((time.perf_counter() - start) * PAUSE_RATIO, PAUSE_MAX)
            asyncio.get_running_loop().call_later(pause, self._run)
        else:
            asyncio.get_running_loop().call_soon(self._run)

    def claim(self, mailbox_id: int, uids: Sequence[int]) -> bool:
        """True when the caller is the first listener here to see some of ``uids`` (new
        messages of ``mailbox_id``): it must ask the store (`claim_recent`) in its task.
        False: another listener of this process asked, or will, for all of them; the store
        refuses this caller, so it need not ask."""
        floor = self._floor.get(mailbox_id, 0)
        top = max(uids)
        if top < floor:
            return False
        self._floor[mailbox_id] = top + 1
        return True

    def claimed(self, mailbox_id: int, uids: Sequence[int]) -> bool:
        """A listener of this process was named to claim every one of ``uids`` (`claim`)."""
        return max(uids) < self._floor.get(mailbox_id, 0)

    def added(self, server: Server, changes: Sequence[MessagesAdded]) -> Added:
        """The shared facts of ``changes``, a run of MessagesAdded in commit order a
        listener holds: one change, or the k it fell behind on (made at the run's first
        listener, kept for the others behind the same run: `RUNS_MAX` runs at most)."""
        key = (id(changes[0]), id(changes[-1]), len(changes))
        shared = self._runs.get(key)
        # The entry keeps its changes alive, so their ids are not reused while it lives;
        # the same ends and length in commit order is the same run, checked all the same.
        if shared is None or any(a is not b for a, b in zip(shared.changes, changes, strict=True)):
            if len(self._runs) >= RUNS_MAX:
                del self._runs[next(iter(self._runs))]  # the oldest run
            shared = self._runs[key] = added_facts(server, tuple(changes))
        self._latest = shared
        return shared

    @property
    def latest(self) -> Added | None:
        """The shared facts of the latest run of MessagesAdded pushed (None before any)."""
        return self._latest

    def observe(self, changes: Sequence[Change]) -> None:
        """A bus listener (`EventBus.add_listener`): a mailbox created, renamed or deleted
        may start its UIDs again under an id (a revived placeholder): forget the floors, as
        the stores forget theirs."""
        if self._floor and any(
            isinstance(ch, MailboxCreated | MailboxDeleted | MailboxRenamed) for ch in changes
        ):
            self._floor.clear()
