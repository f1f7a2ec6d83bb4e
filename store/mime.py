"""MIME structure of a stored message, parsed once at APPEND, and section extraction.

Owns: `BodyPart` and `Envelope` (pure values with JSON round trip) and the functions that
compute them from raw bytes and cut sections out of raw bytes by offsets. Knows nothing of
IMAP wire syntax: imapd/fetch.py renders these values as ENVELOPE/BODYSTRUCTURE. Pure
functions, stdlib only; must not import imapd or notify.

How it parses. The stdlib ``email`` package gives no byte offsets and copies every body, so
the structure comes from our own scanner over ``bytes``: a header ends at the first empty line
(CRLF or bare LF), a multipart body is cut at lines ``--boundary`` (RFC 2046 §5.1.1), and each
part is parsed again inside its own span. Only header *values* are decoded to ``str``.
Nothing here raises on malformed input: every rule has a lenient fallback, chosen to match
what Dovecot does where the RFCs are silent:

- invalid or missing Content-Type: ``text/plain; charset=us-ascii`` (RFC 2045 §5.2), or
  ``message/rfc822`` inside multipart/digest (RFC 2046 §5.1.5); a multipart without a
  boundary parameter counts as invalid;
- a multipart whose body holds no delimiter line has no ``parts`` (imapd renders an empty
  text part, as Dovecot does); a missing close delimiter ends the last part at the end of
  its parent;
- a delimiter line is ``--boundary`` then optional ``--``, then optional blanks, then the
  line end; a longer line (``--boundary-2``) is content, so an inner boundary that extends
  the outer one works;
- nesting deeper than `MAX_DEPTH` or more than `MAX_PARTS` entities: the container is kept
  as an ``application/octet-stream`` leaf (Dovecot's message-parser limits do the same).

Decisions: ``type``, ``subtype``, parameter names and the disposition type are lower-cased
(all case-insensitive tokens, RFC 2045 §5.1, RFC 2183 §2); the renderer chooses the wire case.
``encoding`` is upper-cased. Parameter values are kept as written, except that RFC 2231
continuations and charsets are decoded (so ``filename*0*=...`` becomes ``filename``). Envelope
strings are unfolded but not RFC 2047-decoded (IMAP sends encoded words as they are). ``lines``
counts LF octets in the body, as Dovecot does.
"""

from __future__ import annotations

import binascii
import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "Address",
    "BodyPart",
    "Envelope",
    "address_text",
    "body_text",
    "decode_words",
    "header_values",
    "message_id",
    "parse_message",
    "section_bytes",
    "structure_from_json",
    "structure_to_json",
]

# Nesting of multipart and message/rfc822 containers; Dovecot allows 100
# (MESSAGE_PARSER_DEFAULT_MAX_NESTED_MIME_PARTS), 50 is plenty for real mail.
MAX_DEPTH = 50
# Entities per message (Dovecot: MESSAGE_PARSER_DEFAULT_MAX_TOTAL_MIME_PARTS = 10000); keeps
# the structure, and its JSON, bounded for a body made of delimiter lines.
MAX_PARTS = 10_000

# Address placeholders for a missing local part or domain: a NIL host would read as a group
# start (RFC 3501 §7.4.2), so Dovecot fills these in, and so do we.
MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"


@dataclass(frozen=True, slots=True)
class Address:
    """RFC 3501 §7.4.2 address: a group start has host None and mailbox = group name; a group
    end has mailbox None and host None."""

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """RFC 3501 §7.4.2 envelope. Strings are unfolded header values, RFC 2047 encoded words
    left encoded; ``sender`` and ``reply_to`` already default to ``from_``."""

    date: str | None
    subject: str | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME entity. Offsets index the raw message: the header is
    ``raw[header_start:body_start]`` (including the blank line), the body
    ``raw[body_start:body_end]``. ``type``/``subtype`` are lower-case.

    ``envelope``: the top part of every message (the stored one and each encapsulated one in
    ``message``) carries its own Envelope; a message/rfc822 part *inside* a message carries
    its encapsulated message's (the same value as ``message.envelope``)."""

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    id: str | None
    description: str | None
    encoding: str
    size: int
    lines: int
    md5: str | None
    disposition: tuple[str, tuple[tuple[str, str], ...]] | None
    language: tuple[str, ...] | None
    location: str | None
    header_start: int
    body_start: int
    body_end: int
    parts: tuple[BodyPart, ...] = ()  # multipart/* children
    message: BodyPart | None = None  # message/rfc822 encapsulated message
    envelope: Envelope | None = None  # message/rfc822 (and the top level)

    def param(self, name: str) -> str | None:
        """The first Content-Type parameter called ``name`` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def is_message(self) -> bool:
        """A message/rfc822 part whose encapsulated message was parsed."""
        return self.type == "message" and self.subtype == "rfc822" and self.message is not None


# --------------------------------------------------------------------------- header scanning


def _split_header(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """``(header_end, body_start)`` of the entity in ``raw[start:end]``: the header fields
    are ``raw[start:header_end]``, the empty line ``raw[header_end:body_start]``. Without an
    empty line the whole span is header and the body is empty (RFC 5322 §2.1)."""
    if start >= end:
        return end, end
    if raw[start] == 0x0A:
        return start, start + 1
    if raw.startswith(b"\r\n", start, end):
        return start, start + 2
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end if crlf < 0 else crlf + 1)
    if lf >= 0:
        return lf + 1, lf + 2
    if crlf >= 0:
        return crlf + 1, crlf + 3
    return end, end


def _field_spans(raw: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the header fields in ``raw[start:end]``, each with its continuation lines
    and line ends (RFC 5322 §2.2.3 folding)."""
    spans: list[tuple[int, int]] = []
    cur = -1
    pos = start
    while pos < end:
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        if cur < 0 or raw[pos] not in (0x20, 0x09):
            if cur >= 0:
                spans.append((cur, pos))
            cur = pos
        pos = line_end
    if cur >= 0:
        spans.append((cur, end))
    return spans


def _field_name(raw: bytes, start: int, end: int) -> bytes | None:
    colon = raw.find(b":", start, end)
    if colon < 0:
        return None
    return raw[start:colon].strip().lower()


def _text(data: bytes) -> str:
    """Header bytes as str: UTF-8 (RFC 6532) when valid, else Latin-1, which never fails."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _unfolded(raw: bytes, start: int, end: int) -> str:
    """The field's value after the colon: unfolded (RFC 5322 §2.2.3) and stripped."""
    colon = raw.find(b":", start, end)
    value = raw[colon + 1 : end].replace(b"\r\n", b"").replace(b"\n", b"").strip()
    return _text(value)


_CONTENT_FIELDS = frozenset(
    {
        b"content-type",
        b"content-transfer-encoding",
        b"content-id",
        b"content-description",
        b"content-md5",
        b"content-disposition",
        b"content-language",
        b"content-location",
    }
)
_ENVELOPE_FIELDS = frozenset(
    {
        b"date",
        b"subject",
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"in-reply-to",
        b"message-id",
    }
)
_MESSAGE_FIELDS = _CONTENT_FIELDS | _ENVELOPE_FIELDS


def _first_values(
    raw: bytes, spans: Iterable[tuple[int, int]], wanted: frozenset[bytes]
) -> dict[bytes, str]:
    """The unfolded value of the first field of each wanted name."""
    found: dict[bytes, str] = {}
    for start, end in spans:
        name = _field_name(raw, start, end)
        if name is not None and name in wanted and name not in found:
            found[name] = _unfolded(raw, start, end)
    return found


# ------------------------------------------------------------------- MIME header values

_TOKEN = re.compile(r"[^\x00-\x20\x7f()<>@,;:\\\"/\[\]?=]+")  # RFC 2045 §5.1 token
_PARAM_NAME = re.compile(r"[\s;]*([^\s=;\"]+)\s*=\s*")
_COMMENT = re.compile(r"\([^()]*\)")


def _strip_comments(value: str) -> str:
    # Nested comments lose one level per pass; the loop is bounded by the string length.
    while "(" in value:
        stripped = _COMMENT.sub(" ", value)
        if stripped == value:
            return value.split("(", 1)[0]
        value = stripped
    return value


def _quoted(s: str, pos: int) -> tuple[str, int]:
    """The quoted-string at ``s[pos] == '"'``, unescaped, and the index after it; an
    unterminated string runs to the end."""
    out: list[str] = []
    i = pos + 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < n:
            i += 1
            c = s[i]
        out.append(c)
        i += 1
    return "".join(out), n


def _raw_params(s: str) -> list[tuple[str, str]]:
    """``; name=value`` pairs, leniently: a piece without ``=`` is skipped."""
    out: list[tuple[str, str]] = []
    pos = 0
    n = len(s)
    while pos < n:
        m = _PARAM_NAME.match(s, pos)
        if m is None:
            nxt = s.find(";", pos)
            if nxt < 0:
                break
            pos = nxt + 1
            continue
        name = m.group(1).lower()
        pos = m.end()
        if pos < n and s[pos] == '"':
            value, pos = _quoted(s, pos)
        else:
            stop = s.find(";", pos)
            stop = n if stop < 0 else stop
            value = _strip_comments(s[pos:stop]).strip()
            pos = stop
        out.append((name, value))
    return out


def _decode_charset(data: bytes, charset: str) -> str:
    """``data`` in ``charset``, never raising: US-ASCII is read as UTF-8 (its superset, and
    what mislabelled mail holds), an unknown or non-text codec falls back to UTF-8."""
    cs = charset.strip().lower()
    if cs in ("", "us-ascii", "ascii"):
        cs = "utf-8"
    try:
        return data.decode(cs, "replace")
    except (LookupError, ValueError):  # unknown, non-text ("hex"), or "undefined" codecs
        return data.decode("utf-8", "replace")


def _rfc2231(params: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Merge RFC 2231 continuations (``name*0``, ``name*1*``) and decode ``charset'lang'``
    values (RFC 2231 §3-4); an extended parameter wins over a plain one of the same name."""
    if not any("*" in name for name, _ in params):
        seen: dict[str, str] = {}
        for name, value in params:
            seen.setdefault(name, value)
        return tuple(seen.items())
    plain: dict[str, str] = {}
    pieces: dict[str, list[tuple[int, bool, str]]] = {}
    order: list[str] = []
    for name, value in params:
        base = name
        index = 0
        encoded = False
        if "*" in name:
            encoded = name.endswith("*")
            stem = name[:-1] if encoded else name
            base, star, num = stem.partition("*")
            if star and not (num.isdigit() and len(num) <= 4):
                base, encoded = name, False  # not RFC 2231 syntax: keep it as a plain name
            elif star:
                index = int(num)
        if base not in order:
            order.append(base)
        if base == name:
            plain.setdefault(name, value)
        else:
            pieces.setdefault(base, []).append((index, encoded, value))
    out: list[tuple[str, str]] = []
    for base in order:
        if base not in pieces:
            out.append((base, plain[base]))
            continue
        charset = ""
        chunks: list[bytes] = []
        for pos, (index, encoded, value) in enumerate(sorted(pieces[base], key=lambda p: p[0])):
            text = value
            if encoded and pos == 0 and index == 0 and text.count("'") >= 2:
                charset, _lang, text = text.split("'", 2)
            chunks.append(
                urllib.parse.unquote_to_bytes(text) if encoded else text.encode("utf-8")
            )
        out.append((base, _decode_charset(b"".join(chunks), charset)))
    return tuple(out)


def _content_type(value: str) -> tuple[str, str, tuple[tuple[str, str], ...]] | None:
    """RFC 2045 §5.1 ``type/subtype; params``; None when the type is not two tokens."""
    main, _, rest = value.partition(";")
    kind, slash, sub = _strip_comments(main).partition("/")
    kind = kind.strip().lower()
    sub = sub.strip().lower()
    if not slash or _TOKEN.fullmatch(kind) is None or _TOKEN.fullmatch(sub) is None:
        return None
    return kind, sub, _rfc2231(_raw_params(rest))


def _disposition(value: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """RFC 2183 §2 ``disposition-type; params``, the type lower-cased."""
    main, _, rest = value.partition(";")
    kind = _strip_comments(main).strip().lower()
    if not kind:
        return None
    return kind, _rfc2231(_raw_params(rest))


def _language(value: str) -> tuple[str, ...] | None:
    """RFC 3282 Content-Language: a comma-separated list of tags."""
    tags = tuple(t.strip() for t in _strip_comments(value).split(",") if t.strip())
    return tags or None


def _encoding(value: str | None) -> str:
    if value is None:
        return "7BIT"
    token = _strip_comments(value).strip().split(";", 1)[0].strip()
    return token.upper() or "7BIT"


# --------------------------------------------------------------------- address parsing

_ADDR_TOKEN = re.compile(r'\s*(?:([<>@,;:.])|("(?:[^"\\]|\\.)*"?)|(\[[^\]]*\]?)|([^\s<>@,;:."(\[]+)|(\())', re.S)


@dataclass(slots=True)
class _Tok:
    kind: str  # "s" special, "q" quoted, "a" atom (incl. domain literal), "c" comment
    text: str
    space: bool  # preceded by whitespace


def _tokens(s: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    n = len(s)
    while pos < n:
        m = _ADDR_TOKEN.match(s, pos)
        if m is None:  # only trailing whitespace is left
            break
        space = m.start() != (m.start(1) if m.lastindex == 1 else m.start(m.lastindex or 0))
        pos = m.end()
        if m.group(1) is not None:
            toks.append(_Tok("s", m.group(1), space))
        elif m.group(2) is not None:
            body, _ = _quoted(m.group(2), 0)
            toks.append(_Tok("q", body, space))
        elif m.group(3) is not None:
            toks.append(_Tok("a", m.group(3), space))
        elif m.group(4) is not None:
            toks.append(_Tok("a", m.group(4), space))
        else:  # comment: nested parentheses, backslash escapes, maybe unterminated
            depth = 1
            i = pos
            while i < n and depth:
                c = s[i]
                if c == "\\":
                    i += 1
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                i += 1
            toks.append(_Tok("c", s[pos : max(pos, i - 1 if not depth else i)].strip(), space))
            pos = i
    return toks


_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


def _join(toks: Sequence[_Tok], *, spaced: bool) -> str:
    """Words of a phrase (``spaced``: whitespace kept as one space) or of an addr-spec."""
    out: list[str] = []
    for tok in toks:
        if tok.kind == "c":
            continue
        text = tok.text
        if not spaced and tok.kind == "q" and _ATEXT.fullmatch(text) is None:
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if spaced and out and tok.space:
            out.append(" ")
        out.append(text)
    return "".join(out)


def _comment(toks: Sequence[_Tok]) -> str | None:
    for tok in toks:
        if tok.kind == "c" and tok.text:
            return tok.text
    return None


def _addr_spec(toks: Sequence[_Tok], name: str | None, adl: str | None) -> Address | None:
    """``local@domain`` tokens (no angle brackets) to an Address."""
    at = next((i for i, t in enumerate(toks) if t.kind == "s" and t.text == "@"), -1)
    local = toks if at < 0 else toks[:at]
    domain = () if at < 0 else [t for t in toks[at + 1 :] if t.kind != "s" or t.text == "."]
    mailbox = _join(local, spaced=False)
    host = _join(domain, spaced=False)
    if not mailbox and not host and name is None:
        return None
    return Address(name, adl, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN)


def _mailbox(toks: list[_Tok]) -> Address | None:
    """RFC 5322 §3.4 mailbox: ``name-addr`` or ``addr-spec`` (with a trailing comment as
    the name, as Dovecot does)."""
    lt = next((i for i, t in enumerate(toks) if t.kind == "s" and t.text == "<"), -1)
    if lt < 0:
        return _addr_spec(toks, _comment(toks), None)
    gt = next((i for i in range(lt + 1, len(toks)) if toks[i].text == ">" and toks[i].kind == "s"), len(toks))
    phrase = toks[:lt]
    name = _join(phrase, spaced=True) or _comment(phrase) or _comment(toks[gt:]) or None
    inner = toks[lt + 1 : gt]
    adl = None
    if inner and inner[0].kind == "s" and inner[0].text == "@":
        colon = next((i for i, t in enumerate(inner) if t.kind == "s" and t.text == ":"), -1)
        if colon >= 0:  # RFC 5322 §4.4 obs-route: <@a,@b:user@host>
            adl = _join(inner[:colon], spaced=False) or None
            inner = inner[colon + 1 :]
    return _addr_spec(inner, name, adl)


def _addresses(value: str | None) -> tuple[Address, ...]:
    """An RFC 5322 §3.4 address-list, groups as RFC 3501 §7.4.2 start and end markers."""
    if value is None:
        return ()
    toks = _tokens(value)
    out: list[Address] = []
    current: list[_Tok] = []
    in_group = False
    angle = False

    def flush() -> None:
        if current:
            addr = _mailbox(current)
            if addr is not None:
                out.append(addr)
            current.clear()

    for tok in toks:
        if tok.kind == "s":
            if tok.text == "<":
                angle = True
            elif tok.text == ">":
                angle = False
            elif not angle and tok.text == ",":
                flush()
                continue
            elif not angle and tok.text == ":" and not in_group:
                name = _join(current, spaced=True)
                current.clear()
                out.append(Address(None, None, name, None))
                in_group = True
                continue
            elif not angle and tok.text == ";" and in_group:
                flush()
                out.append(Address(None, None, None, None))
                in_group = False
                continue
            elif tok.text == ";":
                continue
        current.append(tok)
    flush()
    if in_group:  # unterminated group: close it, or the list is not well formed
        out.append(Address(None, None, None, None))
    return tuple(out)


def _envelope(h: dict[bytes, str]) -> Envelope:
    """RFC 3501 §7.4.2 ENVELOPE from a message's first header values."""
    from_ = _addresses(h.get(b"from"))
    return Envelope(
        date=h.get(b"date"),
        subject=h.get(b"subject"),
        from_=from_,
        sender=_addresses(h.get(b"sender")) or from_,  # RFC 3501 §7.4.2 defaults
        reply_to=_addresses(h.get(b"reply-to")) or from_,
        to=_addresses(h.get(b"to")),
        cc=_addresses(h.get(b"cc")),
        bcc=_addresses(h.get(b"bcc")),
        in_reply_to=h.get(b"in-reply-to"),
        message_id=h.get(b"message-id"),
    )


# ------------------------------------------------------------------------- MIME parsing


@dataclass(slots=True)
class _Ctx:
    raw: bytes
    entities: int = 0


_DEFAULT_TEXT = ("text", "plain", (("charset", "us-ascii"),))
_DEFAULT_DIGEST: tuple[str, str, tuple[tuple[str, str], ...]] = ("message", "rfc822", ())


def _delimited(raw: bytes, start: int, end: int, boundary: bytes, budget: int) -> list[tuple[int, int]]:
    """Spans of the body parts of a multipart body ``raw[start:end]`` (RFC 2046 §5.1.1): the
    line break before a delimiter belongs to it, so a part ends before that CRLF; at most
    ``budget`` spans, the last running to ``end`` when cut short or unclosed."""
    delim = b"--" + boundary
    spans: list[tuple[int, int]] = []
    part_start = -1
    if raw.startswith(delim, start, end):
        i = start
    else:
        i = raw.find(b"\n" + delim, start, end)
        i = -1 if i < 0 else i + 1
    while i >= 0:
        j = i + len(delim)
        close = raw.startswith(b"--", j, end)
        if close:
            j += 2
        while j < end and raw[j] in (0x20, 0x09):
            j += 1
        line_end = -1
        if j >= end:
            line_end = end
        elif raw[j] == 0x0A:
            line_end = j + 1
        elif raw[j] == 0x0D and (j + 1 == end or raw[j + 1] == 0x0A):
            line_end = min(j + 2, end)
        elif close:  # "--boundary--junk": still the close delimiter
            line_end = end
        if line_end >= 0:
            if part_start >= 0:
                stop = i - 1 if i > start else i
                if stop > part_start and raw[stop - 1] == 0x0D:
                    stop -= 1
                spans.append((part_start, max(part_start, stop)))
            if close:
                return spans
            part_start = line_end
            if len(spans) + 1 >= budget:
                break
        nxt = raw.find(b"\n" + delim, i + 1, end)
        i = -1 if nxt < 0 else nxt + 1
    if part_start >= 0:
        spans.append((part_start, end))
    return spans


def _entity(
    ctx: _Ctx, start: int, end: int, depth: int, in_digest: bool, is_message: bool
) -> BodyPart:
    """Parse the entity in ``raw[start:end]``, a whole message when ``is_message``."""
    raw = ctx.raw
    ctx.entities += 1
    header_end, body_start = _split_header(raw, start, end)
    spans = _field_spans(raw, start, header_end)
    h = _first_values(raw, spans, _MESSAGE_FIELDS if is_message else _CONTENT_FIELDS)
    envelope = _envelope(h) if is_message else None
    ct_value = h.get(b"content-type")
    ct = _content_type(ct_value) if ct_value is not None else None
    if ct is None:
        ct = _DEFAULT_DIGEST if in_digest else _DEFAULT_TEXT
    kind, sub, params = ct
    boundary = next((v for k, v in params if k == "boundary"), "") if kind == "multipart" else ""
    if kind == "multipart" and not boundary:
        kind, sub, params = _DEFAULT_TEXT  # RFC 2045 §5.2: invalid Content-Type
    container = kind == "multipart" or (kind == "message" and sub == "rfc822")
    if container and (depth >= MAX_DEPTH or ctx.entities >= MAX_PARTS):
        kind, sub = "application", "octet-stream"
        container = False
    parts: tuple[BodyPart, ...] = ()
    message: BodyPart | None = None
    if container and kind == "multipart":
        budget = MAX_PARTS - ctx.entities
        bspans = _delimited(raw, body_start, end, _text_bytes(boundary), budget)
        parts = tuple(
            _entity(ctx, s, e, depth + 1, sub == "digest", False) for s, e in bspans
        )
    elif container:
        message = _entity(ctx, body_start, end, depth + 1, False, True)
    lines = raw.count(b"\n", body_start, end) if kind == "text" or message is not None else 0
    disposition = h.get(b"content-disposition")
    language = h.get(b"content-language")
    return BodyPart(
        type=kind,
        subtype=sub,
        params=params,
        id=h.get(b"content-id"),
        description=h.get(b"content-description"),
        encoding=_encoding(h.get(b"content-transfer-encoding")),
        size=end - body_start,
        lines=lines,
        md5=h.get(b"content-md5"),
        disposition=_disposition(disposition) if disposition is not None else None,
        language=_language(language) if language is not None else None,
        location=h.get(b"content-location"),
        header_start=start,
        body_start=body_start,
        body_end=end,
        parts=parts,
        message=message,
        envelope=envelope if is_message else (message.envelope if message else None),
    )


def _text_bytes(s: str) -> bytes:
    """Back to the bytes it was decoded from (see `_text`)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:  # pragma: no cover - _text never yields lone surrogates
        return s.encode("latin-1", "replace")


def parse_message(raw: bytes) -> BodyPart:
    """The structure of the RFC 5322 message ``raw``, with its `Envelope` on the top part.

    Never raises: garbage parses as some text/plain message. Linear in ``len(raw)`` times
    the nesting depth (bounded by `MAX_DEPTH`)."""
    return _entity(_Ctx(raw), 0, len(raw), 0, False, True)
