"""RFC 5423 events -> Cyrus IMAP's JSON, and the notifyd datagram and log line around it.

Owns: Cyrus's parameter names, which parameters each event carries (always, or when named in
``event_extra_params``), their key order on the wire, value formats (IMAP URLs, uidset,
midset, flagNames, timestamp, session id), the notifyd datagram layout and notifyd's `log`
line. Pure functions over `notify.events.Event`; the clock and pid are arguments. Must not
import imapd: the IMAP text of ENVELOPE and BODYSTRUCTURE comes from an injected renderer.

The spec is the Cyrus documentation page and its example files (tests/data/, the 2.5.0
generation; docs/events.md): key names, URL shape (``imap://OWNER@SERVER/NAME;UIDVALIDITY=n``),
``mailboxID`` as a URL on mailbox events only. Where Cyrus's code and the examples differ the
examples win: MessageNew carries ``uidset``; ``messageContent`` is an object keyed by UID
(as in MessageNew.json; also for MessageAppend so a consumer sees one shape) and
``messageHeaders`` exists, both only when named in ``event_extra_params``. Cyrus bugs not
copied (docs/events.md): ``modseq`` only for one message, quota events with all four keys,
``aclRights`` keeping its ``+``/``-``.
"""

from __future__ import annotations

import datetime as dt
import email.header
import email.parser
import email.policy
import email.utils
import functools
import itertools
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from notify.events import MAILBOX_CONTENT_EVENTS, Event, EventType
from store import objectid
from store.changes import MailboxRef, MessageFacts

E = EventType

#: ``vnd.imapd.seq``: ours, not Cyrus's (opt-in): the change_log seq of the change an event
#: came from. Events of one change (a STORE's split, a MULTIAPPEND) share it; consumers use it
#: to resume and to skip duplicates (`imapd notifyd --method webhook`, notify/webhook.py).
SEQ_PARAM = "vnd.imapd.seq"
#: ``vnd.cmu.emailid`` (Cyrus 3.x, opt-in there too): the RFC 8474 EMAILID of the message
#: of a MessageAppend / MessageNew, as FETCH EMAILID shows it. Cyrus's ``vnd.cmu.threadid``
#: is not accepted: no THREADID is computed (store/objectid.py).
EMAILID_PARAM = "vnd.cmu.emailid"
#: Every ``event_extra_params`` value we understand (Cyrus 2.5 list + messageHeaders, the
#: example's Kolab addition, + our SEQ_PARAM).
EXTRA_PARAMS: frozenset[str] = frozenset(
    {
        "bodyStructure",
        "clientAddress",
        "diskUsed",
        "flagNames",
        "messageContent",
        "messageHeaders",
        "messageSize",
        "messages",
        "modseq",
        "service",
        "timestamp",
        "uidnext",
        "vnd.cmu.midset",
        "vnd.cmu.unseenMessages",
        "vnd.cmu.envelope",
        "vnd.cmu.sessionId",
        SEQ_PARAM,
        EMAILID_PARAM,
    }
)
#: The extras the example files show (docs/events.md): a default server emits their key sets.
DEFAULT_EXTRA_PARAMS: tuple[str, ...] = (
    "timestamp",
    "service",
    "messages",
    "modseq",
    "uidnext",
    "vnd.cmu.midset",
    "vnd.cmu.unseenMessages",
    "vnd.cmu.sessionId",
    "bodyStructure",
    "vnd.cmu.envelope",
    "messageSize",
    "diskUsed",
)
CONTENT_MODES = frozenset({"standard", "message", "header", "body", "headerbody"})

#: Key order on the wire (mboxevent.c's parameter enum; docs/events.md). messageContent
#: last so a consumer can cut it off.
KEY_ORDER: tuple[str, ...] = (
    "event",
    "timestamp",
    "service",
    "serverDomain",
    "serverPort",
    "clientIP",
    "clientPort",
    "oldMailboxID",
    "vnd.cmu.oldUidset",
    "mailboxID",
    "uri",
    "modseq",
    "diskQuota",
    "diskUsed",
    "maxMessages",
    "messages",
    "vnd.cmu.unseenMessages",
    "uidnext",
    "uidset",
    "vnd.cmu.midset",
    "flagNames",
    "pid",
    "aclSubject",
    "aclRights",
    "user",
    "messageSize",
    "vnd.cmu.envelope",
    "vnd.cmu.sessionId",
    "bodyStructure",
    EMAILID_PARAM,
    "apsVersion",
    "apsAccountId",
    "apsDeviceToken",
    "apsSubtopic",
    "mailboxes",
    SEQ_PARAM,
    "messageHeaders",
    "messageContent",
)
_RANK = {key: i for i, key in enumerate(KEY_ORDER)}
#: Keys dropped, in order, when an event does not fit in one datagram.
SHEDDABLE = ("messageContent", "messageHeaders")

_MAILBOX_EVENTS = frozenset({E.MailboxCreate, E.MailboxDelete, E.MailboxRename, E.AclChange})
_NEW_MESSAGE = frozenset({E.MessageAppend, E.MessageNew})
_QUOTA = frozenset({E.QuotaExceed, E.QuotaWithin, E.QuotaChange})
_ACCESS = frozenset({E.Login, E.Logout})
# Sets and members looked up once: a set display of members is built per call, and an
# attribute of the enum class costs as much as the test (event_fields runs per event).
_COPY_MOVE = frozenset({E.MessageCopy, E.MessageMove})
_FLAG_NAMES = frozenset({E.FlagsSet, E.FlagsClear})
_APPEND = E.MessageAppend
_QUOTA_CHANGE = E.QuotaChange

# RFC 5092 / cyrus lib/imapurl.c: characters percent-encoded in a mailbox name.
_URL_SPECIAL = frozenset(' "#%&+:;<=>?@[\\]^`{|}')


@dataclass(frozen=True, slots=True)
class Renderer:
    """IMAP text of a message's ENVELOPE and BODYSTRUCTURE from its stored structure JSON
    (store.mime.structure_to_json). Injected by imapd/server.py (imapd.fetch and the
    serializer); None values leave the keys out."""

    envelope: Callable[[str], str | None]
    bodystructure: Callable[[str], str | None]
    #: The same text cut from the bytes FETCH pre-rendered at APPEND (`MessageFacts.wire`)
    #: for "ENVELOPE" or "BODYSTRUCTURE": what a Change published in this process carries,
    #: so the sink does not render each message a second time.
    from_wire: Callable[[bytes, str], str | None] | None = None

    def text(self, message: MessageFacts, item: str) -> str | None:
        """``item`` ("ENVELOPE" or "BODYSTRUCTURE") of ``message`` (which has a structure)."""
        if message.wire is not None and self.from_wire is not None:
            return self.from_wire(message.wire, item)
        assert message.structure is not None
        if item == "ENVELOPE":
            return self.envelope(message.structure)
        return self.bodystructure(message.structure)


@dataclass(frozen=True, slots=True)
class Format:
    """The options that shape the JSON (Cyrus's names in imapd/config.py)."""

    servername: str = "localhost"
    extra_params: frozenset[str] = frozenset(DEFAULT_EXTRA_PARAMS)
    content_mode: str = "standard"
    content_size: int = 0  # 0: no limit
    renderer: Renderer | None = None

    @property
    def wants_content(self) -> bool:
        return not self.extra_params.isdisjoint(SHEDDABLE)


# --- value formats ---------------------------------------------------------------------------
def timestamp(at: dt.datetime, tz: dt.tzinfo | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmm`` in local time (or ``tz``) + ``+HH:MM``, ``Z`` at UTC+0;
    milliseconds truncated (cyrus lib/times.c). The text up to the second is kept for the
    last second asked (events come in bursts: the local-time conversion is most of it)."""
    key = at.replace(microsecond=0)
    cached = _last_second
    if cached is None or cached[0] != key or cached[1] is not tz:
        cached = _timestamp_second(key, tz)
    return f"{cached[2]}.{at.microsecond // 1000:03d}{cached[3]}"


_last_second: tuple[dt.datetime, dt.tzinfo | None, str, str] | None = None


def _timestamp_second(
    key: dt.datetime, tz: dt.tzinfo | None
) -> tuple[dt.datetime, dt.tzinfo | None, str, str]:
    global _last_second
    local = key.astimezone(tz)
    offset = local.utcoffset() or dt.timedelta(0)
    head = local.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        zone = "Z"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        hours, mins = divmod(abs(minutes), 60)
        zone = f"{sign}{hours:02d}:{mins:02d}"
    _last_second = (key, tz, head, zone)
    return _last_second


@functools.lru_cache(maxsize=1024)  # a few mailboxes take most events: each escaped once
def encode_name(name: str) -> str:
    """A mailbox name in an IMAP URL: UTF-8, percent-encoded (upper-case hex) for controls,
    non-ASCII and RFC 5092's specials; the hierarchy delimiter "/" stays literal."""
    out: list[str] = []
    for ch in name:
        if ch.isascii() and ch.isprintable() and ch not in _URL_SPECIAL:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def imap_url(
    servername: str,
    owner: str | None = None,
    name: str | None = None,
    uidvalidity: int | None = None,
    uid: int | None = None,
) -> str:
    """``imap://OWNER@SERVER/NAME;UIDVALIDITY=n/;UID=u`` (the examples' 2.5.0 form: the name
    relative to its owner, the user part not percent-encoded, as Cyrus writes it)."""
    url = "imap://" + (f"{owner}@" if owner else "") + servername
    if name is None:
        return url
    url += "/" + encode_name(name)
    if uidvalidity is not None:
        url += f";UIDVALIDITY={uidvalidity}"
        if uid is not None:
            url += f"/;UID={uid}"
    return url


def mailbox_url(servername: str, mailbox: MailboxRef, uid: int | None = None) -> str:
    return imap_url(servername, mailbox.owner, mailbox.name, mailbox.uidvalidity, uid)


def uidset(uids: Iterable[int]) -> str:
    """IMAP sequence-set: ascending, runs collapsed (``1:4``, ``2,5``)."""
    parts: list[str] = []
    ordered = sorted(set(uids))
    for _, run in itertools.groupby(enumerate(ordered), lambda p: p[1] - p[0]):
        items = [uid for _, uid in run]
        parts.append(str(items[0]) if len(items) == 1 else f"{items[0]}:{items[-1]}")
    return ",".join(parts)


def midset(message_ids: Iterable[str | None]) -> list[str]:
    return [m if m else "NIL" for m in message_ids]


_counter_second = 0
_counter = 0


def new_session_id(servername: str, *, now: float | None = None, pid: int | None = None) -> str:
    """Cyrus 2.5's ``vnd.cmu.sessionId``: ``SERVER-PID-UNIXTIME-COUNTER-RANDOM`` where
    COUNTER counts sessions started in this process within the same second (from 1) and
    RANDOM is a random unsigned 64-bit decimal (cyrus lib/sessionid.c; the examples)."""
    global _counter_second, _counter
    second = int(time.time() if now is None else now)
    if second != _counter_second:
        _counter_second, _counter = second, 0
    _counter += 1
    pid = os.getpid() if pid is None else pid
    return f"{servername}-{pid}-{second}-{_counter}-{secrets.randbits(64)}"


def _split_hostport(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


# --- the JSON object -------------------------------------------------------------------------
def event_fields(
    event: Event,
    fmt: Format,
    *,
    pid: int,
    content: Mapping[int, bytes] | None = None,
    tz: dt.tzinfo | None = None,
) -> dict[str, object]:
    """The event as Cyrus's JSON object, keys in wire order, absent values omitted.
    ``content`` holds raw messages by UID for messageContent/messageHeaders (when named)."""
    extra = fmt.extra_params
    t = event.type
    out: dict[str, object] = {"event": str(t)}
    if event.alarm is not None:
        return calendar_alarm_fields(event, fmt, pid)
    aps = event.aps
    if aps is not None:  # ApplePushService: the example file's keys exactly
        out.update(
            user=event.user,
            apsVersion=aps.aps_version,
            apsAccountId=aps.account_id,
            apsDeviceToken=aps.device_token,
            apsSubtopic=aps.subtopic,
            mailboxes=list(aps.mailboxes),
        )
        if SEQ_PARAM in extra:
            out[SEQ_PARAM] = event.seq
        return out
    if "timestamp" in extra:
        out["timestamp"] = timestamp(event.at, tz)
    if "service" in extra:
        out["service"] = event.origin.service
    if t in _ACCESS:
        server = _split_hostport(event.server)
        if server is not None:
            out["serverDomain"], out["serverPort"] = server
    if t in _ACCESS or "clientAddress" in extra:
        client = _split_hostport(event.origin.client)
        if client is not None:
            out["clientIP"], out["clientPort"] = client
    mbox = event.mailbox
    if event.old_mailbox is not None:
        out["oldMailboxID"] = mailbox_url(fmt.servername, event.old_mailbox)
    if t in _COPY_MOVE:
        out["vnd.cmu.oldUidset"] = uidset(event.old_uids)
    if t in _MAILBOX_EVENTS and mbox is not None:
        out["mailboxID"] = mailbox_url(fmt.servername, mbox)
    if t in _ACCESS:
        out["uri"] = imap_url(fmt.servername)
    elif event.subscription is not None:
        out["uri"] = imap_url(fmt.servername, event.user, event.subscription)
    elif event.quota_root is not None:  # no UIDVALIDITY on quota events (docs/events.md)
        out["uri"] = imap_url(fmt.servername, event.user or None, event.quota_root)
    elif mbox is not None:
        out["uri"] = mailbox_url(fmt.servername, mbox, event.uid if t in _NEW_MESSAGE else None)
    content_event = t in MAILBOX_CONTENT_EVENTS
    if content_event and "modseq" in extra and event.modseq is not None:
        out["modseq"] = event.modseq
    counts = event.counts
    if content_event and counts is not None:
        if "messages" in extra:
            out["messages"] = counts.messages
        if "vnd.cmu.unseenMessages" in extra:
            out["vnd.cmu.unseenMessages"] = counts.unseen
        if "uidnext" in extra:
            out["uidnext"] = counts.uidnext
    if content_event and t != _APPEND:
        out["uidset"] = uidset(event.uids)
    if content_event and "vnd.cmu.midset" in extra:
        out["vnd.cmu.midset"] = midset(event.message_ids)
    if t in _FLAG_NAMES or (t in _NEW_MESSAGE and "flagNames" in extra and event.flags):
        out["flagNames"] = " ".join(event.flags)
    out["pid"] = pid
    out["user"] = event.user
    message = event.message
    if t in _NEW_MESSAGE and message is not None:
        if "messageSize" in extra:
            out["messageSize"] = message.size
        render = fmt.renderer
        if "vnd.cmu.envelope" in extra and render is not None and message.structure:
            envelope = render.text(message, "ENVELOPE")
            if envelope is not None:
                out["vnd.cmu.envelope"] = envelope
    if "vnd.cmu.sessionId" in extra and event.origin.session:
        out["vnd.cmu.sessionId"] = event.origin.session
    if t in _NEW_MESSAGE and message is not None:
        render = fmt.renderer
        if "bodyStructure" in extra and render is not None and message.structure:
            body = render.text(message, "BODYSTRUCTURE")
            if body is not None:
                out["bodyStructure"] = body
        if EMAILID_PARAM in extra and message.content_id is not None:
            out[EMAILID_PARAM] = objectid.email_id(message.content_id)
    if SEQ_PARAM in extra:  # before messageHeaders/messageContent, which a consumer may cut
        out[SEQ_PARAM] = event.seq
    if t in _NEW_MESSAGE and message is not None:
        raw = None if content is None else content.get(message.uid)
        if raw is not None:
            key = str(message.uid)
            if "messageHeaders" in extra:
                out["messageHeaders"] = {key: message_headers(raw)}
            if "messageContent" in extra:
                included = content_excerpt(raw, fmt.content_mode, fmt.content_size)
                if included is not None:
                    out["messageContent"] = {key: included.decode("utf-8", "replace")}
    if event.extra:  # parameters of later producers (quota, ACL) slot into the order
        out = ordered({**out, **dict(event.extra)})
    if t == _QUOTA_CHANGE and "diskUsed" not in extra:  # docs/events.md: only when named
        out.pop("diskUsed", None)
    return out


def calendar_alarm_fields(event: Event, fmt: Format, pid: int) -> dict[str, object]:
    """CalendarAlarm with exactly CalendarAlarm.json's keys, in its order (Cyrus's
    calalarmd sends no timestamp or service for it; docs/calendar.md); our ``vnd.imapd.seq``
    last when named."""
    a = event.alarm
    assert a is not None
    out: dict[str, object] = {
        "event": str(event.type),
        "pid": pid,
        "serverFQDN": fmt.servername,
        "alarmTime": a.alarm_time,
        "alarmRecipients": list(a.recipients),
        "userId": a.user,
        "calendarName": a.mailbox.name,
        "uid": a.ical_uid,
        "action": a.action,
        "summary": a.summary,
        "description": a.description,
        "location": a.location,
        "timezone": a.timezone,
        "start": a.start,
        "end": a.end,
        "allDay": int(a.all_day),
        "attendeeNames": list(a.attendee_names),
        "attendeeEmails": list(a.attendee_emails),
        "attendeeStatus": list(a.attendee_status),
        "organizer": a.organizer,
    }
    if SEQ_PARAM in fmt.extra_params:
        out[SEQ_PARAM] = event.seq
    return out


def to_json(fields: Mapping[str, object]) -> str:
    """Compact, keys as given, raw UTF-8, ``/`` unescaped (docs/events.md "Serialisation")."""
    return _ENCODE(fields)


# One encoder for all (json.dumps with options builds a new one per call); it keeps no state.
# No circular-reference check: the fields are built here, fresh, as trees (the check keeps a
# dict of the containers seen per call: an eighth of the encoding's time, measured).
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


def content_excerpt(raw: bytes, mode: str, size: int) -> bytes | None:
    """``event_content_inclusion_mode`` / ``event_content_size`` (docs/events.md); None:
    leave messageContent out."""
    if mode == "standard":
        return raw if size == 0 or len(raw) <= size else None
    limit = size or len(raw)
    split = raw.find(b"\r\n\r\n")
    cut = len(raw) if split < 0 else split + 4
    header, body = raw[:cut], raw[cut:]
    match mode:
        case "message":
            return raw[:limit]
        case "header":
            return header[:limit]
        case "body":
            return body[:limit]
        case "headerbody":
            return header + body[:limit]
    raise ValueError(f"unknown event_content_inclusion_mode {mode!r}")


_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})


def _decoded(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError):  # a malformed or unknown-charset encoded word
        return value


def message_headers(raw: bytes) -> dict[str, object]:
    """The example MessageNew.json's ``messageHeaders`` (a Kolab addition): header name ->
    value as written (folding kept, encoded words decoded); address fields as lists of
    ``Name <addr>``; Date in UTC ISO 8601; Content-Type as its media type. First wins."""
    split = raw.find(b"\r\n\r\n")
    head = raw if split < 0 else raw[: split + 2]
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    out: dict[str, object] = {}
    for name, value in msg.items():
        if name in out:
            continue
        text = str(value).strip()
        low = name.lower()
        if low in _ADDRESS_HEADERS:
            out[name] = [
                f"{_decoded(n)} <{a}>" if n else a for n, a in email.utils.getaddresses([text])
            ]
        elif low == "date":
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                out[name] = text
            else:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=dt.UTC)
                out[name] = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif low == "content-type":
            out[name] = text.split(";", 1)[0].strip().lower()
        else:
            out[name] = _decoded(text)
    return dict(sorted(out.items()))


def ordered(fields: Mapping[str, object]) -> dict[str, object]:
    """``fields`` in wire order (for tests and producers that build keys out of order)."""
    return dict(sorted(fields.items(), key=lambda kv: _RANK.get(kv[0], len(_RANK))))


# --- notifyd ---------------------------------------------------------------------------------
#: notifyd's receive buffer: min(SO_RCVBUF/10 - 32, 65536); ours takes the ceiling.
MAX_DATAGRAM_READ = 65536 + 1024


def datagram(method: str, message: str, *, klass: str = "EVENT") -> bytes:
    """notifyd's request (cyrus imap/notify.c): NUL-terminated METHOD, CLASS, PRIORITY, USER,
    MAILBOX, NOPT ("0"), then MESSAGE; for an event ``log\\0EVENT\\0\\0\\0\\0`` ``0\\0``
    ``JSON\\0`` = len(JSON) + 16 bytes with method log (docs/events.md "The datagram")."""
    return b"\0".join(
        [
            method.encode(),
            klass.encode(),
            b"",
            b"",
            b"",
            b"0",
            message.encode("utf-8", "replace"),
            b"",
        ]
    )


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    klass: str
    priority: str
    user: str
    mailbox: str
    options: tuple[str, ...]
    message: str
    fname: str | None = None


class MalformedRequest(ValueError):
    """A datagram without the fields notifyd needs (notifyd logs and exits)."""


def parse_datagram(data: bytes) -> Request:
    fields = data.split(b"\0")
    if len(fields) < 7 or not fields[5].isdigit():
        raise MalformedRequest("malformed notify request")
    nopt = int(fields[5])
    if len(fields) < 7 + nopt:
        raise MalformedRequest("malformed notify request")
    text = [f.decode("utf-8", "replace") for f in fields]
    options = tuple(text[6 : 6 + nopt])
    rest = text[6 + nopt :]
    fname = rest[1] if len(rest) > 2 and rest[1] else None
    return Request(text[0], text[1], text[2], text[3], text[4], options, rest[0], fname)


def log_line(request: Request) -> str:
    """notifyd's `log` method line (notifyd/notify_log.c): ``CLASS, PRIORITY, USER, MAILBOX,
    OPTIONS "MESSAGE"`` with OPTIONS empty or ``(a, b)``: for an event exactly
    ``EVENT, , , ,  "{json}"`` (two spaces; the JSON not escaped)."""
    options = f"({', '.join(request.options)})" if request.options else ""
    return (
        f"{request.klass}, {request.priority}, {request.user}, {request.mailbox}, "
        f'{options} "{request.message}"'
    )


def fit(fields: dict[str, object], method: str, limit: int) -> tuple[bytes, list[str]] | None:
    """The datagram of ``fields``, shedding messageContent then messageHeaders until it fits
    in ``limit`` bytes; returns it with the keys shed, or None when even that is too big."""
    shed: list[str] = []
    while True:
        data = datagram(method, to_json(fields))
        if len(data) <= limit:
            return data, shed
        droppable = [k for k in SHEDDABLE if k in fields]
        if not droppable:
            return None
        fields = {k: v for k, v in fields.items() if k != droppable[0]}
        shed.append(droppable[0])
