"""Header fields of a message or MIME entity: finding them, and reading their values.

Owns: the header block scan over ``bytes`` (where a header ends, field spans with their
folding, the first value of each wanted field in one regex pass) and the parsing of MIME
header values (Content-Type, Content-Disposition, Content-Language,
Content-Transfer-Encoding, RFC 2231 parameters, RFC 2047 encoded words, charsets). Nothing
here raises on malformed input. Stdlib only; imports nothing of imapd or notify.

Header values are decoded by our own small RFC 2047 and RFC 2231 code rather than
``email.header``/``email.utils``: ``decode_params`` raises TypeError on ``name*`` next to
``name*0``, and ``decode_header`` turns a malformed encoded word into an empty string.
"""

from __future__ import annotations

import binascii
import re
import urllib.parse

# --------------------------------------------------------------------------- header scanning


def split_header(raw: bytes, start: int, end: int) -> tuple[int, int]:
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


def field_spans(raw: bytes, start: int, end: int) -> list[tuple[int, int]]:
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


def field_name(raw: bytes, start: int, end: int) -> bytes | None:
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


def unfolded(raw: bytes, start: int, end: int) -> str:
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
CONTENT_FIELD = re.compile(rb"(?<![^\n])(" + _CONTENT_NAMES + rb")[ \t]*:", re.IGNORECASE)
MESSAGE_FIELD = re.compile(
    rb"(?<![^\n])(" + _CONTENT_NAMES + rb"|" + _ENVELOPE_NAMES + rb")[ \t]*:", re.IGNORECASE
)


def first_values(raw: bytes, start: int, end: int, pattern: re.Pattern[bytes]) -> dict[bytes, str]:
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


def quoted_string(s: str, pos: int) -> tuple[str, int]:
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
            value, pos = quoted_string(s, pos)
        else:
            stop = s.find(";", pos)
            stop = n if stop < 0 else stop
            value = _strip_comments(s[pos:stop]).strip()
            pos = stop
        out.append((name, value))
    return out


def decode_charset(data: bytes, charset: str) -> str:
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
        out.append((base, decode_charset(b"".join(chunks), charset)))
    return tuple(out)


def content_type(value: str) -> tuple[str, str, tuple[tuple[str, str], ...]] | None:
    """RFC 2045 §5.1 ``type/subtype; params``; None when the type is not two tokens."""
    main, _, rest = value.partition(";")
    kind, slash, sub = _strip_comments(main).partition("/")
    kind = kind.strip().lower()
    sub = sub.strip().lower()
    if not slash or _TOKEN.fullmatch(kind) is None or _TOKEN.fullmatch(sub) is None:
        return None
    return kind, sub, _rfc2231(_raw_params(rest))


def content_disposition(value: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """RFC 2183 §2 ``disposition-type; params``, the type lower-cased."""
    main, _, rest = value.partition(";")
    kind = _strip_comments(main).strip().lower()
    if not kind:
        return None
    return kind, _rfc2231(_raw_params(rest))


def content_language(value: str) -> tuple[str, ...] | None:
    """RFC 3282 Content-Language: a comma-separated list of tags."""
    tags = tuple(t.strip() for t in _strip_comments(value).split(",") if t.strip())
    return tags or None


def transfer_encoding(value: str | None) -> str:
    if value is None:
        return "7BIT"
    token = _strip_comments(value).strip().split(";", 1)[0].strip()
    return token.upper() or "7BIT"


# ------------------------------------------------------------ RFC 2047 encoded words

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
            out.append(decode_charset(b"".join(pending), charset))
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
        out.append(decode_charset(b"".join(pending), charset))
    out.append(value[pos:])
    return "".join(out)
