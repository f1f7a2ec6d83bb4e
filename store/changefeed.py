"""Following the change log: the one loop that reads committed changes by seq, in commit
order, for every consumer (the server's sink, ``imapd notifyd --outbox``, the webhook's
catch-up, ``imapd events tail``) and for the store's own publication of other processes'
commits (on its writer connection, inside its lock: store/sqlite/store.py).

A backend's `ChangeFeed.follow` (store/api.py) may be this loop over its ``change_log``
(SQLite: store/sqlite/store.py) or something of its own with the same contract: Changes with
seq > ``after`` in seq order; a row this version cannot read is reported to ``unreadable``
and stepped over; at the end, return, or with ``wait`` await it and read on. Pure asyncio:
no I/O here beyond the feed's own reads.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol

from store.changes import Change, read_change

BATCH = 500  # change_log rows read per round trip

Unreadable = Callable[[int, str], None]


class ChangeLog(Protocol):
    async def change_log(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]: ...


async def follow_change_log(
    log: ChangeLog,
    after: int,
    *,
    wait: Callable[[], Awaitable[None]] | None = None,
    unreadable: Unreadable | None = None,
    batch: int = BATCH,
) -> AsyncGenerator[Change, None]:
    """The Changes with seq > ``after``, in commit order, read ``batch`` rows at a time.
    ``unreadable(seq, kind)`` is told of a row that cannot be read, in its place in the
    order (it is skipped). At the end of the log: return, or with ``wait`` await it (the
    next commit may have come) and read again."""
    while True:
        rows = await log.change_log(after, batch)
        for seq, kind, payload in rows:
            after = seq
            change = read_change(kind, seq, payload)
            if change is None:
                if unreadable is not None:
                    unreadable(seq, kind)
                continue
            yield change
        if len(rows) == batch:
            continue
        if wait is None:
            return
        await wait()
