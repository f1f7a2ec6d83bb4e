"""``imapd store copy --from DATA_DIR --to postgresql://...``: move a SQLite store into an
empty PostgreSQL one (store/pgcopy.py does the work; docs/postgresql.md "Moving over").

Exit statuses: 0 copied; 2 refused before anything was written (a target that is not
empty, a bad URL, an unreachable database, a source that is missing, in use or of another
schema version); 1 the copy failed midway (its transaction rolled back: the target is as
it was). Progress goes to stderr every ``--progress-every`` seconds, the summary to stdout.
"""

from __future__ import annotations

import argparse
import sys

from imapd.cli.common import Subparsers, run

__all__ = ["add_parser", "main"]


def add_parser(sub: Subparsers) -> None:
    store = sub.add_parser("store", help="the store as a whole: copy SQLite to PostgreSQL")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    copy = store_sub.add_parser(
        "copy",
        help="copy the SQLite store of a data directory into an empty PostgreSQL database",
        description="Copies users and password hashes, mailboxes with UIDVALIDITY, UIDs and"
        " MODSEQs, flags, ACLs, quotas, metadata, subscriptions, push registrations,"
        " expiry and the change log (seqs continue). Stop the server first. The target"
        " must be empty; one transaction: a failed copy leaves it empty.",
    )
    copy.add_argument(
        "--from", dest="source", required=True, metavar="DATA_DIR", help="the SQLite data dir"
    )
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://...")
    copy.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="progress lines on stderr this often (default 5)",
    )


def main(args: argparse.Namespace) -> int:
    return run(_copy(args))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _copy(args: argparse.Namespace) -> int:
    from store.errors import StoreError
    from store.open import mask_url

    url: str = args.target
    if url.split("://", 1)[0].lower() not in ("postgresql", "postgres") or "://" not in url:
        _say(f"imapd: store copy needs a postgresql:// URL as --to, not {mask_url(url)!r}")
        return 2
    try:
        from store.pgcopy import CopyFailed, copy_store
    except ImportError:
        _say("imapd: store copy needs asyncpg: pip install 'imapd[postgres]'")
        return 2
    try:
        report = await copy_store(
            args.source, url, progress=_say, progress_every=args.progress_every
        )
    except CopyFailed as exc:
        _say(f"imapd: {exc.text}")
        return 1
    except StoreError as exc:  # not empty, unreachable, source missing / in use / too old
        _say(f"imapd: {exc.text}")
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith("asyncpg"):
            raise
        _say(f"imapd: store copy to {mask_url(url)} failed, nothing committed: {exc}")
        return 1
    rows = report.rows
    print(
        f"copied {rows['users']} users, {rows['mailboxes']} mailboxes,"
        f" {rows['messages']} messages ({rows['contents']} contents,"
        f" {report.content_bytes / (1 << 20):.1f} MiB), {rows['change_log']} change-log rows;"
        f" the next change is seq {report.last_seq + 1}"
    )
    return 0
