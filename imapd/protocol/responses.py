"""Server responses as values, serialised only by `serializer.py`.

Owns: the response model. Untagged data responses are sequences of `Value`s:

- `Atom`: written as is (flags, keywords, NIL-free tokens such as ``EXISTS``, ``FLAGS``);
- `str`: a *string*; the serializer picks quoted or literal (never atom);
- `MailboxName`: a mailbox name, modified UTF-7 encoded unless UTF8=ACCEPT is on;
- `bytes`: content, always a literal (``{n}\\r\\n`` + bytes), or literal8 via `Literal8`;
- `int`: a number; `None`: ``NIL``;
- `tuple`/`list`: a parenthesised list of values;
- `Raw`: pre-serialised bytes spliced in verbatim (used for cached BODYSTRUCTUREs).

Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


class Atom(str):
    """A token written without quotes: flags, response names, section specs."""

    __slots__ = ()


class MailboxName(str):
    """A mailbox name (Unicode). The serializer encodes it as modified UTF-7 (RFC 3501
    §5.1.3) unless UTF8=ACCEPT is enabled, then picks quoted or literal as for any string."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Raw:
    data: bytes


@dataclass(frozen=True, slots=True)
class Literal8:
    """RFC 3516 ``~{n}`` literal for BINARY fetch results."""

    data: bytes


Value: TypeAlias = "Atom | MailboxName | str | bytes | int | None | Raw | Literal8 | list[Value] | tuple[Value, ...]"  # noqa: E501, RUF036


@dataclass(frozen=True, slots=True)
class Untagged:
    """``* v1 v2 ...`` (e.g. ``(5, Atom("EXISTS"))`` or ``(Atom("FLAGS"), (...))``)."""

    items: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class UntaggedStatus:
    """``* OK|NO|BAD|BYE|PREAUTH [code] text``; ``code`` is pre-rendered (e.g. "UIDNEXT 5")."""

    status: str
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Tagged:
    tag: str
    status: str  # "OK" | "NO" | "BAD"
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text`` (or ``+ base64`` for SASL challenges)."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class Serialized:
    """Responses already rendered to wire bytes (CRLF included) by a hot path that builds
    them directly, e.g. FETCH FLAGS over a whole mailbox. Written verbatim."""

    data: bytes


Response: TypeAlias = Untagged | UntaggedStatus | Tagged | Continuation | Serialized
