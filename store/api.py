"""The narrow async Store interface, by use case, and its value types.

Owns: what handlers may ask of the store. Handlers never write SQL. Mailbox names are Unicode
with ``/`` as the hierarchy delimiter; ``INBOX`` is always spelled so. Every method that changes
the store runs ONE transaction that also writes its Change rows to ``change_log``, and after
COMMIT calls the ``publish`` callable given at open, in commit order. Imports nothing of imapd
or notify.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from store.changes import Change, FlagChange, MailboxRef, MessageFacts, Origin
from store.cluster import ClusterStore
from store.mime import BodyPart
from store.sortthread.records import SortRecord
from store.sortthread.threads import Node

if TYPE_CHECKING:  # these import api (DELIMITER) themselves
    from store.acl import Modification
    from store.metadata import MetadataLimits
    from store.quota import Limits, QuotaInfo

DELIMITER = "/"
#: What `Store.fetch_plain` can read besides the UID (a FETCH of flags, numbers and dates).
PLAIN_COLUMNS = ("modseq", "flags", "size", "internaldate")
#: ... and from the contents (issue 17, FETCH rendered from rows: imapd/fetch_rows.py):
#: ``wire`` (`MessageRecord.wire`, None when not stored), ``header`` (the header block,
#: None when longer than `HEADER_ROW_MAX`: read it with `Store.fetch`), ``raw`` (the message).
CONTENT_COLUMNS = ("wire", "header", "raw")
HEADER_ROW_MAX = 64 * 1024

Publish = Callable[[Sequence[Change]], None]
#: The server's renderer of what FETCH sends for a parsed message (imapd/fetch_wire.py),
#: handed to the store when it is opened: called at APPEND, its bytes kept with the
#: contents and returned as `MessageRecord.wire`. The store never looks inside them.
Prerender = Callable[[BodyPart], bytes]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class MailboxRow:
    """What a mailbox row holds, with its owner's name: the fields `MailboxInfo` and a
    backend's own row type (store/sqlite/base.py `_Mbox`) share. ``selectable`` is False
    for a ``\\Noselect`` placeholder left by DELETE of a mailbox that has children
    (RFC 3501 §6.3.4); ``deleted`` counts the messages flagged \\Deleted (STATUS DELETED,
    RFC 9051 §6.3.11)."""

    id: int
    owner_id: int
    owner: str
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    messages: int
    unseen: int
    size: int
    deleted: int = 0
    special_use: tuple[str, ...] = ()
    selectable: bool = True
    retention_days: int | None = None


@dataclass(frozen=True, slots=True)
class MailboxInfo(MailboxRow):
    """A mailbox row with its live figures, as one user sees it (``name``, ``rights``,
    ``subscribed``; ``owner`` and ``owner_id`` are the real owner's). ``ref`` is only
    right for the viewer's own mailboxes. Built with keywords (``recent`` is keyword-only,
    after the row's fields)."""

    recent: int = field(kw_only=True)  # \Recent messages no session has claimed yet
    subscribed: bool = False
    #: The asking user's effective rights (RFC 4314, store/acl.py): all of them on their own
    #: mailboxes. ``name`` is the name as that user sees it ("Other Users/alice/INBOX").
    rights: str = "lrswipkxtea"

    @property
    def ref(self) -> MailboxRef:
        return MailboxRef(self.id, self.owner, self.name, self.uidvalidity)


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """What SELECT needs, read in ONE read transaction.

    ``seq`` is MAX(change_log.seq) in that same transaction: a session subscribes to the feed
    before calling `open_mailbox` and then ignores changes with ``seq <= snapshot.seq``.
    ``recent`` are the UIDs this session is the first to see (claimed if ``claim_recent``).
    """

    mailbox: MailboxInfo
    uids: list[int]
    recent: frozenset[int]
    first_unseen_uid: int | None
    keywords: tuple[str, ...]  # keywords in use in the mailbox, for FLAGS/PERMANENTFLAGS
    seq: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    #: The octets, or a file holding them (a big upload spooled to disk): the store then
    #: reads it in chunks and never holds more than one copy of it at a time.
    content: bytes | Path
    flags: tuple[str, ...] = ()
    internaldate: dt.datetime | None = None  # aware; None means now


@dataclass(frozen=True, slots=True)
class AppendResult:
    mailbox: MailboxRef
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CopyResult:
    uidvalidity: int  # of the destination
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]  # dest_uids[i] is the copy of source_uids[i]
    expunged: tuple[int, ...] = ()  # MOVE: source UIDs removed


@dataclass(frozen=True, slots=True)
class StoreFlagsResult:
    """``changes``: messages whose flags really changed. ``current``: uid -> (flags, modseq)
    for every existing requested message (changed or not). ``modified``: UIDs that failed
    UNCHANGEDSINCE (RFC 7162 §3.1.3)."""

    changes: tuple[FlagChange, ...]
    current: dict[int, tuple[tuple[str, ...], int]]
    modified: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageRecord:
    uid: int
    modseq: int
    flags: tuple[str, ...]
    internaldate: dt.datetime
    size: int
    savedate: dt.datetime | None = None
    content: bytes | None = None  # the raw message, when asked
    structure: BodyPart | None = None  # parsed at APPEND, when asked
    content_id: int | None = None  # the shared contents row: EMAILID (store/objectid.py)
    #: The renderer's bytes made at APPEND (`Prerender`), when asked and stored: opaque here.
    wire: bytes | None = None
    #: The message's header block (its first ``header_len`` octets), when asked.
    header: bytes | None = None
    #: RFC 8970 PREVIEW text, set by the FETCH handler from `Store.previews`.
    preview: str | None = None


@dataclass(frozen=True, slots=True)
class Criterion:
    """A store-level search predicate: IMAP's search keys with session state resolved.

    Names are those of `imapd.protocol.values.SearchKey` except that sequence sets,
    ``$``, RECENT, NEW and OLD were resolved by the session into ``UIDS``, whose value is a
    tuple of inclusive (low, high) UID ranges. ``AND``/``OR``/``NOT`` have ``children``.
    Text keys (BCC, BODY, CC, FROM, SUBJECT, TEXT, TO, HEADER) match case-insensitive
    substrings of decoded text (RFC 3501 §6.4.4).
    """

    name: str
    value: str | int | dt.date | tuple[tuple[int, int], ...] | None = None
    header: str | None = None
    children: tuple[Criterion, ...] = ()


class ChangeFeed(Protocol):
    """The committed changes, in commit order, and the message reads their events need: what
    a consumer outside the sessions uses (the server's sink, ``imapd notifyd --outbox``,
    the webhook, ``imapd events tail``). store/open.py's `open_change_feed` gives another
    process a read-only one; every `Store` is one too."""

    async def close(self) -> None: ...

    async def change_log(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]:
        """(seq, kind, payload) rows with seq > ``after``, ascending, at most ``limit``;
        store/changes.py's `read_change` turns one into a Change."""
        ...

    def follow(
        self,
        after: int,
        *,
        wait: Callable[[], Awaitable[None]] | None = None,
        unreadable: Callable[[int, str], None] | None = None,
    ) -> AsyncGenerator[Change, None]:
        """The committed Changes with seq > ``after``, in commit order (store/changefeed.py
        is the loop). ``unreadable(seq, kind)`` is told of a row this version cannot read,
        in its place (it is skipped). At the end: stop, or with ``wait`` await it and read
        on. Close it (``contextlib.aclosing``) when leaving early."""
        ...

    async def change_log_head(self) -> int:
        """The highest change_log seq (0 when empty)."""
        ...

    async def event_cursor(self, name: str) -> int | None:
        """The last seq consumer ``name`` delivered, or None if it never ran."""
        ...

    async def set_event_cursor(self, name: str, seq: int) -> None:
        """Remember that consumer ``name`` delivered everything up to ``seq`` (no Change)."""
        ...

    async def fetch(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        *,
        content: bool = False,
        structure: bool = False,
        changedsince: int | None = None,
        wire: bool = False,
        header: bool = False,
    ) -> list[MessageRecord]:
        """Records of the existing messages among ``uids``, in UID order; ``changedsince``
        keeps only those with modseq > it. ``wire``: each record's `MessageRecord.wire`
        where one was stored, else its ``structure`` (so the caller can render from it);
        ``header``: `MessageRecord.header`. One query for the batch."""
        ...


class Store(ChangeFeed, ClusterStore, Protocol):  # ClusterStore: docs/workers.md
    """What the server, its sessions' handlers, LMTP and the CLI ask of the store, grouped
    by use. Each docstring says what it raises (store.errors). A backend implements all of
    it (SQLite: store/sqlite/store.py); store/open.py picks one."""

    # --- users (CLI and authentication) ---------------------------------------------------
    async def create_user(self, name: str, password: str, *, admin: bool = False) -> User:
        """Create a user with INBOX, Drafts, Sent, Trash, Junk, Archive (RFC 6154 uses).
        Raises UserExists."""
        ...

    async def authenticate(self, name: str, password: str) -> User:
        """Raises AuthFailed (same error for unknown user and wrong password)."""
        ...

    async def get_user(self, name: str) -> User:
        """Raises UserNotFound."""
        ...

    async def set_password(self, name: str, password: str) -> None:
        """Raises UserNotFound."""
        ...

    async def delete_user(self, name: str) -> None:
        """Deletes the user and all their mailboxes and messages. Raises UserNotFound."""
        ...

    async def list_users(self) -> list[User]: ...

    async def set_admin(self, name: str, admin: bool) -> User:
        """Grant or revoke the admin flag (``imapd user admin``): admins create shared
        mailboxes and administer every ACL (store/acl.py). Raises UserNotFound."""
        ...

    # --- access control (RFC 4314) ----------------------------------------------------------
    async def acl_entries(self, mailbox_id: int) -> list[tuple[str, str]]:
        """The stored ACL of a mailbox: (identifier, canonical rights), sorted; the owner's
        implicit entry is not among them. The caller checked the ``a`` right."""
        ...

    async def set_acl(
        self,
        user_id: int,
        name: str,
        identifier: str,
        change: Modification | None,
        origin: Origin,
    ) -> str:
        """SETACL (``change``) or DELETEACL (None) on the mailbox ``name`` means for
        ``user_id``, with its AclChanged in the same transaction. Returns the entry's rights
        after. The caller checked the ``a`` right. Raises MailboxNotFound, MailboxInvalid
        (the owner's own entry)."""
        ...

    # --- annotations (RFC 5464) -------------------------------------------------------------
    async def get_metadata(
        self, user_id: int, mailbox: str | None, entries: Sequence[str], *, depth: int | None
    ) -> list[tuple[str, bytes | None]]:
        """GETMETADATA: entries of a mailbox (None: the server) as ``user_id`` sees them,
        None for a requested entry without value. Raises MailboxNotFound."""
        ...

    async def set_metadata(
        self,
        user_id: int,
        mailbox: str | None,
        items: Sequence[tuple[str, bytes | None]],
        origin: Origin,
        limits: MetadataLimits,
    ) -> tuple[str, ...]:
        """SETMETADATA in one transaction with its MetadataChanged changes; a None value
        removes the entry. Returns the entries changed. Raises MailboxNotFound,
        MetadataNoPrivate, MetadataTooBig, MetadataTooMany (nothing set)."""
        ...

    # --- quota (RFC 9208) -------------------------------------------------------------------
    async def get_quota(self, root: str) -> QuotaInfo:
        """GETQUOTA: a root by name, with its usage. Raises QuotaRootNotFound."""
        ...

    async def get_quota_root(self, user_id: int, name: str) -> QuotaInfo:
        """GETQUOTAROOT: the root of the user's mailbox ``name``, which need not exist.
        Raises UserNotFound."""
        ...

    async def set_quota(self, root: str, limits: Limits, origin: Origin | None = None) -> QuotaInfo:
        """SETQUOTA / ``imapd quota set``: replace a user root's limits, publishing
        QuotaChanged. Raises QuotaRootNotFound."""
        ...

    # --- XAPPLEPUSHSERVICE ------------------------------------------------------------------
    async def register_push(
        self,
        user_id: int,
        aps_version: int,
        account_id: str,
        device_token: str,
        subtopic: str,
        mailboxes: Sequence[str],
        origin: Origin,
    ) -> tuple[str, ...]:
        """Register a device for the user's mailboxes and publish ApplePushRegistered.
        Returns the mailbox names registered. Raises UserNotFound."""
        ...

    async def push_devices(self, user_id: int | None = None) -> list[PushDevice]:
        """XAPPLEPUSHSERVICE registrations of one user, or of everyone."""
        ...

    # --- retention --------------------------------------------------------------------------
    async def set_retention(self, user_id: int, name: str, days: int | None) -> None:
        """Set (or with None/0 clear) a mailbox's retention in days; no Change. Raises
        MailboxNotFound, ValueError."""
        ...

    async def expire(self, now: dt.datetime | None = None) -> int:
        """Remove the messages older than their mailbox's retention (store/expire.py), one
        transaction per mailbox. Returns how many messages were removed."""
        ...

    # --- calendar alarms (docs/calendar.md; store/sqlite/calendar.py) ------------------------
    async def sync_calendar_index(self) -> int:
        """Index mailboxes annotated as calendars but not indexed yet; returns how many."""
        ...

    async def next_calendar_alarm(self) -> dt.datetime | None:
        """The earliest next alarm of any calendar object (None: nothing scheduled)."""
        ...

    async def fire_calendar_alarms(self, lookback: dt.timedelta) -> int:
        """Fire the alarms due by the store clock, each in the transaction that advances
        its object (CalendarAlarmFired changes); older than ``lookback``: skipped, logged.
        Returns how many fired."""
        ...

    # --- the change log: session events and other processes' commits -------------------------
    async def record_session_event(
        self, user: str, kind: str, origin: Origin, server: str | None = None
    ) -> None:
        """Log a Login/Logout (``kind`` login|logout) as a SessionEvent change."""
        ...

    async def follow_foreign_commits(self) -> None:
        """From now on publish other processes' commits too, in commit order (the server
        turns this on)."""
        ...

    async def publish_foreign(self) -> int:
        """Publish other processes' commits not published yet, in commit order; returns the
        last seq published (0 when not following)."""
        ...

    # --- mailboxes (authenticated state) ----------------------------------------------------
    async def list_mailboxes(self, user_id: int) -> list[MailboxInfo]:
        """All of the user's mailboxes, including \\Noselect placeholders, sorted by name."""
        ...

    async def subscriptions(self, user_id: int) -> list[str]:
        """Subscribed names; they need not exist (RFC 3501 §6.3.6)."""
        ...

    async def get_mailbox(self, user_id: int, name: str) -> MailboxInfo:
        """Raises MailboxNotFound (also for a \\Noselect placeholder? no: returned with
        selectable=False)."""
        ...

    async def create_mailbox(
        self, user_id: int, name: str, origin: Origin, special_use: tuple[str, ...] = ()
    ) -> MailboxInfo:
        """Creates missing parents too (RFC 3501 §6.3.3); a trailing delimiter is dropped.
        A \\Noselect placeholder of that name becomes a real mailbox (new UIDVALIDITY).
        Raises MailboxExists, MailboxInvalid (empty name, INBOX as a parent of a new name
        is fine, bad special use)."""
        ...

    async def delete_mailbox(self, user_id: int, name: str, origin: Origin) -> None:
        """RFC 3501 §6.3.4: INBOX cannot be deleted (MailboxInvalid); a mailbox with
        children becomes a \\Noselect placeholder (its messages removed); a \\Noselect
        placeholder with children cannot be deleted (MailboxInvalid); without children it is
        removed. Raises MailboxNotFound."""
        ...

    async def rename_mailbox(self, user_id: int, old: str, new: str, origin: Origin) -> None:
        """Renames with all children. Renaming INBOX moves its messages to a new mailbox
        and leaves INBOX empty (RFC 3501 §6.3.5). New UIDVALIDITY is not required; UIDs
        are kept. Raises MailboxNotFound, MailboxExists, MailboxInvalid (into itself)."""
        ...

    async def set_subscribed(
        self, user_id: int, name: str, subscribed: bool, origin: Origin
    ) -> None:
        """SUBSCRIBE/UNSUBSCRIBE. Subscribing a non-existent name raises MailboxNotFound;
        unsubscribing a name that is not subscribed raises MailboxNotFound too."""
        ...

    async def open_mailbox(self, user_id: int, name: str, *, claim_recent: bool) -> MailboxSnapshot:
        """SELECT/EXAMINE. Raises MailboxNotFound (also for \\Noselect: MailboxInvalid)."""
        ...

    async def claim_recent(self, mailbox_id: int, uids: Sequence[int]) -> frozenset[int]:
        """Claim \\Recent for newly arrived UIDs; returns those this caller is first to see."""
        ...

    # --- messages ---------------------------------------------------------------------------
    async def append(
        self,
        user_id: int,
        mailbox: str | int,
        messages: Sequence[NewMessage],
        origin: Origin,
        *,
        kind: str = "append",
        need: str = "",
    ) -> AppendResult:
        """Atomic: all or none (MULTIAPPEND). Parses structure once and keeps it. ``kind``
        names the arrival in its MessagesAdded ("append", "deliver" by LMTP, "import").
        ``mailbox``: a client name in ``user_id``'s namespaces, or the id of a mailbox the
        caller resolved (a handler: the name is resolved once per command). ``need``
        (e.g. "i"): the rights ``user_id`` must have on it, computed from its ACL and the
        user's admin flag INSIDE the write transaction, so a revoke committed after the
        caller's own check is honoured; those rights also drop the flags they do not allow
        (RFC 4314 §4: dropped, not refused). "" checks no rights (LMTP, import). Raises
        MailboxNotFound (also for a mailbox deleted since it was resolved, or one the user
        may not see: handler adds TRYCREATE), NoPermission, MailboxInvalid for \\Noselect."""
        ...

    async def replace(
        self,
        mailbox_id: int,
        uid: int,
        user_id: int,
        target: str | int,
        message: NewMessage,
        origin: Origin,
        *,
        need: str = "",
    ) -> AppendResult:
        """REPLACE (RFC 8508): `append` ``message`` to ``target`` (``need`` as there) and
        expunge ``uid`` from ``mailbox_id`` in one transaction; MessagesAdded ("append")
        then MessagesExpunged ("expunge"). Raises MessageGone when ``uid`` is gone."""
        ...

    async def fetch_expunged(
        self, facts: Sequence[MessageFacts], *, content: bool = False, structure: bool = False
    ) -> list[MessageRecord]:
        """Records of expunged messages from their MessagesExpunged facts, in UID order;
        with ``content``/``structure`` only those whose shared contents still exist."""
        ...

    async def previews(self, content_ids: Sequence[int], *, compute: bool = True) -> dict[int, str]:
        """RFC 8970 preview text by contents id (`MessageRecord.content_id`), made when the
        message was stored. With ``compute``, a contents row stored without one gets it
        now (saved); otherwise it is missing from the answer, as are gone contents."""
        ...

    async def fetch_plain(
        self, mailbox_id: int, uids: Sequence[int], columns: Sequence[str] = PLAIN_COLUMNS
    ) -> list[tuple[Any, ...]]:
        """``(uid, *columns)`` per existing message among ``uids``, in UID order: the cheap
        form of `fetch` for FETCH FLAGS. ``columns`` are of `PLAIN_COLUMNS`: modseq (int),
        flags (space-separated str), size (int), internaldate (ISO str); or of
        `CONTENT_COLUMNS` (bytes or None), read in the same query."""
        ...

    async def deleted_size(self, mailbox_id: int) -> int:
        """Octets of the mailbox's \\Deleted messages (STATUS DELETED-STORAGE)."""
        ...

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: Sequence[str],
        origin: Origin,
        *,
        unchangedsince: int | None = None,
        kind: str = "store",
    ) -> StoreFlagsResult:
        """mode: "+" add, "-" remove, "" replace. Each changed message gets a new modseq
        (one modseq for the whole command is fine: RFC 7162 allows it)."""
        ...

    async def expunge(
        self, mailbox_id: int, origin: Origin, uids: Sequence[int] | None = None
    ) -> tuple[int, ...]:
        """Remove messages flagged \\Deleted (restricted to ``uids`` when given: UID
        EXPUNGE). Returns the removed UIDs, ascending; remembered with their modseq."""
        ...

    async def copy_messages(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        user_id: int,
        target: str | int,
        origin: Origin,
        *,
        move: bool = False,
        need: str = "",
    ) -> CopyResult:
        """COPY/MOVE in one transaction; never partial. ``target`` and ``need`` are as
        `append`'s ``mailbox`` and ``need``: the destination's rights for ``user_id`` are
        read in the transaction, refused as there, and only the flags they let the user
        set are copied (RFC 4314 §4). Raises MailboxNotFound for the destination (handler
        adds TRYCREATE), NoPermission, MailboxInvalid."""
        ...

    async def search(self, mailbox_id: int, criterion: Criterion) -> list[int]:
        """UIDs matching, ascending."""
        ...

    async def sort_records(
        self,
        mailbox_id: int,
        criterion: Criterion,
        *,
        references: bool = False,
        contents: bool = True,
    ) -> list[SortRecord]:
        """SORT/THREAD keys of the matching messages, in UID order (store/sqlite/sort.py);
        ``references``: with each message's References (THREAD=REFERENCES); not
        ``contents``: UID, INTERNALDATE and size only."""
        ...

    async def sort_order(
        self, mailbox_id: int, criteria: tuple[tuple[str, bool], ...]
    ) -> list[int]:
        """UIDs of every message sorted by SORT ``criteria`` ((key, reverse) pairs), ties by
        UID; shared, cached while the mailbox's messages are the same (store/sqlite/sort.py)."""
        ...

    async def sort_keys(
        self, mailbox_id: int, criteria: tuple[tuple[str, bool], ...]
    ) -> Mapping[int, Any]:
        """Every message's sort key under ``criteria`` (UID -> key, keys compare as the
        sort order goes), a live read-only view kept current (store/sortstate.py)."""
        ...

    async def thread_roots(
        self,
        mailbox_id: int,
        algorithm: str,
        criterion: Criterion | None,
        visible: Sequence[int] | None = None,
    ) -> list[Node]:
        """THREAD ``algorithm`` of the messages matching ``criterion`` (None: all) among
        ``visible`` UIDs (None: any): the top-level nodes (store/sortthread/threads.py);
        shared, cached likewise."""
        ...

    async def mailbox_keywords(self, mailbox_id: int) -> tuple[str, ...]:
        """The keywords set on the mailbox's messages, one spelling each (case-insensitive),
        as SELECT's FLAGS lists them."""
        ...

    async def vanished_since(
        self, mailbox_id: int, modseq: int, uids: Sequence[tuple[int, int]] | None = None
    ) -> list[int]:
        """UIDs expunged with a modseq > ``modseq`` (restricted to ranges), for QRESYNC."""
        ...

    # --- URLAUTH mailbox access keys (RFC 4467 §2.2; store/urlauth.py) ---------------------
    async def urlauth_key(self, user_id: int, mailbox_id: int, *, create: bool) -> bytes | None:
        """The user's access key for the mailbox; ``create`` makes one when missing. None:
        no key (or, with ``create``, no such mailbox). Never logged, never in a Change."""
        ...

    async def reset_urlauth_keys(
        self, user_id: int, mailbox_id: int | None, origin: Origin
    ) -> None:
        """RESETKEY: a new key for ``mailbox_id`` (revoking its URLs); None: remove all the
        user's keys. Logs a `UrlKeysReset` (no key in it; none when the mailbox is gone)."""
        ...


@dataclass(frozen=True, slots=True)
class PushDevice:
    user: str
    aps_version: int
    account_id: str
    device_token: str
    subtopic: str
    mailboxes: tuple[str, ...]
    registered: dt.datetime
