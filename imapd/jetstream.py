"""Wiring of the JetStream sink (notify/jetstream.py): the server's and ``imapd notifyd``'s.

Owns: the configuration check for ``event_notifier = "jetstream"``, starting the sink inside
the server (cursor in the store's ``event_cursors``, woken by the bus, status file
``DATA_DIR/jetstream.status.json``), and ``imapd notifyd --method jetstream``: the same sink in
a process of its own that follows the server's change_log read-only (notify/follow.py
`open_outbox`), woken by the server's control socket notices (imapd/cli_events.py
`ServerNotices`), its cursor in a state file. docs/jetstream.md is the user's side.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imapd.config import Config, ConfigError

if TYPE_CHECKING:
    from imapd.server import Server
    from notify.jetstream import JetStreamSink
    from notify.jetstream_names import Options

log = logging.getLogger("imapd.jetstream")

STATUS_FILE = "jetstream.status.json"  # the server's sink, in the data directory
NOTIFYD_STATE = "jetstream-notifyd.state"  # imapd notifyd's defaults, same place
NOTIFYD_STATUS = "jetstream-notifyd.status.json"


def options(config: Config, **flags: object) -> Options:
    """The sink's options from the configuration; non-None ``flags`` win."""
    from notify.jetstream_names import Options

    def pick(name: str) -> object:
        value = flags.get(name)
        return value if value is not None else getattr(config, f"jetstream_{name}")

    url = pick("url")
    if not isinstance(url, str) or not url:
        raise ValueError("jetstream: no NATS URL (--url, or jetstream_url in the TOML file)")
    creds = pick("creds")
    return Options(url=url, stream=str(pick("stream")), subject_prefix=str(pick("subject_prefix")),
                   creds=str(creds) if creds is not None else None,
                   max_age=float(config.jetstream_max_age),
                   max_bytes=int(config.jetstream_max_bytes))


def check_config(config: Config) -> None:
    """``event_notifier = "jetstream"``: a URL, a valid stream and prefix, no notifysocket."""
    if config.notify_socket:
        raise ConfigError("event_notifier: jetstream publishes to NATS itself; notify_socket "
                          "must not be set with it")
    try:
        options(config)
    except ValueError as exc:
        raise ConfigError(f"jetstream: {exc}") from None
    if config.jetstream_max_age <= 0 or config.jetstream_max_bytes <= 0:
        raise ConfigError("jetstream_max_age, jetstream_max_bytes: must be > 0")


async def start_in_server(server: Server) -> JetStreamSink:
    """The server's sink: started before the listeners, so a first start's cursor is the
    outbox's end; woken by every publish (a bus listener never blocks)."""
    from imapd.server import event_format
    from notify.jetstream import JetStreamSink, StoreCursor

    config = server.config
    policy, fmt = event_format(config)
    sink = JetStreamSink(server.store, options(config), StoreCursor(server.store),
                         policy=policy, fmt=fmt, status_file=config.data_dir / STATUS_FILE)
    await sink.start()
    server.bus.add_listener(sink.wake)
    server.session_events = "access" in config.event_groups
    log.info("events to NATS JetStream %s, stream %s", sink.options.url, sink.options.stream)
    return sink


# --- imapd notifyd --method jetstream ------------------------------------------------------
def add_arguments(notifyd: argparse.ArgumentParser) -> None:
    """The flags of ``--method jetstream`` (``--url``, ``--state``, ``--data-dir`` and
    ``--config`` are the notifyd parser's own)."""
    group = notifyd.add_argument_group("method jetstream (docs/jetstream.md)")
    group.add_argument("--stream", help="JetStream stream (default IMAPD_EVENTS; created if "
                       "absent)")
    group.add_argument("--subject-prefix", dest="subject_prefix",
                       help="subjects PREFIX.<event>.<user> (default imapd)")
    group.add_argument("--creds", help="NATS credentials file")
    group.add_argument("--status", metavar="FILE", help="health status JSON (default "
                       f"DATA_DIR/{NOTIFYD_STATUS})")


def notifyd_main(args: argparse.Namespace, config: Config) -> int:
    """``imapd notifyd --method jetstream --url nats://HOST:PORT --data-dir DIR``."""
    from imapd.cli import _run

    try:
        opts = options(config, url=args.url, stream=args.stream,
                       subject_prefix=args.subject_prefix, creds=args.creds)
    except ValueError as exc:
        sys.stderr.write(f"imapd notifyd: {exc}\n")
        return 2
    state = Path(args.state) if args.state else config.data_dir / NOTIFYD_STATE
    status = Path(args.status) if args.status else config.data_dir / NOTIFYD_STATUS
    try:
        return _run(_follow(config, opts, state, status))
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"imapd notifyd: {exc}\n")
        return 1


async def _follow(config: Config, opts: Options, state: Path, status: Path) -> int:
    from imapd.cli_events import ServerNotices
    from imapd.server import event_format
    from notify.follow import open_outbox
    from notify.jetstream import FileCursor, JetStreamSink

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
        log.info("following %s into NATS JetStream %s, stream %s", config.db_path, opts.url,
                 opts.stream)
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
