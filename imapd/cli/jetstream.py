"""``imapd notifyd --method jetstream``: the JetStream sink (notify/jetstream.py) in a process
of its own, following the server's change log read-only (notify/follow.py `open_outbox`),
woken by the server's control socket notices (imapd/cli/events.py `ServerNotices`), its
cursor in a state file (docs/jetstream.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imapd.cli import common
from imapd.config import Config
from imapd.jetstream import options

if TYPE_CHECKING:
    from notify.jetstream_names import Options

log = logging.getLogger("imapd.notifyd.jetstream")

NOTIFYD_STATE = "jetstream-notifyd.state"  # the defaults, in the data directory
NOTIFYD_STATUS = "jetstream-notifyd.status.json"


def add_arguments(notifyd: argparse.ArgumentParser) -> None:
    """The flags of ``--method jetstream`` (``--url``, ``--state``, ``--data-dir`` and
    ``--config`` are the notifyd parser's own)."""
    group = notifyd.add_argument_group("method jetstream (docs/jetstream.md)")
    group.add_argument(
        "--stream", help="JetStream stream (default IMAPD_EVENTS; created if absent)"
    )
    group.add_argument(
        "--subject-prefix",
        dest="subject_prefix",
        help="subjects PREFIX.<event>.<user> (default imapd)",
    )
    group.add_argument("--creds", help="NATS credentials file")
    group.add_argument(
        "--status", metavar="FILE", help=f"health status JSON (default DATA_DIR/{NOTIFYD_STATUS})"
    )


def notifyd_main(args: argparse.Namespace, config: Config) -> int:
    """``imapd notifyd --method jetstream --url nats://HOST:PORT --data-dir DIR``."""
    try:
        opts = options(
            config,
            url=args.url,
            stream=args.stream,
            subject_prefix=args.subject_prefix,
            creds=args.creds,
        )
    except ValueError as exc:
        sys.stderr.write(f"imapd notifyd: {exc}\n")
        return 2
    state = Path(args.state) if args.state else config.data_dir / NOTIFYD_STATE
    status = Path(args.status) if args.status else config.data_dir / NOTIFYD_STATUS
    try:
        return common.run(_follow(config, opts, state, status))
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"imapd notifyd: {exc}\n")
        return 1


async def _follow(config: Config, opts: Options, state: Path, status: Path) -> int:
    from imapd.cli.events import ServerNotices
    from imapd.server import event_format
    from notify.follow import open_outbox
    from notify.jetstream import JetStreamSink
    from notify.jetstream_state import FileCursor

    cursor = FileCursor(state)
    await cursor.load()  # a bad state file: say so before anything else
    policy, fmt = event_format(config)
    store, close = await open_outbox(config.db_path)
    notices = ServerNotices(config)
    sink = JetStreamSink(store, opts, cursor, policy=policy, fmt=fmt, status_file=status)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await notices.open()  # subscribe first, read second: nothing committed is missed
        await sink.start()
        log.info(
            "following %s into NATS JetStream %s, stream %s", config.db_path, opts.url, opts.stream
        )
        stop = asyncio.ensure_future(stopping.wait())
        while not stopping.is_set():
            notice = asyncio.ensure_future(notices.wait())
            await asyncio.wait({notice, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not notice.done():
                notice.cancel()
            sink.wake()
        await sink.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        notices.close()
        await close()
    return 0
