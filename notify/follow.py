"""Following the change_log outbox from outside the server: the shared reader and its cursor.

Owns: following change_log after a `Position` (`ChangeFeed.follow`, the store's one
change-log follower, store/changefeed.py), turning each change into its events with
the server's own `Policy` and `notify.sink.render` (so an event is the JSON the server's sink
puts in its datagram), optionally waiting for more; the `Position` of an event and the
`StateFile` that persists one; opening the server's store read-only (store/open.py). Used by
``imapd notifyd --outbox`` (notify/notifyd.py), the webhook's catch-up (notify/webhook.py)
and ``imapd events tail`` (imapd/cli/events.py). Must not import imapd: how to wait for the
server's next commit (its control socket) is handed in.

The server's own sink (notify/sink.py) follows change_log too but keeps its cursor in the
database, takes the bus's Changes when it keeps up and bounds its backlog; it is not this.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from notify.cyrus import Format
from notify.events import Policy, events_for
from notify.sink import render
from store.api import ChangeFeed
from store.changes import Change
from store.open import open_change_feed


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Event ``index`` (0-based) of change ``seq``; ``complete``: all of that change's events
    are covered."""

    seq: int
    index: int
    complete: bool = False


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One event as the server's sink renders it (Cyrus JSON fields) and where it is."""

    position: Position
    fields: dict[str, object]


def start_of(position: Position) -> int:
    """The change_log seq after which reading resumes from ``position``."""
    return position.seq if position.complete else position.seq - 1


async def outbox_events(
    store: ChangeFeed,
    start: Position,
    *,
    policy: Policy,
    fmt: Format,
    pid: int,
    keep: Callable[[Change], bool] | None = None,
    wait: Callable[[], Awaitable[None]] | None = None,
    unreadable: Callable[[int, str], None] | None = None,
) -> AsyncGenerator[OutboxEvent, None]:
    """The events after ``start``, in commit order, each rendered when it is reached (a
    message expunged meanwhile has no messageContent, as from the sink). ``keep`` filters
    changes; ``unreadable(seq, kind)`` is told of a row that cannot be read (it is
    skipped). At the end of change_log: return, or with ``wait`` await it and read again."""
    changes = store.follow(start_of(start), wait=wait, unreadable=unreadable)
    async with contextlib.aclosing(changes):
        async for change in changes:
            if keep is not None and not keep(change):
                continue
            seq = change.seq
            events = events_for(change, policy)
            for index, event in enumerate(events):
                if seq == start.seq and index <= start.index:
                    continue
                fields = await render(store, event, fmt, pid=pid)
                yield OutboxEvent(Position(seq, index, index == len(events) - 1), fields)


class StateFile:
    """The last handled `Position` as JSON, replaced atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> Position | None:
        try:
            data = json.loads(self.path.read_text("utf-8"))
            return Position(int(data["seq"]), int(data["index"]), bool(data.get("complete")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{self.path}: not a state file ({exc})") from exc

    def save(self, position: Position) -> None:
        """Temp file in the same directory, fsync, rename over, fsync the directory: after a
        crash the file holds the old position or the new one, never a torn one."""
        data = json.dumps(
            {"seq": position.seq, "index": position.index, "complete": position.complete}
        )
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(data + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


async def open_outbox(db_path: str | Path) -> tuple[ChangeFeed, Callable[[], Awaitable[None]]]:
    """The server's store opened read-only as a `ChangeFeed` (store/open.py), and its
    closer. Nothing is migrated or written: a missing file is an error, not a new store."""
    return await open_change_feed(db_path)
