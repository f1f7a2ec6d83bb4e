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
- nesting deeper than `MAX_DEPTH` or more than `MAX_PARTS` entities (limits as in Dovecot's
  message-parser): the container becomes one opaque ``application/octet-stream`` leaf.

Header values are decoded by our own small RFC 2047 and RFC 2231 code rather than
``email.header``/``email.utils``: ``decode_params`` raises TypeError on ``name*`` next to
``name*0``, and ``decode_header`` turns a malformed encoded word into an empty string.

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
    end = min(end, len(raw))
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
    value = (
        raw[colon + 1 if colon >= 0 else start : end]
        .replace(b"\r\n", b"")
        .replace(b"\n", b"")
        .strip()
    )
    return _text(value)


# The fields parse_message reads, found by one C-speed regex pass over the header block, so
# a header of many Received lines (or a 10 MB header) costs no Python per line. A field
# starts at a line start not followed by white space; `(?<![^\n])` is "at the start of the
# string or after LF", which unlike `^` also holds at the `pos` given to finditer.
_CONTENT_NAMES = (
    rb"content-(?:type|transfer-encoding|id|description|md5|disposition|language|location)"
)
_ENVELOPE_NAMES = rb"date|subject|from|sender|reply-to|to|cc|bcc|in-reply-to|message-id"
_CONTENT_FIELD = re.compile(rb"(?<![^\n])(" + _CONTENT_NAMES + rb")[ \t]*:", re.IGNORECASE)
_MESSAGE_FIELD = re.compile(
    rb"(?<![^\n])(" + _CONTENT_NAMES + rb"|" + _ENVELOPE_NAMES + rb")[ \t]*:", re.IGNORECASE
)


def _first_values(raw: bytes, start: int, end: int, pattern: re.Pattern[bytes]) -> dict[bytes, str]:
    """The unfolded value of the first field of each name ``pattern`` finds in the header
    block ``raw[start:end]``, keyed by the lower-case name."""
    found: dict[bytes, str] = {}
    for m in pattern.finditer(raw, start, end):
        name = m.group(1).lower()
        if name in found:
            continue
        nl = raw.find(b"\n", m.end(), end)
        while 0 <= nl < end - 1 and raw[nl + 1] in (0x20, 0x09):  # folded continuation
            nl = raw.find(b"\n", nl + 1, end)
        stop = end if nl < 0 else nl + 1
        value = raw[m.end() : stop].replace(b"\r\n", b"").replace(b"\n", b"").strip()
        found[name] = _text(value)
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
            chunks.append(urllib.parse.unquote_to_bytes(text) if encoded else text.encode("utf-8"))
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

_ADDR_TOKEN = re.compile(
    r'\s*(?:([<>@,;:.])|("(?:[^"\\]|\\.)*"?)|(\[[^\]]*\]?)|([^\s<>@,;:."(\[]+)|(\())', re.S
)


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
        space = m.start(m.lastindex or 0) != m.start()
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
    if not mailbox and not host:
        return None
    return Address(name, adl, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN)


def _mailbox(toks: list[_Tok]) -> Address | None:
    """RFC 5322 §3.4 mailbox: ``name-addr`` or ``addr-spec`` (with a trailing comment as
    the name, as Dovecot does)."""
    lt = next((i for i, t in enumerate(toks) if t.kind == "s" and t.text == "<"), -1)
    if lt < 0:
        return _addr_spec(toks, _comment(toks), None)
    gt = next(
        (i for i in range(lt + 1, len(toks)) if toks[i].text == ">" and toks[i].kind == "s"),
        len(toks),
    )
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


_BLANKS = re.compile(rb"[ \t]*")
# After this many lines that start like a delimiter but are not one, switch from bytes.find
# plus Python checks to a regex compiled for the boundary (not worth compiling for the
# usual handful of delimiters), so a body of near-delimiter lines stays at C speed.
_REJECTS_BEFORE_REGEX = 64


def _delimited(
    raw: bytes, start: int, end: int, boundary: bytes, budget: int
) -> list[tuple[int, int]]:
    """Spans of the body parts of a multipart body ``raw[start:end]`` (RFC 2046 §5.1.1): the
    line break before a delimiter belongs to it, so a part ends before that CRLF; at most
    ``budget`` spans, the last running to ``end`` when cut short or unclosed."""
    delim = b"--" + boundary
    nl_delim = b"\n" + delim
    spans: list[tuple[int, int]] = []
    part_start = -1
    rejects = 0
    finder: re.Pattern[bytes] | None = None
    if raw.startswith(delim, start, end):
        i = start
    else:
        i = raw.find(nl_delim, start, end)
        i = -1 if i < 0 else i + 1
    while i >= 0:
        j = i + len(delim)
        close = raw.startswith(b"--", j, end)
        if close:
            j += 2
        m = _BLANKS.match(raw, j, end)
        j = m.end() if m else j
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
        else:
            rejects += 1
            if rejects == _REJECTS_BEFORE_REGEX:
                finder = re.compile(re.escape(nl_delim) + rb"(?:--|[ \t]*(?:\n|\r\n|\r?\Z))")
        if finder is None:
            nxt = raw.find(nl_delim, i + 1, end)
        else:
            found = finder.search(raw, i + 1, end)
            nxt = -1 if found is None else found.start()
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
    h = _first_values(raw, start, header_end, _MESSAGE_FIELD if is_message else _CONTENT_FIELD)
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
        bspans = _delimited(
            raw, body_start, end, _boundary_bytes(boundary, raw, body_start, end), budget
        )
        parts = tuple(_entity(ctx, s, e, depth + 1, sub == "digest", False) for s, e in bspans)
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


def _boundary_bytes(boundary: str, raw: bytes, start: int, end: int) -> bytes:
    """The boundary as the bytes it was decoded from (`_text` chose UTF-8 or Latin-1)."""
    if boundary.isascii():
        return boundary.encode("ascii")
    utf8 = boundary.encode("utf-8")
    try:
        latin1 = boundary.encode("latin-1")
    except UnicodeEncodeError:
        return utf8
    return utf8 if raw.find(b"--" + utf8, start, end) >= 0 else latin1


def parse_message(raw: bytes) -> BodyPart:
    """The structure of the RFC 5322 message ``raw``, with its `Envelope` on the top part.

    Never raises: garbage parses as some text/plain message. Linear in ``len(raw)`` times
    the nesting depth (bounded by `MAX_DEPTH`)."""
    return _entity(_Ctx(raw), 0, len(raw), 0, False, True)


# ------------------------------------------------------------------------- sections


def _resolve(top: BodyPart, path: tuple[int, ...]) -> BodyPart | None:
    """The entity a part number names (RFC 3501 §6.4.5): a multipart's children count
    from 1; a message that is not multipart has only part 1, its body (the same entity);
    a number after a message/rfc822 part continues inside the encapsulated message. Other
    leaves have no subparts: ``1.1`` of a text part does not exist (Dovecot lets it mean
    ``1``; the RFC gives it no meaning)."""
    cur = top
    is_message = True  # cur is a message (top level or encapsulated), not yet its body
    for i, n in enumerate(path):
        if cur.is_multipart:
            if not 1 <= n <= len(cur.parts):
                return None
            cur = cur.parts[n - 1]
        elif not (is_message and n == 1):
            return None
        is_message = False
        if i + 1 < len(path) and cur.message is not None and cur.is_message:
            cur = cur.message
            is_message = True
    return cur


def _header_spans(raw: bytes, part: BodyPart) -> list[tuple[int, int]]:
    header_end, _ = _split_header(raw, part.header_start, part.body_start)
    return _field_spans(raw, part.header_start, header_end)


def _header_fields(raw: bytes, part: BodyPart, fields: Sequence[str], exclude: bool) -> bytes:
    """HEADER.FIELDS (or .NOT): the matching fields in message order, folding and line
    ends kept, then the empty line (RFC 3501 §6.4.5); a last field without a line end
    gets a CRLF."""
    names = {f.strip().upper().encode("utf-8") for f in fields}
    out: list[bytes] = []
    for start, end in _header_spans(raw, part):
        name = _field_name(raw, start, end)
        matched = name is not None and name.upper() in names
        if matched != exclude:
            chunk = raw[start:end]
            out.append(chunk if chunk.endswith(b"\n") else chunk + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def section_bytes(
    raw: bytes,
    structure: BodyPart,
    part: tuple[int, ...],
    text: str | None,
    fields: tuple[str, ...] = (),
) -> bytes | None:
    """The octets of ``BODY[<part>.<text> (<fields>)]`` (RFC 3501 §6.4.5).

    ``part`` is the part path (``()`` for the whole message); ``text`` is None, "HEADER",
    "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME" (any case); ``fields`` the
    header names of the HEADER.FIELDS forms. Returns None when the section does not
    exist: a part number out of range, HEADER/TEXT after a part that is not
    message/rfc822, MIME without a part number. IMAP has no error for these; Dovecot
    answers with an empty string, so should the caller (not NIL, which some clients
    mishandle). Octets are as stored: bare LF line ends are not converted."""
    spec = (text or "").upper()
    target = _resolve(structure, part) if part else structure
    if target is None:
        return None
    if not spec:
        if not part:
            return raw
        return raw[target.body_start : target.body_end]
    if spec == "MIME":
        if not part:
            return None
        return raw[target.header_start : target.body_start]
    if part:
        # RFC 3501 §6.4.5: HEADER, HEADER.FIELDS[.NOT] and TEXT after a part number
        # need a MESSAGE/RFC822 part and address its encapsulated message.
        if target.message is None or not target.is_message:
            return None
        target = target.message
    if spec == "HEADER":
        return raw[target.header_start : target.body_start]
    if spec == "TEXT":
        return raw[target.body_start : target.body_end]
    if spec in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return _header_fields(raw, target, fields, spec.endswith(".NOT"))
    return None


# ------------------------------------------------------------------ search helpers

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _decode_word(encoding: str, text: str) -> bytes | None:
    data = text.encode("utf-8")
    if encoding in "bB":
        try:  # strict: "!!!" is no encoded word, not an empty one
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)
        except binascii.Error:
            return None
    return binascii.a2b_qp(data, header=True)


def decode_words(value: str) -> str:
    """``value`` with its RFC 2047 encoded words decoded, leniently: white space between two
    encoded words goes (RFC 2047 §6.2), adjacent words in one charset are decoded together
    (a character may be split across them), a word that does not decode stays as is."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[bytes] = []
    charset = ""
    pos = 0
    after_word = False
    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos : m.start()]
        data = _decode_word(m.group(2), m.group(3))
        word_charset = m.group(1).split("*", 1)[0].lower()  # RFC 2231 §5 language suffix
        joinable = after_word and not gap.strip() and data is not None
        if pending and not (joinable and word_charset == charset):
            out.append(_decode_charset(b"".join(pending), charset))
            pending.clear()
        if not joinable:
            out.append(gap)
        pos = m.end()
        if data is None:
            out.append(m.group(0))
            after_word = False
            continue
        pending.append(data)
        charset = word_charset
        after_word = True
    if pending:
        out.append(_decode_charset(b"".join(pending), charset))
    out.append(value[pos:])
    return "".join(out)


def header_values(raw: bytes, structure: BodyPart, name: str) -> list[str]:
    """Every value of the header field ``name`` (any case) of the message, in order,
    unfolded and RFC 2047-decoded: for SEARCH HEADER, SUBJECT, FROM... (RFC 3501 §6.4.4)."""
    wanted = name.strip().lower().encode("utf-8")
    return [
        decode_words(_unfolded(raw, start, end))
        for start, end in _header_spans(raw, structure)
        if _field_name(raw, start, end) == wanted
    ]


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _transfer_decoded(data: bytes, encoding: str) -> bytes:
    """``data`` with its Content-Transfer-Encoding undone (RFC 2045 §6), leniently."""
    if encoding == "BASE64":
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            clean = _NOT_BASE64.sub(b"", data)
            clean = clean[: len(clean) - len(clean) % 4]
            try:
                return binascii.a2b_base64(clean)
            except binascii.Error:  # pragma: no cover - clean input always decodes
                return data
    if encoding == "QUOTED-PRINTABLE":
        return binascii.a2b_qp(data)
    return data


def body_text(raw: bytes, structure: BodyPart) -> str:
    """The decoded text of every text/* part (inside encapsulated messages too), joined by
    newlines: transfer encoding undone, charset decoded with replacement characters. For
    SEARCH BODY and TEXT (RFC 3501 §6.4.4); headers are `header_values`' business."""
    out: list[str] = []
    stack = [structure]
    while stack:
        part = stack.pop()
        if part.parts:
            stack.extend(reversed(part.parts))
        elif part.message is not None:
            stack.append(part.message)
        elif part.type == "text":
            data = _transfer_decoded(raw[part.body_start : part.body_end], part.encoding)
            out.append(_decode_charset(data, part.param("charset") or ""))
    return "\n".join(out)


def address_text(addresses: Iterable[Address]) -> str:
    """Addresses as searchable text, display names decoded: ``Name <box@host>, group: ;``.
    SEARCH FROM/TO/CC/BCC match a substring of it, so both name and address match."""
    out: list[str] = []
    for a in addresses:
        if a.host is None:
            out.append(";" if a.mailbox is None else f"{decode_words(a.mailbox)}:")
            continue
        addr = f"{a.mailbox}@{a.host}"
        out.append(f"{decode_words(a.name)} <{addr}>" if a.name else addr)
    return ", ".join(out)


def message_id(structure: BodyPart) -> str | None:
    """The Message-ID of the message, as written (angle brackets included), or None."""
    if structure.envelope is None or structure.envelope.message_id is None:
        return None
    return structure.envelope.message_id.strip() or None


# --------------------------------------------------------------------------------- JSON
#
# Stored per message, so compact: a BodyPart is a list, the always-present fields first, then
# envelope, message, parts and the rarer extension fields, so that trailing defaults are
# dropped (a plain leaf is 9 items). Parameters are flat [name, value, ...] lists; an Envelope
# is a list in field order with trailing defaults dropped and sender/reply-to written as 1
# when equal to from (the usual case); a message/rfc822 part's envelope is written as 1 when
# it is its message's envelope (always, when parsed). Every value decodes back exactly.

_SAME = 1
_PART_DEFAULTS: tuple[Any, ...] = (None, None, [], None, None, None, None, None, None)
_ENVELOPE_DEFAULTS: tuple[Any, ...] = (None, None, [], _SAME, _SAME, [], [], [], None, None)
_FIXED = 9  # type, subtype, params, encoding, size, lines, header_start, body_start, body_end


def _trimmed(items: list[Any], defaults: tuple[Any, ...], keep: int) -> list[Any]:
    """``items`` without the trailing run equal to their defaults; ``defaults`` aligns with
    ``items[keep:]``."""
    while len(items) > keep and items[-1] == defaults[len(items) - 1 - keep]:
        items.pop()
    return items


def _padded(items: list[Any], defaults: tuple[Any, ...], keep: int) -> list[Any]:
    return items + list(defaults[len(items) - keep :])


def _flat(params: tuple[tuple[str, str], ...]) -> list[str]:
    return [x for pair in params for x in pair]


def _pairs(flat: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def _addrs_json(addrs: tuple[Address, ...]) -> list[list[str | None]]:
    return [[a.name, a.adl, a.mailbox, a.host] for a in addrs]


def _envelope_json(e: Envelope) -> list[Any]:
    items: list[Any] = [
        e.date,
        e.subject,
        _addrs_json(e.from_),
        _SAME if e.sender == e.from_ else _addrs_json(e.sender),
        _SAME if e.reply_to == e.from_ else _addrs_json(e.reply_to),
        _addrs_json(e.to),
        _addrs_json(e.cc),
        _addrs_json(e.bcc),
        e.in_reply_to,
        e.message_id,
    ]
    return _trimmed(items, _ENVELOPE_DEFAULTS, 0)


def _part_json(p: BodyPart) -> list[Any]:
    envelope: Any = None
    if p.envelope is not None:
        same = p.message is not None and p.message.envelope == p.envelope
        envelope = _SAME if same else _envelope_json(p.envelope)
    items: list[Any] = [
        p.type,
        p.subtype,
        _flat(p.params),
        p.encoding,
        p.size,
        p.lines,
        p.header_start,
        p.body_start,
        p.body_end,
        envelope,
        None if p.message is None else _part_json(p.message),
        [_part_json(c) for c in p.parts],
        p.id,
        p.description,
        p.md5,
        None if p.disposition is None else [p.disposition[0], _flat(p.disposition[1])],
        None if p.language is None else list(p.language),
        p.location,
    ]
    return _trimmed(items, _PART_DEFAULTS, _FIXED)


def structure_to_json(part: BodyPart) -> str:
    """Compact JSON for `part`; `structure_from_json` gives back an equal value."""
    return json.dumps(_part_json(part), ensure_ascii=False, separators=(",", ":"))


def _addrs_from(items: list[list[str | None]]) -> tuple[Address, ...]:
    return tuple(Address(*a) for a in items)


def _envelope_from(items: list[Any]) -> Envelope:
    e = _padded(items, _ENVELOPE_DEFAULTS, 0)
    from_ = _addrs_from(e[2])
    return Envelope(
        date=e[0],
        subject=e[1],
        from_=from_,
        sender=from_ if e[3] == _SAME else _addrs_from(e[3]),
        reply_to=from_ if e[4] == _SAME else _addrs_from(e[4]),
        to=_addrs_from(e[5]),
        cc=_addrs_from(e[6]),
        bcc=_addrs_from(e[7]),
        in_reply_to=e[8],
        message_id=e[9],
    )


def _part_from(items: list[Any]) -> BodyPart:
    v = _padded(items, _PART_DEFAULTS, _FIXED)
    message = None if v[10] is None else _part_from(v[10])
    envelope: Envelope | None = None
    if v[9] == _SAME and message is not None:
        envelope = message.envelope
    elif v[9] is not None:
        envelope = _envelope_from(v[9])
    return BodyPart(
        type=v[0],
        subtype=v[1],
        params=_pairs(v[2]),
        encoding=v[3],
        size=v[4],
        lines=v[5],
        header_start=v[6],
        body_start=v[7],
        body_end=v[8],
        envelope=envelope,
        message=message,
        parts=tuple(_part_from(c) for c in v[11]),
        id=v[12],
        description=v[13],
        md5=v[14],
        disposition=None if v[15] is None else (v[15][0], _pairs(v[15][1])),
        language=None if v[16] is None else tuple(v[16]),
        location=v[17],
    )


def structure_from_json(s: str) -> BodyPart:
    """The BodyPart that `structure_to_json` wrote as ``s``."""
    return _part_from(json.loads(s))
