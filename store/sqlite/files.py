"""The store's files on disk: modes, creation, the pre-open check, the lock, and what an OS or
SQLite error about them means.

Owns:
- Modes. A new database is created 0600 (its ``-wal`` and ``-shm`` inherit that mode: SQLite
  gives them the database's permissions), the data directory 0700 (`private_dir`). Modes
  found wider on an existing directory or file are *warned about* at every open, never
  changed: an operator may have chosen them (a backup group, say); the warning says how to
  narrow them (`warn_if_shared`).
- Creation. A new database is built beside its final name and renamed into place once its
  first page (the header, in WAL mode) is on disk (`create_database`), so a crash or a full
  disk during creation never leaves a 0-byte ``imapd.sqlite3``: an empty file at that name
  is therefore damage, and `check_database` refuses it, as it refuses a file that is not a
  database or cannot be read.
- The lock. Every open of the store holds a shared `flock` on ``imapd.sqlite3.lock`` for as
  long as it is open; ``imapd restore``, ``init`` and ``fsck --repair`` take it exclusively
  (`StoreLock`), so they never replace or repair a store that a server or a command has
  open.
- Error meaning. `unavailable` maps SQLITE_FULL / ENOSPC / EDQUOT (disk full) and the
  SQLITE_IOERR codes of a failed write, sync or resize to `Unavailable` subclasses (RFC 5530
  ``[UNAVAILABLE]``): `DiskFull` when the file system has under 1 MiB left (SQLite reports
  a -shm that cannot grow as SQLITE_IOERR_SHMSIZE and keeps errno to itself), else
  `StorageFailed`; `damaged` maps SQLITE_CORRUPT / SQLITE_NOTADB (and SQLITE_CANTOPEN /
  SQLITE_READONLY: a store that cannot be opened for writing) to `StoreDamaged`.

Imports nothing of imapd or notify.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import logging
import os
import sqlite3
import stat
from pathlib import Path
from types import TracebackType

from store.errors import DiskFull, StorageFailed, StoreDamaged, StoreInUse, Unavailable

log = logging.getLogger("store.files")

DIR_MODE = 0o700
FILE_MODE = 0o600
#: The first 16 octets of every SQLite 3 database (https://sqlite.org/fileformat.html).
SQLITE_HEADER = b"SQLite format 3\x00"
#: The database's companions, moved and checked along with it.
SUFFIXES = ("-wal", "-shm")

#: Free space under which a failed write (SQLITE_IOERR_*) is taken for a full disk.
LOW_SPACE = 1 << 20
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: SQLITE_IOERR extended codes that mean writing to the disk failed (not a read or a lock).
_WRITE_IOERRS = frozenset(
    {
        sqlite3.SQLITE_IOERR_WRITE,
        sqlite3.SQLITE_IOERR_FSYNC,
        sqlite3.SQLITE_IOERR_DIR_FSYNC,
        sqlite3.SQLITE_IOERR_TRUNCATE,
        sqlite3.SQLITE_IOERR_SHMSIZE,
        sqlite3.SQLITE_IOERR_SHMMAP,
        sqlite3.SQLITE_IOERR_SEEK,
        sqlite3.SQLITE_IOERR_DELETE,
    }
)


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


# --- what an error means ------------------------------------------------------------------
def unavailable(exc: BaseException, path: Path | str | None = None) -> Unavailable | None:
    """The `Unavailable` an OS or SQLite error about the store's files means, or None.
    ``path`` (the database) is where free space is looked up; the text never names it:
    it goes to IMAP clients (callers add it where an operator reads it)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return None
        if code & 0xFF == sqlite3.SQLITE_FULL:
            return DiskFull("Disk full: the store cannot grow")
        if code in _WRITE_IOERRS:
            if path is not None and no_room(Path(path)):  # SQLite keeps errno to itself
                return DiskFull("Disk full: the store cannot grow")
            return StorageFailed(
                f"I/O error writing the store: {getattr(exc, 'sqlite_errorname', code)}"
            )
        return None
    if isinstance(exc, OSError):
        if exc.errno in _DISK_FULL_ERRNOS:
            return DiskFull(f"Disk full: {exc.strerror}")
        if exc.errno == errno.EIO:
            return StorageFailed(f"I/O error: {exc.strerror}")
    return None


def no_room(path: Path) -> bool:
    """True if the file system holding ``path`` has less than `LOW_SPACE` octets left for
    this process (root may use the blocks reserved for it)."""
    try:
        st = os.statvfs(path if path.is_dir() else path.parent)
    except OSError:
        return False
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize < LOW_SPACE


def damaged(exc: BaseException, path: Path | str) -> StoreDamaged | None:
    """The `StoreDamaged` a SQLite error reading the database means, or None."""
    code = getattr(exc, "sqlite_errorcode", None)
    if (
        isinstance(exc, sqlite3.Error)
        and code is not None
        and (code & 0xFF in {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY})
    ):
        return StoreDamaged(
            f"{path} cannot be opened for writing ({exc}): check the data"
            " directory's owner, modes and mount"
        )
    if (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and (code & 0xFF in {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
    ):
        return StoreDamaged(
            f"{path} is damaged ({exc}); run `imapd fsck`, restore a backup"
            " (`imapd restore`) or start afresh (`imapd init`)"
        )
    return None


# --- modes --------------------------------------------------------------------------------
def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with mode 0700 if missing; an existing one is kept."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask: exactly 0700


def _shared_bits(path: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o077
    except FileNotFoundError:
        return None


def warn_if_shared(db_path: Path) -> list[Path]:
    """Log a warning for the data directory and each store file that group or others may
    access; return them. Modes are left alone: the operator may have chosen them."""
    wide: list[Path] = []
    for path in (db_path.parent, db_path, *(companion(db_path, s) for s in SUFFIXES)):
        bits = _shared_bits(path)
        if bits:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            want = DIR_MODE if path == db_path.parent else FILE_MODE
            log.warning(
                "%s has mode %04o: other local users may read the mail and password"
                " hashes in it; `chmod %04o %s` makes it private (imapd never changes"
                " an existing mode)",
                path,
                mode,
                want,
                path,
            )
            wide.append(path)
    return wide


def companion(db_path: Path, suffix: str) -> Path:
    return db_path.with_name(db_path.name + suffix)


# --- creation and the pre-open check ------------------------------------------------------
def check_database(db_path: Path) -> bool:
    """Before opening: True if the database exists (and looks like one), False if there is
    none yet. Raises StoreDamaged for an empty file (with no WAL content that could fill
    it), a file that is not SQLite, or one that cannot be read (PermissionError and other
    OSErrors say why)."""
    try:
        info = os.stat(db_path)
    except FileNotFoundError:
        wal = companion(db_path, "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreDamaged(
                f"{db_path} is missing but {wal.name} is not: refusing to start a new store"
                " over the remains of one. Restore a backup (`imapd restore`), or move"
                f" {wal.name} away to start afresh"
            ) from None
        return False
    if not stat.S_ISREG(info.st_mode):
        raise StoreDamaged(f"{db_path} is not a regular file")
    try:
        with open(db_path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreDamaged(f"{db_path} cannot be read: {exc.strerror}") from exc
    if not head:
        wal = companion(db_path, "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return True  # the pages may all be in the WAL yet; SQLite reads it
        raise StoreDamaged(
            f"{db_path} is empty (0 bytes): refusing to start as an empty server (every user"
            " and message would be gone). Restore a backup (`imapd restore`) or, to start"
            " afresh on purpose, run `imapd init` (or `imapd serve --init`)"
        )
    if head != SQLITE_HEADER:
        raise StoreDamaged(
            f"{db_path} is not an SQLite database (header {head!r}); restore a"
            " backup (`imapd restore`) or start afresh (`imapd init`)"
        )
    return True


def create_database(db_path: Path) -> None:
    """Create an empty WAL-mode database at ``db_path`` (mode 0600), atomically: built at a
    temporary name and renamed into place with its header written, so a failure part way
    (a full disk) leaves no file at ``db_path``."""
    tmp = db_path.with_name(f".{db_path.name}.new-{os.getpid()}")
    for path in (tmp, *(companion(tmp, s) for s in SUFFIXES)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, db_path)
        fsync_dir(db_path.parent)
    except BaseException:
        for path in (tmp, *(companion(tmp, s) for s in SUFFIXES)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_aside(db_path: Path, why: str) -> Path:
    """Rename the database and its companions to ``NAME.WHY-YYYYmmddTHHMMSSZ[-wal|-shm]``
    (kept, never deleted); return the new database path."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = db_path.with_name(f"{db_path.name}.{why}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = db_path.with_name(f"{db_path.name}.{why}-{stamp}.{n}")
    for suffix in SUFFIXES:
        source = companion(db_path, suffix)
        if source.exists():
            os.replace(source, companion(target, suffix))
    os.replace(db_path, target)
    fsync_dir(db_path.parent)
    return target


# --- the lock -----------------------------------------------------------------------------
class StoreLock:
    """A `flock` on ``imapd.sqlite3.lock``: shared for every open store, exclusive for
    restore, init and repair. Never blocks: a lock held the other way raises StoreInUse."""

    def __init__(self, db_path: Path, *, exclusive: bool) -> None:
        self.path = lock_path(db_path)
        self.exclusive = exclusive
        self._fd: int | None = None

    def acquire(self) -> StoreLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            if self.exclusive or exc.errno not in {errno.EROFS, errno.EACCES, errno.EPERM}:
                raise
            # A directory this process cannot write (a read-only copy being inspected): it
            # cannot write the store either, so there is nothing to keep a restore from.
            log.debug("no shared lock on %s: %s", self.path, exc)
            return self
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if self.exclusive:
                raise StoreInUse(
                    f"{self.path.parent} is in use by a running server or imapd command;"
                    " stop the server first"
                ) from None
            raise StoreInUse(
                f"{self.path.parent} is being restored, initialised or"
                " repaired; try again when that is done"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
