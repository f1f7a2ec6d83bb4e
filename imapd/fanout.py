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

The writer is never made to wait for the fan-out (issue 17 point 4): publishing only
appends to lists, and the walk is cut into turns of the event loop of at most `TURN`
seconds, between which the other sessions' commands run. While a command is in progress in
this process (a session between reading a command and its tagged reply: `busy`, `idle`),
a turn lasts at most `TURN_BUSY`: an APPEND waits for its store thread several times
(aiosqlite, the MIME preparation), and each time its next step waits for the end of the
current turn. (A pause between turns as well, so that the loop waits for I/O and the
store's thread gets the GIL at once, made the writer a little faster and the listeners
three times later at 1,000 listeners: not kept.) With 10,000 listeners on one mailbox and a
writer at 20 APPEND/s the fan-out cannot keep up on one core; then it falls behind, and a
listener served later gets several messages in one push (its queue holds them all: RFC 3501
§7.3.1, an EXISTS says the count, not each arrival), instead of the writer slowing down.

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
    from imapd.session import Session

#: Seconds of fan-out per loop turn while no command is in progress (~200 listeners).
TURN = 0.005
#: Seconds of fan-out per loop turn while a command is in progress in this process.
TURN_BUSY = 0.001
#: MessagesAdded whose shared facts are kept (`Fanout.added`).
ADDED_KEPT = 64
#: Listeners served between two looks at the clock.
_STRIDE = 16


class Fanout:
    """The server's one queue of rung listeners (see the module docstring)."""

    __slots__ = ("_added", "_floor", "_queue", "_scheduled", "several", "working")

    def __init__(self) -> None:
        self._queue: list[Listener] = []
        self._scheduled = False
        #: mailbox id -> UIDs below this have a claimer in this process (`claim`).
        self._floor: dict[int, int] = {}
        #: What the listeners of recent MessagesAdded share (imapd/pushshare.py), by the
        #: change's seq: a listener served late has several queued (`ADDED_KEPT`).
        self._added: dict[int, Added] = {}
        #: Renderings of several queued changes together (`pushshare._push_several`).
        self.several: dict[tuple[object, ...], bytes] = {}
        #: Sessions of this process running a command (`busy`): while any, the fan-out
        #: runs short turns (the module docstring). `Server.forget` takes an
        #: ended session out.
        self.working: set[Session] = set()

    def ring(self, listener: Listener) -> None:
        """Serve ``listener`` in a coming turn (it queued itself once: `Listener._delivered`)."""
        self._queue.append(listener)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def busy(self, session: Session) -> None:
        """``session`` reads or runs a command (`Session._idle` returned)."""
        self.working.add(session)

    def idle(self, session: Session) -> None:
        """``session`` waits for client bytes (or a doorbell), or ended."""
        self.working.discard(session)

    def _run(self) -> None:
        queue = self._queue
        end = time.perf_counter() + (TURN_BUSY if self.working else TURN)
        done = 0
        total = len(queue)
        while done < total:
            queue[done].fan()
            done += 1
            if done % _STRIDE == 0 and time.perf_counter() > end:
                break
        del queue[:done]  # listeners rung meanwhile were appended: they stay, in order
        if queue:
            asyncio.get_running_loop().call_soon(self._run)
        else:
            self._scheduled = False

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

    def added(self, server: Server, change: MessagesAdded) -> Added:
        """The shared facts of ``change`` (made at its first listener, kept for the
        `ADDED_KEPT` latest changes: listeners served late queue several)."""
        known = self._added
        shared = known.get(change.seq)
        if shared is None or shared.change is not change:
            if len(known) >= ADDED_KEPT:
                known.clear()
            shared = known[change.seq] = added_facts(server, change)
        return shared

    @property
    def latest(self) -> Added | None:
        """The shared facts of the latest MessagesAdded pushed (None before any)."""
        return self._added[max(self._added)] if self._added else None

    def observe(self, changes: Sequence[Change]) -> None:
        """A bus listener (`EventBus.add_listener`): a mailbox created, renamed or deleted
        may start its UIDs again under an id (a revived placeholder): forget the floors, as
        the stores forget theirs."""
        if self._floor and any(
            isinstance(ch, MailboxCreated | MailboxDeleted | MailboxRenamed) for ch in changes
        ):
            self._floor.clear()
