"""One frozen dataclass per IMAP command; `Command` is their union.

Owns: the parsed, validated shape of every command the server understands. The parser builds
these; handlers consume them. Mailbox names are Unicode (modified UTF-7 already decoded),
``INBOX`` already canonicalised to upper case. Must not import asyncio, socket, ssl, store or
notify.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from imapd.protocol.values import FetchAtt, SearchKey, Secret, SequenceSet, SpooledLiteral


@dataclass(frozen=True, slots=True)
class Capability:
    tag: str


@dataclass(frozen=True, slots=True)
class Noop:
    tag: str


@dataclass(frozen=True, slots=True)
class Logout:
    tag: str


@dataclass(frozen=True, slots=True)
class StartTLS:
    tag: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    """AUTHENTICATE mechanism [initial-response] (RFC 3501 §6.2.2, SASL-IR RFC 4959).

    ``initial_response`` is the base64 *decoded* bytes; ``b""`` for ``=``; None if absent.
    """

    tag: str
    mechanism: str
    initial_response: Secret | None = None


@dataclass(frozen=True, slots=True)
class Login:
    tag: str
    user: str
    password: Secret


@dataclass(frozen=True, slots=True)
class QResyncParams:
    """SELECT/EXAMINE (QRESYNC (uidvalidity modseq [known-uids [seq-match]])) (RFC 7162)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT or EXAMINE (``readonly``) with optional CONDSTORE/QRESYNC parameters."""

    tag: str
    mailbox: str
    readonly: bool = False
    condstore: bool = False
    qresync: QResyncParams | None = None


@dataclass(frozen=True, slots=True)
class Create:
    tag: str
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    tag: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class List:
    """LIST / LSUB, with RFC 5258 LIST-EXTENDED options (upper-cased).

    ``patterns`` are Unicode, without those that were not valid modified UTF-7 (none at all
    when the reference was not): they match nothing. ``lsub`` marks the LSUB command.
    ``status_items`` is the LIST-STATUS return option's item list (RFC 5819), None when not
    asked.
    """

    tag: str
    reference: str
    patterns: tuple[str, ...]
    lsub: bool = False
    selection: tuple[str, ...] = ()
    return_opts: tuple[str, ...] = ()
    status_items: tuple[str, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    tag: str
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CatText:
    """CATENATE's ``TEXT literal`` (RFC 4469 §5): octets, or where they were spooled."""

    data: bytes | SpooledLiteral
    #: A literal8 (``~{n}``): may hold NUL; a plain literal's spooled octets are checked later.
    binary: bool = False


@dataclass(frozen=True, slots=True)
class CatUrl:
    """CATENATE's ``URL astring`` (RFC 4469 §5): the URL's text as sent (imapd/protocol/imapurl.py
    reads it when the handler resolves it; BADURL echoes it)."""

    url: str


@dataclass(frozen=True, slots=True)
class Catenation:
    """``CATENATE (cat-part ...)``: the parts a new message is made of (RFC 4469 §3)."""

    parts: tuple[CatText | CatUrl, ...]


@dataclass(frozen=True, slots=True)
class AppendMessage:
    flags: tuple[str, ...]
    date: dt.datetime | None
    #: The octets, or where the session spooled them (a big literal), or CATENATE's parts.
    content: bytes | SpooledLiteral | Catenation


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND, with MULTIAPPEND (RFC 3502) giving several messages."""

    tag: str
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Replace:
    """[UID] REPLACE seq mailbox append-message (RFC 8508 §6)."""

    tag: str
    uid: bool
    number: int | None  # None: "*"
    mailbox: str
    message: AppendMessage


@dataclass(frozen=True, slots=True)
class Check:
    tag: str


@dataclass(frozen=True, slots=True)
class Close:
    tag: str


@dataclass(frozen=True, slots=True)
class Unselect:
    tag: str


@dataclass(frozen=True, slots=True)
class Expunge:
    """EXPUNGE, or UID EXPUNGE sequence-set (RFC 4315) when ``uids`` is set."""

    tag: str
    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search:
    """[UID] SEARCH [RETURN (...)] [CHARSET x] keys (RFC 3501, ESEARCH RFC 4731).
    ``partial``/``update``: RFC 5267 §4 PARTIAL's range and UPDATE's fetch-atts (RFC 5465 §7;
    None: no UPDATE), their names also in ``return_opts``."""

    tag: str
    uid: bool
    key: SearchKey
    charset: str | None = None
    return_opts: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None
    update: tuple[FetchAtt, ...] | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """[UID] FETCH set atts [(CHANGEDSINCE n [VANISHED])] (RFC 3501, RFC 7162)."""

    tag: str
    uid: bool
    sequence_set: SequenceSet
    atts: tuple[FetchAtt, ...]
    changedsince: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class Store:
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] (flags).

    ``mode`` is "+" (add), "-" (remove) or "" (replace).
    """

    tag: str
    uid: bool
    sequence_set: SequenceSet
    mode: str
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    """[UID] COPY or [UID] MOVE (RFC 6851, ``move``)."""

    tag: str
    uid: bool
    sequence_set: SequenceSet
    mailbox: str
    move: bool = False


@dataclass(frozen=True, slots=True)
class Idle:
    tag: str


@dataclass(frozen=True, slots=True)
class Namespace:
    tag: str


@dataclass(frozen=True, slots=True)
class Enable:
    tag: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Id:
    """ID (RFC 2971): ``params`` None for NIL."""

    tag: str
    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class GetMetadata:
    """GETMETADATA [(DEPTH d MAXSIZE n)] mailbox entries (RFC 5464 §4.2).

    ``mailbox`` "" means server entries. ``entries`` are lower-cased (entry names are
    case-insensitive, §3.2). ``depth``: 0, 1, or None for "infinity"."""

    tag: str
    mailbox: str
    entries: tuple[str, ...]
    depth: int | None = 0
    maxsize: int | None = None


@dataclass(frozen=True, slots=True)
class SetMetadata:
    """SETMETADATA mailbox (entry value ...) (RFC 5464 §4.3); a None value removes the entry.

    ``mailbox`` "" means server entries; entry names lower-cased, the last value of a
    repeated entry kept."""

    tag: str
    mailbox: str
    #: A value of ``literal_spool_size`` octets or more is a `SpooledLiteral` (a file).
    entries: tuple[tuple[str, bytes | SpooledLiteral | None], ...]


@dataclass(frozen=True, slots=True)
class SetAcl:
    """SETACL mailbox identifier [+|-]rights (RFC 4314 §3.1); ``rights`` as given (checked
    by the handler against the rights it knows: an unknown one is BAD)."""

    tag: str
    mailbox: str
    identifier: str
    rights: str


@dataclass(frozen=True, slots=True)
class DeleteAcl:
    """DELETEACL mailbox identifier (RFC 4314 §3.2)."""

    tag: str
    mailbox: str
    identifier: str


@dataclass(frozen=True, slots=True)
class GetAcl:
    """GETACL mailbox (RFC 4314 §3.3)."""

    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class ListRights:
    """LISTRIGHTS mailbox identifier (RFC 4314 §3.4)."""

    tag: str
    mailbox: str
    identifier: str


@dataclass(frozen=True, slots=True)
class MyRights:
    """MYRIGHTS mailbox (RFC 4314 §3.5)."""

    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Compress:
    """COMPRESS DEFLATE (RFC 4978); the only mechanism defined."""

    tag: str
    mechanism: str = "DEFLATE"


@dataclass(frozen=True, slots=True)
class XApplePushService:
    """XAPPLEPUSHSERVICE (Apple's push registration, as Cyrus and Dovecot speak it): a
    device asks to be notified about ``mailboxes``. Version 1 implies INBOX and the
    com.apple.mobilemail subtopic."""

    tag: str
    aps_version: int
    account_id: str
    device_token: str
    subtopic: str
    mailboxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetQuota:
    """GETQUOTA quota-root (RFC 9208 §4.1.1)."""

    tag: str
    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    """GETQUOTAROOT mailbox (RFC 9208 §4.1.2); the mailbox need not exist."""

    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    """SETQUOTA quota-root (resource limit ...) (RFC 9208 §4.1.3): resource names
    upper-cased, each once; limits not named are removed."""

    tag: str
    root: str
    limits: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    """One event of an event group (RFC 5465 §8): ``name`` canonical for the events we
    know (``MessageNew``...), as sent otherwise (an ``event-ext``, refused by the handler
    with BADEVENT); ``fetch_atts`` only for MessageNew in a selected group."""

    name: str
    fetch_atts: tuple[FetchAtt, ...] = ()


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """``(filter-mailboxes events)``: ``filter`` lower-case (``selected``,
    ``selected-delayed``, ``inboxes``, ``personal``, ``subscribed``, ``subtree``,
    ``mailboxes``); ``mailboxes`` for the last two; ``events`` None for ``NONE``."""

    filter: str
    mailboxes: tuple[str, ...]
    events: tuple[NotifyEvent, ...] | None


@dataclass(frozen=True, slots=True)
class Notify:
    """NOTIFY NONE / NOTIFY SET [STATUS] event-groups (RFC 5465 §3.1, §8); ``groups`` None
    for NOTIFY NONE. The parser has checked the pairing rules (§5, §6.1)."""

    tag: str
    status: bool
    groups: tuple[NotifyGroup, ...] | None


# --- SORT and THREAD (RFC 5256, RFC 5957, ESORT RFC 5267) ------------------------------
@dataclass(frozen=True, slots=True)
class Sort:
    """[UID] SORT [RETURN (...)] (criteria) charset keys (RFC 5256 §3, RFC 5267 §3).
    ``criteria``: (sort-key, reverse) pairs in priority order; ``return_opts`` None: a
    plain SORT response, else ESEARCH (an empty RETURN () means ALL)."""

    tag: str
    uid: bool
    criteria: tuple[tuple[str, bool], ...]
    charset: str
    key: SearchKey
    return_opts: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None  # RFC 5267 §4.4, as in Search
    update: tuple[FetchAtt, ...] | None = None  # RFC 5267 §4.3, RFC 5465 §7


@dataclass(frozen=True, slots=True)
class CancelUpdate:
    """CANCELUPDATE "tag" ... (RFC 5267 §4.3.5): the tags of the contexts to end."""

    tag: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Thread:
    """[UID] THREAD algorithm charset keys (RFC 5256 §3)."""

    tag: str
    uid: bool
    algorithm: str  # "ORDEREDSUBJECT" or "REFERENCES"
    charset: str
    key: SearchKey


@dataclass(frozen=True, slots=True)
class GenUrlAuth:
    """GENURLAUTH 1*(url-rump mechanism) (RFC 4467 §7); mechanisms upper-cased."""

    tag: str
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ResetKey:
    """RESETKEY [mailbox *mechanism] (RFC 4467 §7); no mailbox: remove every key."""

    tag: str
    mailbox: str | None
    mechanisms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UrlFetch:
    """URLFETCH 1*url-fetch-arg (RFC 4467 §7, RFC 5524 §5): each URL with its parameters
    (upper-cased) when given in parentheses, or None (the unextended form)."""

    tag: str
    urls: tuple[tuple[str, tuple[str, ...] | None], ...]


Command = (
    Capability
    | Noop
    | Logout
    | StartTLS
    | Authenticate
    | Login
    | Select
    | Create
    | Delete
    | Rename
    | Subscribe
    | Unsubscribe
    | List
    | Status
    | Append
    | Replace
    | Check
    | Close
    | Unselect
    | Expunge
    | Search
    | Fetch
    | Store
    | Copy
    | Idle
    | Namespace
    | Enable
    | Id
    | GetMetadata
    | SetMetadata
    | Compress
    | SetAcl
    | DeleteAcl
    | GetAcl
    | ListRights
    | MyRights
    | XApplePushService
    | GetQuota
    | GetQuotaRoot
    | SetQuota
    | Notify
    | Sort
    | Thread
    | CancelUpdate
    | GenUrlAuth  # RFC 4467 (imapd/commands/urlauth.py)
    | ResetKey
    | UrlFetch
)
