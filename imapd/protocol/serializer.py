"""Responses -> bytes: the one place choosing atom, quoted string or literal.

Owns: `serialize` for every `Response` and `serialize_value` for the values inside them
(RFC 3501 §4 and §9). A `str` goes out quoted only when it has no CR, LF or NUL, is short and
is ASCII (or valid UTF-8 once UTF8=ACCEPT is enabled, RFC 6855 §3); otherwise as a literal, so
the parser reads back exactly what was written (pymap's `String.build` quoted a bare CR).
Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import assert_never, cast

from imapd.protocol import utf7
from imapd.protocol.responses import (
    Atom,
    Continuation,
    Literal8,
    MailboxName,
    Raw,
    Response,
    Serialized,
    Tagged,
    Untagged,
    UntaggedStatus,
    Value,
)

#: Longer strings go out as literals: keeps lines short for clients with line buffers
#: (mox's `string0.pack` also falls back to a literal past a size).
MAX_QUOTED = 1000

_CRLF = b"\r\n"


def _quotable(data: bytes, utf8: bool) -> bool:
    if len(data) > MAX_QUOTED or b"\r" in data or b"\n" in data or b"\x00" in data:
        return False
    return utf8 or data.isascii()


def _encode_str(s: str) -> tuple[bytes, bool]:
    """UTF-8 bytes of ``s`` and whether they are valid UTF-8 (lone surrogates are not)."""
    try:
        return s.encode("utf-8"), True
    except UnicodeEncodeError:
        # Surrogate-escaped raw bytes go back as they came; anything else is replaced.
        try:
            return s.encode("utf-8", "surrogateescape"), False
        except UnicodeEncodeError:
            return s.encode("utf-8", "replace"), False


def literal(data: bytes) -> bytes:
    """A synchronizing-form literal (RFC 3501 §9: ``"{" number "}" CRLF *CHAR8``). CHAR8
    excludes NUL, which only a literal8 may carry (RFC 3516: BINARY's answers only): a NUL
    octet goes out as 0x80, as Dovecot sends it, so the length (RFC822.SIZE, partial
    offsets) stays what it was. The stored message keeps its NUL octets."""
    if b"\x00" in data:
        data = data.replace(b"\x00", b"\x80")
    return b"{%d}\r\n" % len(data) + data


def serialize_string(s: str, *, utf8: bool = False) -> bytes:
    """A *string* (RFC 3501 §4.3): quoted when safe, else a synchronizing-form literal."""
    data, valid = _encode_str(s)
    if valid and _quotable(data, utf8):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def serialize_value(value: Value, *, utf8: bool = False) -> bytes:
    """One value of an untagged response; see `responses` for the model."""
    # The common exact types first (numbers, atoms, lists of them: every EXISTS, FETCH
    # FLAGS and STATUS line), without the class-pattern match below.
    kind = type(value)
    if kind is int:
        return b"%d" % cast(int, value)
    if kind is Atom:
        return cast(Atom, value).encode("utf-8")
    if kind is tuple:
        inner = [serialize_value(v, utf8=utf8) for v in cast(tuple[Value, ...], value)]
        return b"(" + b" ".join(inner) + b")"
    match value:
        case None:
            return b"NIL"
        case Atom():
            return value.encode("utf-8")
        case MailboxName():
            return serialize_string(value if utf8 else utf7.encode(value), utf8=utf8)
        case str():
            return serialize_string(value, utf8=utf8)
        case bytes():
            return literal(value)
        case bool():  # a bool is an int to Python; never meant as a number on the wire
            raise TypeError("bool is not an IMAP value")
        case int():
            return b"%d" % value
        case Raw(data):
            return data
        case Literal8(data):
            return b"~{%d}\r\n" % len(data) + data  # RFC 3516 §4.2
        case tuple() | list():
            return b"(" + b" ".join(serialize_value(v, utf8=utf8) for v in value) + b")"
        case _:
            assert_never(value)


def _text(text: str) -> bytes:
    """resp-text's text: no CR or LF may reach the wire (RFC 3501 §9 TEXT-CHAR)."""
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


def _resp_text(status: str, code: str | None, text: str) -> bytes:
    out = status.encode("ascii")
    if code:
        out += b" [" + _text(code) + b"]"
    if text:
        out += b" " + _text(text)
    return out


def serialize(response: Response, *, utf8: bool = False) -> bytes:
    """One response, CRLF-terminated."""
    if type(response) is Serialized:  # pre-rendered (NOTIFY fan-out, FETCH FLAGS): as is
        return response.data
    match response:
        case Untagged(items):
            body = b" ".join([serialize_value(v, utf8=utf8) for v in items])
            return b"* " + body + _CRLF
        case UntaggedStatus(status, text, code):
            return b"* " + _resp_text(status, code, text) + _CRLF
        case Tagged(tag, status, text, code):
            return tag.encode("ascii") + b" " + _resp_text(status, code, text) + _CRLF
        case Continuation(text):
            return b"+ " + _text(text) + _CRLF
        case Serialized(data):
            return data
        case _:
            assert_never(response)


def serialize_all(responses: Iterable[Response], *, utf8: bool = False) -> bytes:
    """Several responses in order, as one write."""
    return b"".join([serialize(r, utf8=utf8) for r in responses])


#: Literals of at least this many octets are not copied into the output (`serialize_pieces`).
BIG_LITERAL = 64 * 1024


def serialize_pieces(responses: Iterable[Response], *, utf8: bool = False) -> list[bytes]:
    """`serialize_all` as consecutive pieces, in which a big literal's octets (a FETCH
    BODY[] of a 30 MB message) are the value's own ``bytes`` object, never copied: joining
    them into one response would hold two or three copies while it is written. Looks for
    them where FETCH puts them, in an untagged response's items or one list below."""
    out: list[bytes] = []
    small: list[bytes] = []
    for response in responses:
        if type(response) is Serialized and len(response.data) >= BIG_LITERAL:
            if small:  # already rendered (a big FETCH batch rendered off the loop): as is
                out.append(b"".join(small))
                small.clear()
            out.append(response.data)
        elif type(response) is Untagged and any(map(_holds_big, response.items)):
            small.append(b"* ")
            for i, value in enumerate(response.items):
                if i:
                    small.append(b" ")
                _pieces(value, small, out, utf8, 1)
            small.append(_CRLF)
        else:
            small.append(serialize(response, utf8=utf8))
    if small:
        out.append(b"".join(small))
    return out


def _big(value: Value) -> bytes | None:
    kind = type(value)
    if kind is bytes and len(cast(bytes, value)) >= BIG_LITERAL:
        data = cast(bytes, value)  # never a NUL in a {n} literal (`literal`): copied only then
        return data.replace(b"\x00", b"\x80") if b"\x00" in data else data
    if kind is Literal8 and len(cast(Literal8, value).data) >= BIG_LITERAL:
        return cast(Literal8, value).data
    return None


def _holds_big(value: Value, depth: int = 1) -> bool:
    if _big(value) is not None:
        return True
    if depth and isinstance(value, tuple | list):
        return any(_holds_big(v, depth - 1) for v in value)
    return False


def _pieces(value: Value, small: list[bytes], out: list[bytes], utf8: bool, depth: int) -> None:
    data = _big(value)
    if data is not None:
        small.append(
            b"~{%d}\r\n" % len(data) if type(value) is Literal8 else b"{%d}\r\n" % len(data)
        )
        out.append(b"".join(small))
        small.clear()
        out.append(data)
    elif depth and isinstance(value, tuple | list) and _holds_big(value, depth):
        small.append(b"(")
        for i, v in enumerate(value):
            if i:
                small.append(b" ")
            _pieces(v, small, out, utf8, depth - 1)
        small.append(b")")
    else:
        small.append(serialize_value(value, utf8=utf8))
