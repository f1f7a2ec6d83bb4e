"""``imapd backup`` and ``imapd restore``: a consistent copy of a live store, and putting one
back without ever handing out a UID a client may hold for another message.

Owns:
- `backup`: SQLite's online backup API copying every page in one step, so the copy is
  one read transaction's snapshot (WAL: the server keeps writing meanwhile). It goes to a
  temporary name beside DEST (mode 0600), is switched to a single-file journal, checked
  (quick_check) and renamed into place; ``meta.backup_taken`` records when.
- `restore`: the copy replaces the store, adjusted first (in one transaction, on a
  temporary copy; the replaced store is kept beside it as ``imapd.sqlite3.replaced-STAMP``):

  * UIDs. Messages appended after the backup may have been seen by clients under UIDs at
    or above the backup's UIDNEXT; the restored store would give those UIDs to new,
    different messages. So every mailbox gets a NEW UIDVALIDITY (strictly above every one
    either store used, and above the clock's seconds, as the store hands them out; clients
    drop their cache of the mailbox and resync, RFC 3501 §2.3.1.1), unless the replaced
    store is readable, passes quick_check and holds a mailbox of the same owner, name and
    UIDVALIDITY: then that mailbox keeps its UIDVALIDITY, its UIDNEXT is raised to the
    replaced store's (no UID it used is given again), every restored message gets a new
    MODSEQ above both stores' HIGHESTMODSEQ, and the UIDs the replaced store knew that the
    backup lacks are recorded as expunged at that MODSEQ, so CONDSTORE/QRESYNC clients see
    the flags and the vanished messages as changes (RFC 7162).
  * The change_log sequence continues above the replaced store's (or, with no readable
    replaced store, jumps `UNKNOWN_SEQ_GAP` above the backup's): an event sink or webhook
    that remembered a seq never sees it again for another event. Every durable cursor
    (``event_cursors``) is set to the new start: the restored history is not sent again.
    The gap is recorded in ``meta.change_log_gaps`` (fsck knows it is intended).
  * AUTOINCREMENT sequences of users, mailboxes and contents continue above both stores'.

The caller holds the store lock exclusively (store/sqlite/files.py) so no server or command has
the store open. Plain sqlite3, synchronous. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from store.errors import StoreDamaged
from store.sqlite import files
from store.sqlite.migrate import available

#: The change_log seq jump when the replaced store cannot be read (its last seq is unknown):
#: larger than any number of changes a store makes between two backups.
UNKNOWN_SEQ_GAP = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Summary:
    users: int
    mailboxes: int
    messages: int
    change_log_head: int
    size: int  # octets of the file


@dataclass(slots=True)
class RestoreReport:
    summary: Summary
    replaced: Path | None = None  # where the replaced store was moved (None: there was none)
    replaced_readable: bool = False
    #: (owner/name, old UIDVALIDITY, new UIDVALIDITY) of the mailboxes given a new one.
    renewed: list[tuple[str, int, int]] = field(default_factory=list)
    #: (owner/name, UIDVALIDITY, UIDNEXT) of the mailboxes that kept theirs.
    kept: list[tuple[str, int, int]] = field(default_factory=list)
    change_log_from: int = 0  # the first seq the restored store will use


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)


def summary(db: sqlite3.Connection, path: Path) -> Summary:
    (users,) = db.execute("SELECT count(*) FROM users WHERE name != ''").fetchone()
    (mailboxes,) = db.execute("SELECT count(*) FROM mailboxes").fetchone()
    (messages,) = db.execute("SELECT count(*) FROM messages").fetchone()
    return Summary(users, mailboxes, messages, _head(db), path.stat().st_size)


def _head(db: sqlite3.Connection) -> int:
    row = db.execute(
        "SELECT max((SELECT coalesce(max(seq), 0) FROM change_log),"
        " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'change_log'),"
        " 0))"
    ).fetchone()
    return int(row[0])


def _copy(source: sqlite3.Connection, target: Path) -> sqlite3.Connection:
    """A new file at ``target`` (0600) holding ``source``'s pages, taken in one step (one
    read transaction: a consistent snapshot); returned open, in rollback-journal mode."""
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, files.FILE_MODE))
    dest = sqlite3.connect(target, isolation_level=None)
    try:
        source.backup(dest)  # pages=-1: all at once
        dest.execute("PRAGMA journal_mode = DELETE")
    except BaseException:
        dest.close()
        raise
    return dest


def _finish(tmp: Path, target: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)
    files.fsync_dir(target.parent)


def _discard(tmp: Path) -> None:
    for path in (tmp, *(files.companion(tmp, s) for s in (*files.SUFFIXES, "-journal"))):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def backup_target(dest: Path, now: dt.datetime) -> Path:
    """DEST itself, or in a directory DEST ``imapd-YYYYmmddTHHMMSSZ.sqlite3``."""
    if dest.is_dir():
        return dest / f"imapd-{now.strftime('%Y%m%dT%H%M%SZ')}.sqlite3"
    return dest


def backup(db_path: Path, dest: Path, now: dt.datetime | None = None) -> tuple[Path, Summary]:
    """Copy the store at ``db_path`` to ``dest`` (a new file, or a directory to put one in)
    while it may be serving. Raises FileExistsError if the file exists, StoreDamaged if the
    store or the copy fails its check."""
    now = now or dt.datetime.now(dt.UTC)
    target = backup_target(dest, now)
    if target.exists():
        raise FileExistsError(f"{target} exists; backups never overwrite")
    if not files.check_database(db_path):
        raise FileNotFoundError(f"no store at {db_path}")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    source = _connect_ro(db_path)
    try:
        dest_db = _copy(source, tmp)
        try:
            dest_db.execute(
                "INSERT INTO meta (key, value) VALUES ('backup_taken', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (now.replace(microsecond=0).isoformat(),),
            )
            problems = [str(r[0]) for r in dest_db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise StoreDamaged(f"the copy fails its check: {'; '.join(problems[:3])}")
            info = summary(dest_db, tmp)
        finally:
            dest_db.close()
        _finish(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
    finally:
        source.close()
    return target, Summary(
        info.users, info.mailboxes, info.messages, info.change_log_head, target.stat().st_size
    )


# --- restore -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Live:
    """What the replaced store tells about the UIDs and seqs clients may have seen."""

    uidvalidity: int
    #: (owner, name) -> (id, uidvalidity, uidnext, highestmodseq)
    mailboxes: dict[tuple[str, str], tuple[int, int, int, int]]
    head: int
    sequences: dict[str, int]
    db: sqlite3.Connection


def _read_live(db_path: Path) -> _Live | None:
    """The replaced store, read-only, or None if there is none, it cannot be read or it
    fails quick_check."""
    try:
        if not files.check_database(db_path):
            return None
        db = _connect_ro(db_path)
    except (StoreDamaged, sqlite3.Error, OSError):
        return None
    try:
        # Only a sound store proves anything: a damaged one's counters could be wrong, and a
        # UIDNEXT too low would hand out UIDs again. Then every mailbox gets a new UIDVALIDITY.
        if [str(r[0]) for r in db.execute("PRAGMA quick_check")] != ["ok"]:
            db.close()
            return None
        mailboxes = {
            (owner, name): (mid, uv, nxt, hms)
            for mid, owner, name, uv, nxt, hms in db.execute(
                "SELECT m.id, u.name, m.name, m.uidvalidity, m.uidnext, m.highestmodseq"
                " FROM mailboxes m JOIN users u ON u.id = m.owner_id"
            )
        }
        row = db.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
        sequences = {str(n): int(s) for n, s in db.execute("SELECT name, seq FROM sqlite_sequence")}
        live = _Live(int(row[0]) if row else 0, mailboxes, _head(db), sequences, db)
    except sqlite3.Error:
        db.close()
        return None
    return live


def _live_uids(live: _Live, mailbox_id: int) -> set[int]:
    """Every UID the replaced store used in a mailbox (present or expunged)."""
    try:
        rows = live.db.execute(
            "SELECT uid FROM messages WHERE mailbox_id = ? UNION"
            " SELECT uid FROM expunged WHERE mailbox_id = ?",
            (mailbox_id, mailbox_id),
        ).fetchall()
    except sqlite3.Error:
        return set()  # unreadable rows: UIDNEXT alone still keeps the UIDs unused
    return {int(r[0]) for r in rows}


def check_source(src: Path) -> None:
    """Refuse a restore source that is not a sound store of a schema this program knows."""
    if not files.check_database(src):
        raise FileNotFoundError(f"{src} does not exist")
    db = _connect_ro(src)
    try:
        problems = [str(r[0]) for r in db.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise StoreDamaged(f"{src} fails integrity_check: {'; '.join(problems[:3])}")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if not 1 <= version <= len(available()):
            raise StoreDamaged(
                f"{src} has schema version {version}: not an imapd store this"
                f" program can read (1..{len(available())})"
            )
    except sqlite3.DatabaseError as exc:
        raise files.damaged(exc, src) or StoreDamaged(f"{src}: {exc}") from exc
    finally:
        db.close()


def restore(src: Path, db_path: Path, *, clock: Callable[[], float] = time.time) -> RestoreReport:
    """Replace the store at ``db_path`` by the backup ``src``, adjusted as the module says.
    The caller holds `files.StoreLock` exclusively. Raises StoreDamaged for a bad ``src``."""
    check_source(src)
    tmp = db_path.with_name(f".{db_path.name}.restore-{os.getpid()}")
    _discard(tmp)
    live = _read_live(db_path)
    report: RestoreReport
    try:
        source = _connect_ro(src)
        try:
            db = _copy(source, tmp)
        finally:
            source.close()
        try:
            report = _adjust(db, live, clock)
            db.execute("PRAGMA journal_mode = WAL")  # the store's mode, set before it opens
            report.summary = summary(db, tmp)
        finally:
            db.close()
        report.replaced_readable = live is not None
        if live is not None:
            live.db.close()
            live = None
        if db_path.exists() or files.companion(db_path, "-wal").exists():
            report.replaced = files.move_aside(db_path, "replaced")
        _finish(tmp, db_path)
    except BaseException:
        if live is not None:
            live.db.close()
        _discard(tmp)
        raise
    return report


def _adjust(
    db: sqlite3.Connection, live: _Live | None, clock: Callable[[], float]
) -> RestoreReport:
    """The restore's changes to the copy, in one transaction (see the module docstring)."""
    report = RestoreReport(summary=Summary(0, 0, 0, 0, 0))
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
        (top_uv,) = db.execute("SELECT coalesce(max(uidvalidity), 0) FROM mailboxes").fetchone()
        last_uv = max(int(row[0]) if row else 0, top_uv)
        if live is not None:
            last_uv = max([last_uv, live.uidvalidity, *(v[1] for v in live.mailboxes.values())])
        mailboxes = db.execute(
            "SELECT m.id, u.name, m.name, m.uidvalidity, m.uidnext, m.highestmodseq"
            " FROM mailboxes m JOIN users u ON u.id = m.owner_id ORDER BY m.id"
        ).fetchall()
        for mid, owner, name, uv, uidnext, hms in mailboxes:
            label = f"{owner}/{name}" if owner else f"Shared/{name}"
            same = live.mailboxes.get((owner, name)) if live is not None else None
            if live is not None and same is not None and same[1] == uv:
                live_id, _, live_next, live_hms = same
                new_next = max(uidnext, live_next)
                modseq = max(hms, live_hms) + 1
                ours = {
                    int(r[0])
                    for r in db.execute(
                        "SELECT uid FROM messages WHERE mailbox_id = ? UNION"
                        " SELECT uid FROM expunged WHERE mailbox_id = ?",
                        (mid, mid),
                    )
                }
                gone = sorted(_live_uids(live, live_id) - ours)
                db.executemany(
                    "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
                    [(mid, uid, modseq) for uid in gone],
                )
                db.execute("UPDATE messages SET modseq = ? WHERE mailbox_id = ?", (modseq, mid))
                db.execute(
                    "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?,"
                    " recent_uid = max(recent_uid, ?) WHERE id = ?",
                    (new_next, modseq, new_next, mid),
                )
                report.kept.append((label, uv, new_next))
            else:
                last_uv = max(int(clock()), last_uv + 1)
                db.execute("UPDATE mailboxes SET uidvalidity = ? WHERE id = ?", (last_uv, mid))
                report.renewed.append((label, uv, last_uv))
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value",
            (last_uv,),
        )
        # Sequences: continue above both stores'.
        head = _head(db)
        floor = max(head, live.head) if live is not None else head + UNKNOWN_SEQ_GAP
        sequences = {str(n): int(s) for n, s in db.execute("SELECT name, seq FROM sqlite_sequence")}
        wanted = dict(sequences)
        if live is not None:
            for table, seq in live.sequences.items():
                if table in {"users", "mailboxes", "contents", "quota_roots"}:
                    wanted[table] = max(wanted.get(table, 0), seq)
        wanted["change_log"] = floor
        for table, seq in wanted.items():
            db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (seq, table))
            db.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS"
                " (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                (table, seq, table),
            )
        if floor > head:
            row = db.execute("SELECT value FROM meta WHERE key = 'change_log_gaps'").fetchone()
            gaps = json.loads(row[0]) if row else []
            gaps.append([head, floor + 1])
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('change_log_gaps', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(gaps),),
            )
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'event_cursors'").fetchone():
            db.execute("UPDATE event_cursors SET seq = ?", (floor,))
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('restored', ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value",
            (dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),),
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    report.change_log_from = floor + 1
    return report
