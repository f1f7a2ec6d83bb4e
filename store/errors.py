"""Store errors. Each class carries its RFC 5530 response code as a plain string, so the store
imports nothing of IMAP and the dispatcher maps any StoreError to ``NO [code] text``.

```
StoreError                 NO
 +- MailboxNotFound        [NONEXISTENT]  ([TRYCREATE] when it is an APPEND/COPY/MOVE target)
 +- MailboxExists          [ALREADYEXISTS]
 +- MailboxInvalid         [CANNOT]   bad name, INBOX rules, \\Noselect rules
 +- HasChildren            [INUSE]? no: [CANNOT] (RFC 3501 §6.3.4 DELETE of a name with children)
 +- AuthFailed             [AUTHENTICATIONFAILED]
 +- UserExists / UserNotFound
 +- OverQuota              [OVERQUOTA]
 +- TooBig                 [TOOBIG]
 +- NoPermission           [NOPERM]
 +- Unavailable            [UNAVAILABLE]  the store cannot write now (try again later)
 |   +- DiskFull           SQLITE_FULL, ENOSPC, EDQUOT
 |   +- StorageFailed      an I/O error writing the files (SQLITE_IOERR_WRITE, _FSYNC, ...)
 |   +- StoreInUse         restore/repair/init while a server or command has it open
 +- StoreDamaged           [CORRUPTION]   an empty, unreadable or damaged database file
```
Unavailable and StoreDamaged come from store/sqlite/files.py, which maps sqlite3 and OS errors.

"""

from __future__ import annotations


class StoreError(Exception):
    code: str | None = None

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class MailboxNotFound(StoreError):
    code = "NONEXISTENT"


class MessageGone(StoreError):
    """The message a command names was expunged (REPLACE's source, RFC 8508 §3.3)."""

    code = "EXPUNGEISSUED"


class MailboxExists(StoreError):
    code = "ALREADYEXISTS"


class MailboxInvalid(StoreError):
    code = "CANNOT"


class AuthFailed(StoreError):
    """Wrong password or unknown user: one answer for both. ``unknown_user`` is for the
    server's log only (an operator may learn which; a client never does)."""

    code = "AUTHENTICATIONFAILED"

    def __init__(self, text: str, *, unknown_user: bool = False) -> None:
        super().__init__(text)
        self.unknown_user = unknown_user


class UserExists(StoreError):
    code = "ALREADYEXISTS"


class UserNotFound(StoreError):
    code = "NONEXISTENT"


class OverQuota(StoreError):
    code = "OVERQUOTA"


class TooBig(StoreError):
    code = "TOOBIG"


class NoPermission(StoreError):
    code = "NOPERM"


class ModifiedSince(StoreError):
    """Never raised to clients directly; STORE UNCHANGEDSINCE reports [MODIFIED] in results."""

    code = "MODIFIED"


class Unavailable(StoreError):
    """The store cannot do this now; nothing was changed and a retry may succeed."""

    code = "UNAVAILABLE"


class DiskFull(Unavailable):
    """The file system (or a quota on it) has no room for the write."""


class StorageFailed(Unavailable):
    """The operating system failed a write, sync or resize of a store file."""


class StoreInUse(Unavailable):
    """An operation that needs the store to itself found it open elsewhere."""


class StoreUnreachable(Unavailable):
    """A store named by URL cannot be opened at start: its server is down or unreachable,
    refuses the login or the database, or has a schema newer than this program. The text
    names the URL with its password masked; a command ends with exit status 2."""


class StoreDamaged(StoreError):
    """The database file is empty, unreadable or damaged: refused rather than started empty."""

    code = "CORRUPTION"
