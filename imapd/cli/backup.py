"""Store maintenance subcommands of `imapd`: ``backup``, ``restore``, ``fsck``, ``init``, and
the exit statuses every command uses when the store itself is the problem.

Owns: their argparse parsers (`add_parsers`, called by imapd/cli/app.py), `dispatch`, `init_store`
(``imapd init`` and ``imapd serve --init``) and `exit_status` (a store error at start-up ->
a message and a distinct status). The work is store/sqlite/backup.py, store/sqlite/fsck.py and
store/sqlite/files.py; see the README section "Files, disk full, backup, restore, fsck".

Exit statuses (sysexits.h values, so a supervisor can tell them apart):
- 0 done / clean; 1 problems found (fsck) or a command failed; 2 bad usage or configuration;
- `EXIT_DAMAGED` (65, EX_DATAERR): the database is empty, not SQLite, unreadable or damaged;
- `EXIT_DISK_FULL` (74, EX_IOERR): the disk is full (or a write failed) at start-up,
  migration, backup or restore;
- `EXIT_IN_USE` (75, EX_TEMPFAIL): restore/init/fsck --repair while a server or command
  has the store open.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from imapd import control
from imapd.config import Config
from store.errors import StoreDamaged, StoreError, StoreInUse, StoreUnreachable, Unavailable
from store.sqlite import backup as backup_mod
from store.sqlite import files, fsck

EXIT_DAMAGED = 65
EXIT_DISK_FULL = 74
EXIT_IN_USE = 75


def exit_status(exc: BaseException) -> int | None:
    """The exit status for a store error that ends a command, or None if it is no such
    error (then it is a bug and its traceback is wanted)."""
    if isinstance(exc, StoreInUse):
        return EXIT_IN_USE
    if isinstance(exc, StoreDamaged):
        return EXIT_DAMAGED
    if isinstance(exc, StoreUnreachable):  # issue 18: a store URL that cannot be opened
        return 2
    if isinstance(exc, Unavailable):
        return EXIT_DISK_FULL
    mapped = files.unavailable(exc)
    if mapped is not None:
        return EXIT_DISK_FULL
    return None


def describe(exc: BaseException) -> str:
    if isinstance(exc, StoreError):
        return exc.text
    mapped = files.unavailable(exc)
    return mapped.text if mapped is not None else str(exc)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    data_dir: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub.add_parser("backup", help="copy the store consistently, also while serving")
    p.add_argument(
        "dest",
        help="the backup file to write (or a directory to write"
        " imapd-YYYYmmddTHHMMSSZ.sqlite3 in); never overwritten",
    )
    data_dir(p)
    p = sub.add_parser("restore", help="replace the store by a backup (server stopped)")
    p.add_argument("src", help="a file written by imapd backup")
    data_dir(p)
    p = sub.add_parser(
        "fsck",
        help="check the store: SQLite's integrity check and imapd's"
        " invariants; exit 0 clean, 1 problems, 2 error",
    )
    p.add_argument(
        "--repair", action="store_true", help="recompute what can be recomputed (server stopped)"
    )
    p.add_argument(
        "--quick", action="store_true", help="quick_check instead of the full integrity_check"
    )
    data_dir(p)
    p = sub.add_parser(
        "init",
        help="create the store; an empty or damaged one is moved"
        " aside (kept) and replaced by a new, empty store",
    )
    data_dir(p)


def dispatch(args: argparse.Namespace, config: Config) -> int | None:
    """Run a command of this module, or None if ``args.command`` is not one."""
    match args.command:
        case "backup":
            return _backup(Path(args.dest), config)
        case "restore":
            return _restore(Path(args.src), config)
        case "fsck":
            return _fsck(config, repair=args.repair, quick=args.quick)
        case "init":
            return init_store(config)
    return None


def _fail(text: str, status: int = 1) -> int:
    print(f"imapd: {text}", file=sys.stderr)
    return status


def _sqlite_failure(exc: sqlite3.Error, path: Path) -> int:
    """A command's SQLite error: a full disk or a damaged file end it as at start-up (74,
    65); anything else is said plainly, exit 1."""
    if files.unavailable(exc, path) is not None:
        raise exc
    if (broken := files.damaged(exc, path)) is not None:
        raise broken from exc
    return _fail(f"{path}: {exc}")


def _backup(dest: Path, config: Config) -> int:
    try:
        target, info = backup_mod.backup(config.db_path, dest)
    except (FileExistsError, FileNotFoundError) as exc:
        return _fail(str(exc))
    except sqlite3.Error as exc:
        return _sqlite_failure(exc, config.db_path)
    print(
        f"backup of {config.db_path} written to {target}: {info.users} users,"
        f" {info.mailboxes} mailboxes, {info.messages} messages, change_log seq"
        f" {info.change_log_head}, {info.size} octets"
    )
    return 0


def _server_answers(data_dir: Path) -> bool:
    """True if a server answers on the data directory's control socket."""

    async def ask() -> bool:
        try:
            await control.request(data_dir, control.Who())
        except control.NoServer:
            return False
        except (TimeoutError, control.ProtocolError):
            return True  # something holds the socket and does not answer well: not ours
        return True

    return asyncio.run(ask())


def _restore(src: Path, config: Config) -> int:
    files.private_dir(config.data_dir)
    if _server_answers(config.data_dir):
        return _fail(f"a server is running on {config.data_dir}: stop it first", EXIT_IN_USE)
    try:
        with files.StoreLock(config.db_path, exclusive=True):
            report = backup_mod.restore(src, config.db_path)
    except FileNotFoundError as exc:
        return _fail(str(exc))
    except sqlite3.Error as exc:
        return _sqlite_failure(exc, config.db_path)
    if report.replaced is not None:
        how = "read for UIDs and seqs" if report.replaced_readable else "unreadable or damaged"
        print(f"the replaced store ({how}) is kept as {report.replaced}")
    for label, uv, uidnext in report.kept:
        print(f"{label}: UIDVALIDITY {uv} kept, UIDNEXT {uidnext}")
    for label, old, new in report.renewed:
        print(f"{label}: new UIDVALIDITY {new} (was {old}): clients resync this mailbox")
    s = report.summary
    print(
        f"restored {src} into {config.db_path}: {s.users} users, {s.mailboxes} mailboxes,"
        f" {s.messages} messages; change_log continues at seq {report.change_log_from}"
    )
    return 0


def _fsck(config: Config, *, repair: bool, quick: bool) -> int:
    try:
        if not files.check_database(config.db_path):
            return _fail(f"no store at {config.db_path}", 2)
    except StoreDamaged as exc:
        return _fail(exc.text, 2)
    lock = files.StoreLock(config.db_path, exclusive=repair)
    try:
        with lock:
            db = sqlite3.connect(config.db_path, isolation_level=None)
            try:
                if not repair:
                    db.execute("PRAGMA query_only = ON")
                found = fsck.check(db, full=not quick)
                for f in found:
                    print(f"{f.check}: {f.text}" + ("" if f.repairable else " [not repairable]"))
                if not repair:
                    print(
                        f"fsck {config.db_path}: "
                        + (f"{len(found)} problem(s)" if found else "clean")
                    )
                    return 1 if found else 0
                for f in fsck.repair(db, found):
                    print(f"repaired {f.check}: {f.text}")
                left = fsck.check(db, full=not quick)
            finally:
                db.close()
    except sqlite3.DatabaseError as exc:
        return _fail(f"{config.db_path}: {exc}", 2)
    print(
        f"fsck --repair {config.db_path}: " + (f"{len(left)} problem(s) left" if left else "clean")
    )
    return 1 if left else 0


def init_store(config: Config) -> int:
    """Create the store if there is none; an empty or damaged one is moved aside (kept as
    ``imapd.sqlite3.damaged-STAMP``) and replaced by a new one; a sound one is left alone."""
    from store.open import open_store

    files.private_dir(config.data_dir)
    if _server_answers(config.data_dir):
        return _fail(f"a server is running on {config.data_dir}", EXIT_IN_USE)
    with files.StoreLock(config.db_path, exclusive=True):
        problem: str | None = None
        try:
            existed = files.check_database(config.db_path)
            if existed:
                _quick_check(config.db_path)
        except StoreDamaged as exc:
            problem, existed = exc.text, True
        if existed and problem is None:
            print(f"{config.db_path} is a sound store: left as it is")
            return 0
        if problem is not None:
            aside = files.move_aside(config.db_path, "damaged")
            print(f"{problem}\nmoved aside to {aside}")

    async def create() -> None:
        store = await open_store(config.db_path, lambda changes: None)
        await store.close()

    asyncio.run(create())
    print(f"new empty store at {config.db_path}")
    return 0


def _quick_check(path: Path) -> None:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = [str(r[0]) for r in db.execute("PRAGMA quick_check")]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise files.damaged(exc, path) or StoreDamaged(f"{path}: {exc}") from exc
    if rows != ["ok"]:
        raise StoreDamaged(f"{path} fails quick_check: {'; '.join(rows[:3])}")
