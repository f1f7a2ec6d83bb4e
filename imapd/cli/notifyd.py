"""``imapd notifyd``: events from the server's datagram socket or, with ``--outbox``, from its
change log, handled by notify/notifyd.py or POSTed by notify/webhook.py."""

from __future__ import annotations

import argparse
import os
import sys

from imapd.cli import common
from imapd.cli.common import Subparsers, add_data_dir, config_from_args
from imapd.config import ConfigError


def add_notifyd_parser(sub: Subparsers) -> None:
    notifyd = sub.add_parser(
        "notifyd",
        help="handle events: from a datagram socket (Cyrus "
        "notifyd) or, with --outbox, from the server's change log",
    )
    notifyd.add_argument("--socket", help="UNIX datagram socket path to bind")
    notifyd.add_argument(
        "--outbox",
        action="store_true",
        help="no socket: follow the change log of --data-dir from --state "
        "FILE (durable, at least once; methods log, jsonl, external)",
    )
    notifyd.add_argument(
        "--method",
        choices=("log", "external", "jsonl", "webhook", "jetstream"),
        default="log",
        help="log: notifyd's log line; external: run "
        "--program; jsonl: JSON; webhook: POST to --url",
    )
    notifyd.add_argument("--program", help="command run per event (method external)")
    hook = notifyd.add_argument_group("method webhook (see the README)")
    hook.add_argument("--url", help="http:// or https:// URL events are POSTed to")
    hook.add_argument(
        "--secret",
        help="HMAC-SHA256 key for X-Imapd-Signature (default: "
        "$IMAPD_WEBHOOK_SECRET; none: unsigned)",
    )
    hook.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help='up to N events per POST as {"events": [...]} (default 1: one event object per POST)',
    )
    hook.add_argument(
        "--queue",
        type=int,
        default=1000,
        metavar="N",
        help="events held in memory; when full, datagrams wait in the server's "
        "outbox (default 1000)",
    )
    hook.add_argument(
        "--state",
        metavar="FILE",
        help="last acknowledged (with --outbox: handled) position, for resuming",
    )
    hook.add_argument("--timeout", type=float, default=10.0, help="seconds per POST (10)")
    hook.add_argument(
        "--retry-max",
        type=float,
        default=60.0,
        dest="retry_max",
        help="longest backoff between retries, seconds (60)",
    )
    add_data_dir(notifyd)  # webhook: catch up from this server's outbox after a restart
    from imapd.cli import jetstream  # --method jetstream: --stream, --subject-prefix, --creds

    jetstream.add_arguments(notifyd)


def main(args: argparse.Namespace) -> int:
    """``imapd notifyd``: needs no store and no configuration (``--outbox`` and the
    webhook's catch-up read the server's)."""
    from notify import notifyd as notifyd_mod

    if args.method == "external" and not args.program:
        print("imapd notifyd: --method external needs --program", file=sys.stderr)
        return 2
    if args.method == "jetstream":  # follows the outbox itself (imapd/cli/jetstream.py)
        from imapd.cli import jetstream

        try:
            config = config_from_args(args)
        except ConfigError as exc:
            print(f"imapd notifyd: {exc}", file=sys.stderr)
            return 2
        return jetstream.notifyd_main(args, config)
    if args.outbox:
        return _notifyd_outbox(args)
    if not args.socket:
        print("imapd notifyd: --socket PATH or --outbox is needed", file=sys.stderr)
        return 2
    if args.method == "webhook":
        return _webhook(args)
    return notifyd_mod.main(args.socket, args.method, args.program)


def _webhook(args: argparse.Namespace) -> int:
    """``imapd notifyd --method webhook``: notify/webhook.py. With ``--data-dir`` the catch-up
    renders the outbox with the server's event options (``--config``, ``IMAPD_*``), so pass
    the server's; ``vnd.imapd.seq`` must be in its ``event_extra_params`` to resume."""
    from notify import webhook

    if not args.url:
        print("imapd notifyd: --method webhook needs --url", file=sys.stderr)
        return 2
    if args.batch < 1 or args.queue < 1:
        print("imapd notifyd: --batch and --queue must be at least 1", file=sys.stderr)
        return 2
    secret = args.secret or os.environ.get("IMAPD_WEBHOOK_SECRET")
    try:
        webhook.parse_url(args.url)
        state = webhook.StateFile(args.state) if args.state else None
        if state is not None:
            state.load()
        config = config_from_args(args) if args.data_dir else None
    except (ValueError, ConfigError) as exc:
        print(f"imapd notifyd: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        outbox: webhook.Outbox | None = None
        close = None
        if config is not None:
            # The server's filter and rendering, so that the catch-up's events are the ones
            # its sink would have sent.
            from imapd.server import event_format

            store, close = await webhook.open_outbox(config.db_path)
            policy, fmt = event_format(config)
            outbox = webhook.Outbox(store, policy, fmt)
        try:
            hook = webhook.Webhook(
                args.url,
                secret=secret.encode("utf-8") if secret else None,
                batch=args.batch,
                queue=args.queue,
                state=state,
                outbox=outbox,
                timeout=args.timeout,
                retry_max=args.retry_max,
            )
            return await webhook.serve(args.socket, hook)
        finally:
            if close is not None:
                await close()

    try:
        return common.run(run())
    except FileNotFoundError as exc:
        print(f"imapd notifyd: {exc}", file=sys.stderr)
        return 1


def _notifyd_outbox(args: argparse.Namespace) -> int:
    """``imapd notifyd --outbox``: imapd/cli/events.py (the server's event options apply:
    pass its ``--config``)."""
    from imapd.cli import events

    if args.method == "webhook" or args.socket:
        print(
            "imapd notifyd: --outbox takes --method log, jsonl or external and no --socket "
            "(the webhook follows the outbox with --socket and --data-dir)",
            file=sys.stderr,
        )
        return 2
    if not args.state:
        print("imapd notifyd: --outbox needs --state FILE", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"imapd notifyd: {exc}", file=sys.stderr)
        return 2
    return events.notifyd_outbox(args, config)
