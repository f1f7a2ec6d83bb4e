"""``imapd events tail [--user U] [--from SEQ] [--follow]``: the outbox as Cyrus JSON lines.

Owns: reading change_log by seq and printing each change's events, one JSON object a line,
rendered by the very functions the notification sink uses (`notify.events.events_for` with
the configured `Policy`, `notify.sink.render` with the configured `Format`: event_groups,
event_extra_params, event_exclude_*, content options), so a line is the JSON the sink puts
in its datagram, except that:
- ``vnd.imapd.seq`` (the change_log seq) is always there, also when ``event_extra_params``
  does not name it: it is what ``--from`` takes. The events of one change share it; a
  consumer that handled every line of seq N resumes with ``--from N+1`` (and one that may
  have stopped inside a change, with ``--from N``, skipping what it has);
- ``pid`` is this process's (the sink's is the server's);
- nothing is shed for size (the sink drops messageContent/messageHeaders past the datagram
  limit).

``--from SEQ`` starts at that seq (inclusive); without it, at the last `DEFAULT_LAST`
changes. ``--user U`` keeps the changes to U's mailboxes and account (the owner, as the
bus routes them). ``--follow`` then waits: subscribed to the server's control socket
(imapd/control.py), which pushes a notice each time the server publishes (its own commits
and other processes' it caught up with), so a new event prints at once and nothing is
polled. Subscribe first, read second: nothing committed in between is missed. With no
server running it sleeps `FALLBACK_INTERVAL` seconds between reads of change_log (and
tries the socket again each time).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from typing import TextIO

from imapd import control
from imapd.config import Config
from notify.bus import change_owner
from notify.cyrus import to_json
from notify.events import events_for
from notify.sink import render
from store.changes import read_change
from store.sqlite import SqliteStore

SEQ_PARAM = "vnd.imapd.seq"
#: Changes shown when --from is not given (as tail(1) shows 10 lines).
DEFAULT_LAST = 10
#: Seconds between change_log reads under --follow while no server runs (none to notify).
FALLBACK_INTERVAL = 1.0
BATCH = 500


def main(args: argparse.Namespace, config: Config) -> int:
    from imapd.cli import _run

    try:
        return _run(tail(config, user=args.user, from_seq=args.from_seq, follow=args.follow))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `imapd events tail | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


async def tail(config: Config, *, user: str | None, from_seq: int | None, follow: bool,
               out: TextIO | None = None) -> int:
    from imapd.server import event_format

    out = out or sys.stdout
    policy, fmt = event_format(config)
    fmt = dataclasses.replace(fmt, extra_params=fmt.extra_params | {SEQ_PARAM})
    pid = os.getpid()
    store = await SqliteStore.open(config.db_path, lambda changes: None,
                                   synchronous=config.sqlite_synchronous)
    sub: control.Subscription | None = None
    try:
        if follow:
            sub = await _subscribe(config)
        head = await store.change_log_head()
        cursor = from_seq - 1 if from_seq is not None else max(0, head - DEFAULT_LAST)
        while True:
            rows = await store.change_log(cursor, BATCH)
            for seq, kind, payload in rows:
                cursor = seq
                change = read_change(kind, seq, payload)
                if change is None:
                    print(f"imapd events: change_log seq {seq} ({kind}) cannot be read;"
                          " skipped", file=sys.stderr)
                    continue
                if user is None or change_owner(change) == user:
                    for event in events_for(change, policy):
                        fields = await render(store, event, fmt, pid=pid)
                        out.write(to_json(fields) + "\n")
                    out.flush()
            if len(rows) == BATCH:
                continue
            if not follow:
                return 0
            if sub is not None:
                if await sub.next() is None:  # the server stopped
                    sub.close()
                    sub = None
                continue
            await asyncio.sleep(FALLBACK_INTERVAL)
            sub = await _subscribe(config)
    finally:
        if sub is not None:
            sub.close()
        await store.close()


async def _subscribe(config: Config) -> control.Subscription | None:
    try:
        return await control.Subscription.open(config.data_dir)
    except control.NoServer:
        return None
