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
(imapd/control/), which pushes a notice each time the server publishes (its own commits
and other processes' it caught up with), so a new event prints at once and nothing is
polled. Subscribe first, read second: nothing committed in between is missed. With no
server running it sleeps `FALLBACK_INTERVAL` seconds between reads of change_log (and
tries the socket again each time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from typing import TextIO

from imapd import control
from imapd.cli import common
from imapd.cli.common import Subparsers, add_data_dir
from imapd.config import Config
from notify.bus import change_owner
from notify.cyrus import to_json
from notify.follow import Position, outbox_events
from store.changes import Change
from store.open import open_store

SEQ_PARAM = "vnd.imapd.seq"
#: Changes shown when --from is not given (as tail(1) shows 10 lines).
DEFAULT_LAST = 10
#: Seconds between change_log reads under --follow while no server runs (none to notify).
FALLBACK_INTERVAL = 1.0


def add_parser(sub: Subparsers) -> None:
    events_parser = sub.add_parser("events", help="the event outbox (change_log) as Cyrus JSON")
    events_sub = events_parser.add_subparsers(dest="events_command", required=True)
    tail = events_sub.add_parser("tail", help="print events, one JSON object a line")
    tail.add_argument("--user", help="only changes to this user's mailboxes and account")
    tail.add_argument(
        "--from",
        dest="from_seq",
        type=_seq,
        metavar="SEQ",
        help="start at this change_log seq (default: the last 10 changes)",
    )
    tail.add_argument(
        "--follow", "-f", action="store_true", help="then wait for new events (ends with Ctrl-C)"
    )
    add_data_dir(tail)


def _seq(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a change_log seq (a number), got {text!r}")
    return int(text)


def main(args: argparse.Namespace, config: Config) -> int:
    try:
        return common.run(tail(config, user=args.user, from_seq=args.from_seq, follow=args.follow))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `imapd events tail | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


async def tail(
    config: Config,
    *,
    user: str | None,
    from_seq: int | None,
    follow: bool,
    out: TextIO | None = None,
) -> int:
    from imapd.server import event_format

    out = out or sys.stdout
    policy, fmt = event_format(config)
    fmt = dataclasses.replace(fmt, extra_params=fmt.extra_params | {SEQ_PARAM})
    store = await open_store(
        config.db_path, lambda changes: None, synchronous=config.sqlite_synchronous
    )
    notices = ServerNotices(config) if follow else None
    try:
        if notices is not None:
            await notices.open()  # subscribe first, read second
        head = await store.change_log_head()
        cursor = from_seq - 1 if from_seq is not None else max(0, head - DEFAULT_LAST)

        def unreadable(seq: int, kind: str) -> None:
            print(
                f"imapd events: change_log seq {seq} ({kind}) cannot be read; skipped",
                file=sys.stderr,
            )

        def keep(change: Change) -> bool:
            return user is None or change_owner(change) == user

        events = outbox_events(
            store,
            Position(cursor, -1, complete=True),
            policy=policy,
            fmt=fmt,
            pid=os.getpid(),
            keep=keep,
            unreadable=unreadable,
            wait=notices.wait if notices is not None else None,
        )
        async with contextlib.aclosing(events):
            async for event in events:
                out.write(to_json(event.fields) + "\n")
                out.flush()
        return 0
    finally:
        if notices is not None:
            notices.close()
        await store.close()


class ServerNotices:
    """Waiting for the server's next publish: its control socket's notices (imapd/control/)
    while a server runs, else `FALLBACK_INTERVAL` seconds (then the socket is tried again).
    Open before the first read of change_log, so that nothing committed in between is
    missed; `wait` returns when change_log may have grown."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sub: control.Subscription | None = None

    async def open(self) -> None:
        self.sub = await _subscribe(self.config)

    async def wait(self) -> None:
        if self.sub is not None:
            if await self.sub.next() is None:  # the server stopped: read what it left
                self.sub.close()
                self.sub = None
            return
        await asyncio.sleep(FALLBACK_INTERVAL)
        self.sub = await _subscribe(self.config)

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close()
            self.sub = None


def notifyd_outbox(args: argparse.Namespace, config: Config) -> int:
    """``imapd notifyd --outbox --state FILE --method log|jsonl|external``: the server's
    change_log (read-only), rendered with its event options, handled by notify/notifyd.py."""
    from imapd.server import event_format
    from notify import notifyd
    from notify.follow import StateFile, open_outbox

    state = StateFile(args.state)
    handle = notifyd.handler(args.method, sys.stdout, args.program)
    policy, fmt = event_format(config)

    async def run() -> int:
        state.load()  # a bad state file: say so before anything else
        store, close = await open_outbox(config.db_path)
        notices = ServerNotices(config)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await notices.open()
            await notifyd.follow_outbox(
                store, state, handle, method=args.method, policy=policy, fmt=fmt, wait=notices.wait
            )
        except asyncio.CancelledError:  # SIGTERM/SIGINT: the state is saved per event
            pass
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            notices.close()
            await close()
        return 0

    try:
        return common.run(run())
    except (FileNotFoundError, ValueError) as exc:
        print(f"imapd notifyd: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `imapd notifyd --outbox ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


async def _subscribe(config: Config) -> control.Subscription | None:
    try:
        return await control.Subscription.open(config.data_dir)
    except control.NoServer:
        return None
