"""Names and options of the JetStream sink (notify/jetstream.py), pure: no I/O, no nats-py.

Owns: the subject of an event and the escaping of its tokens (`subject_token`, the table in
docs/jetstream.md), the ``Nats-Msg-Id`` of an event and its parsing, the checks of a URL,
stream name and subject prefix, the sink's `Options` with the stream's documented defaults,
and fitting a payload under the size limit. Must not import imapd.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from notify.cyrus import SHEDDABLE, to_json
from notify.follow import Position

DEFAULT_STREAM = "IMAPD_EVENTS"
DEFAULT_PREFIX = "imapd"
DEFAULT_MAX_AGE = 7 * 24 * 3600.0  # seconds: a week of replay for consumers that were away
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB on disk, oldest dropped first (discard: old)
DEFAULT_DUPLICATE_WINDOW = 120.0  # JetStream's own default
_SAFE = frozenset(range(0x21, 0x7F)) - {ord("."), ord("*"), ord(">"), ord("%")}


# --- subjects and ids (pure) ---------------------------------------------------------------
def subject_token(text: str) -> str:
    """``text`` as one NATS subject token: ``%``, ``.``, ``*``, ``>``, whitespace, controls,
    DEL and non-ASCII become ``%XX`` per UTF-8 octet; the empty string becomes ``%``."""
    if not text:
        return "%"
    out: list[str] = []
    for octet in text.encode("utf-8"):
        out.append(chr(octet) if octet in _SAFE else f"%{octet:02X}")
    return "".join(out)


def subject_token_decode(escaped: str) -> str:
    """The inverse of `subject_token` (consumers that want the user back)."""
    if escaped == "%":
        return ""
    raw = bytearray()
    i = 0
    while i < len(escaped):
        if escaped[i] == "%":
            raw.append(int(escaped[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(escaped[i]))
            i += 1
    return raw.decode("utf-8")


def check_prefix(prefix: str) -> str:
    """A subject prefix: dot-separated non-empty tokens without wildcards or whitespace.
    Raises ValueError naming the problem."""
    tokens = prefix.split(".")
    if not prefix or any(
        not t or t in {"*", ">"} or any(c.isspace() for c in t) or not t.isascii() for t in tokens
    ):
        raise ValueError(
            f"subject prefix {prefix!r}: expected dot-separated ASCII tokens, "
            "no empty token, no wildcard, no whitespace"
        )
    return prefix


def check_stream_name(name: str) -> str:
    """JetStream stream names: no whitespace, ``.``, ``*``, ``>``, path separators."""
    if not name or any(c.isspace() or c in ".*>/\\" for c in name) or not name.isascii():
        raise ValueError(f"stream name {name!r}: no whitespace, '.', '*', '>', '/' or '\\'")
    return name


@lru_cache(maxsize=4096)  # few event types and active users: escaping each once (profiled)
def subject(prefix: str, event_type: str, user: str) -> str:
    return f"{prefix}.{subject_token(event_type)}.{subject_token(user)}"


def msg_id(prefix: str, seq: int, index: int) -> str:
    return f"{prefix}:{seq}:{index}"


def parse_msg_id(prefix: str, value: str) -> Position | None:
    """The position in a ``Nats-Msg-Id`` of ours (None: not ours, or not an id)."""
    head, sep, rest = value.rpartition(":")
    owner, sep2, seq = head.rpartition(":")
    if not sep or not sep2 or owner != prefix or not seq.isdigit() or not rest.isdigit():
        return None
    return Position(int(seq), int(rest))


def fit_payload(fields: dict[str, object], limit: int) -> tuple[bytes, list[str]] | None:
    """The JSON of ``fields`` within ``limit`` octets, shedding messageContent then
    messageHeaders as the datagram sink does (notify/cyrus.py `fit`); None if it cannot."""
    shed: list[str] = []
    while True:
        data = to_json(fields).encode("utf-8")
        if len(data) <= limit:
            return data, shed
        droppable = [k for k in SHEDDABLE if k in fields]
        if not droppable:
            return None
        fields = {k: v for k, v in fields.items() if k != droppable[0]}
        shed.append(droppable[0])


# --- configuration -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Options:
    """Where and how to publish (docs/jetstream.md). The stream limits apply only when the
    sink creates the stream; an existing stream is used as configured."""

    url: str
    stream: str = DEFAULT_STREAM
    subject_prefix: str = DEFAULT_PREFIX
    creds: str | None = None
    max_age: float = DEFAULT_MAX_AGE
    max_bytes: int = DEFAULT_MAX_BYTES
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    batch: int = 500  # change_log rows read at a time, at most
    #: The window: messages published and not yet acknowledged, at most (their acks are
    #: awaited together; the cursor moves over the acknowledged prefix).
    max_inflight: int = 1000
    ack_timeout: float = 5.0
    connect_timeout: float = 2.0
    retry_initial: float = 0.1
    retry_max: float = 30.0
    refused_initial: float = 1.0
    refused_max: float = 60.0
    #: The cursor is saved at most this often (ids cover the rest; each save is an fsync).
    cursor_interval: float = 1.0

    def __post_init__(self) -> None:
        check_url(self.url)
        check_stream_name(self.stream)
        check_prefix(self.subject_prefix)
        if self.max_inflight < 1 or self.batch < 1:
            raise ValueError("jetstream: max_inflight and batch must be at least 1")


def check_url(url: str) -> str:
    """One or more comma-separated ``nats://HOST:PORT`` (or tls://) URLs."""
    for one in url.split(","):
        scheme, sep, rest = one.strip().partition("://")
        if not sep or scheme not in {"nats", "tls"} or not rest:
            raise ValueError(f"NATS URL {one!r}: expected nats://HOST:PORT or tls://HOST:PORT")
    return url
