"""The `imapd` command: `serve` and the admin subcommands (argparse).

Owns: the parser (each command family adds its own: imapd/cli/serve.py, notifyd.py, user.py,
expire.py, admin.py, importer.py, events.py, backup.py), logging setup, and the dispatch of a
parsed command to its family. What the families share is imapd/cli/common.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from imapd.cli import admin, backup, events, expire, importer, notifyd, serve, storecopy, user
from imapd.cli.common import add_data_dir, config_from_args, run
from imapd.config import Config, ConfigError

log = logging.getLogger("imapd")

#: ``imapd --help``'s description (as it always read).
DESCRIPTION = (
    "The `imapd` command: `serve` and the admin subcommands (argparse).\n\n"
    "Owns: argument parsing, logging setup and the event loop choice for each "
    "subcommand.\n"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imapd", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    # The order here is the order of ``imapd --help``.
    serve.add_serve_parser(sub)
    notifyd.add_notifyd_parser(sub)
    user.add_user_parser(sub)
    mailbox = sub.add_parser("mailbox", help="mailboxes: list, create, delete, status, expiry")
    mailbox_sub = mailbox.add_subparsers(dest="mailbox_command", required=True)
    expire.add_mailbox_parsers(mailbox_sub)
    serve.add_healthcheck_parser(sub)
    user.add_quota_parser(sub)
    expire.add_expire_parser(sub)
    admin.add_parsers(sub, mailbox_sub, add_data_dir)  # mailbox list/create/delete/status, ...
    importer.add_parser(sub)
    events.add_parser(sub)
    backup.add_parsers(sub, add_data_dir)  # backup, restore, fsck, init
    storecopy.add_parser(sub)  # issue 18: store copy (SQLite -> PostgreSQL)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from imapd.daemon import TextFormatter

    text = logging.StreamHandler()
    text.setFormatter(TextFormatter())  # the session's client after ID (RFC 2971)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[text])
    if args.command == "healthcheck":  # no store, no configuration file
        host, port = serve.listen_from_env()
        return serve.healthcheck(args.host or host, args.port or port, args.timeout)
    if args.command == "notifyd":  # needs no store and no configuration
        return notifyd.main(args)
    # Everything the server and the store commands create (data directory, database, WAL,
    # pid file, backups) is private from its creation (store/sqlite/files.py; README "Files, disk
    # full, ..."). Not for notifyd: its `--program` children keep the operator's umask.
    os.umask(0o077)
    if args.command == "store":  # issue 18: its own --from/--to, no configuration
        return storecopy.main(args)
    # --- issue 18: --store URL is $IMAPD_STORE for this process (store/open.py picks) ---
    from store.open import ENV_STORE, check_store_url

    if getattr(args, "store", None):
        os.environ[ENV_STORE] = args.store
    if (problem := check_store_url()) is not None:
        print(f"imapd: {problem}", file=sys.stderr)
        return 2
    # --- end issue 18 ---
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"imapd: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if config.log_format != "text":
        from imapd.daemon import configure_logging

        configure_logging(config.log_format, verbose=args.verbose)
    try:
        return _command(args, config)
    except Exception as exc:  # a store that cannot start: a message and a distinct status
        if (status := backup.exit_status(exc)) is None:
            raise
        print(f"imapd: {backup.describe(exc)}", file=sys.stderr)
        return status


def _command(args: argparse.Namespace, config: Config) -> int:
    if (code := admin.dispatch(args, config)) is not None:
        return code
    if (code := backup.dispatch(args, config)) is not None:
        return code
    if args.command == "serve" and args.init and (code := backup.init_store(config)):
        return code
    match args.command:
        case "serve" if config.workers > 1:  # docs/workers.md
            from imapd.cluster.supervisor import supervise

            return supervise(config)
        case "serve":
            return run(serve.serve(config))
        case "user":
            return user.user_command(args, config)
        case "mailbox":
            return expire.mailbox_command(args, config)
        case "expire":
            return expire.expire_command(config)
        case "quota":
            return user.quota_command(args, config)
        case "import":
            return run(importer.main(args, config))
        case "events":
            return events.main(args, config)
    return 2
