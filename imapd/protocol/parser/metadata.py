"""The grammar of GETMETADATA and SETMETADATA (RFC 5464 §4).

Owns: entry names and their validity (§3.2), GETMETADATA's DEPTH and MAXSIZE options (also
after the mailbox, as the RFC's examples send them) and SETMETADATA's entry values.
Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import re
from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.parser.primitives import (
    NIL,
    Cursor,
    astring,
    atom,
    mailbox,
    message_literal,
    number,
    string,
)
from imapd.protocol.values import SpooledLiteral

_DEPTHS: Final = {"0": 0, "1": 1, "infinity": None}


def entry(c: Cursor, *, prefix: bool = False) -> str:
    """entry = astring  ; slash-separated path to entry, MUST NOT contain "*" or "%"
    ; RFC 5464 §3.2: ASCII without controls, no "//", no trailing "/", first component
    ; "private" or "shared", at least 2 components (4 under .../vendor/); case-insensitive,
    ; so lower-cased here. ``prefix`` (GETMETADATA) also admits "/private" and "/shared"
    ; alone, as a DEPTH root. Invalid names are BAD in any command (§3.2)."""
    start = c.pos
    raw = astring(c)
    text = raw.decode("ascii", "replace").lower()
    parts = text.split("/")
    valid = (
        raw.isascii()
        and not any(b < 0x20 or b == 0x7F for b in raw)
        and "*" not in text
        and "%" not in text
        and parts[0] == ""
        and all(parts[1:])
        and len(parts) >= 2
        and parts[1] in ("private", "shared")
        and (len(parts) >= 3 or prefix)
        and (len(parts) < 3 or parts[2] != "vendor" or len(parts) >= 5 or prefix)
    )
    if not valid:
        c.pos = start
        raise c.error("entry name /private/... or /shared/...")
    return text


def getmetadata(c: Cursor, t: str) -> cmd.GetMetadata:
    """getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries
    getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")"
    getmetadata-option = maxsize-opt / scope-opt   ; others are BAD
    maxsize-opt = "MAXSIZE" SP number
    scope-opt = "DEPTH" SP ("0" / "1" / "infinity")
    entries = entry / "(" entry *(SP entry) ")"
    ; lenient, as the RFC's own examples are: the options may also follow the mailbox
    ; (§4.2.1-4.2.2: GETMETADATA "INBOX" (DEPTH 1) (...)), and the entries may come without
    ; parentheses (§4.4.1)"""
    c.sp()
    options: tuple[int | None, int | None] = (0, None)
    given = False
    if c.peek() == ord("("):
        options, given = _getmetadata_options(c), True
        c.sp()
    name = mailbox(c)
    c.sp()
    if not given and c.peek() == ord("(") and _OPTION_AHEAD.match(c.text, c.pos):
        options = _getmetadata_options(c)
        c.sp()
    entries: list[str] = []
    if c.try_char(b"("):
        while True:
            c.count_arg()
            entries.append(entry(c, prefix=True))
            if c.try_char(b")"):
                break
            c.sp()
    else:
        entries.append(entry(c, prefix=True))
        while c.try_char(b" "):
            c.count_arg()
            entries.append(entry(c, prefix=True))
    return cmd.GetMetadata(t, name, tuple(dict.fromkeys(entries)), *options)


_OPTION_AHEAD = re.compile(rb"\((?:DEPTH|MAXSIZE) ", re.IGNORECASE)


def _getmetadata_options(c: Cursor) -> tuple[int | None, int | None]:
    """getmetadata-options -> (depth, maxsize); each option at most once."""
    depth: int | None = 0
    maxsize: int | None = None
    seen: set[str] = set()
    c.char(b"(", "GETMETADATA options")
    while True:
        c.count_arg()
        start = c.pos
        if c.keyword(b"DEPTH") and "DEPTH" not in seen:
            seen.add("DEPTH")
            c.sp()
            value_at = c.pos
            word = atom(c).lower()
            if word not in _DEPTHS:
                c.pos = value_at
                raise c.error("DEPTH 0, 1 or infinity")
            depth = _DEPTHS[word]
        elif c.keyword(b"MAXSIZE") and "MAXSIZE" not in seen:
            seen.add("MAXSIZE")
            c.sp()
            maxsize = number(c)
        else:
            c.pos = start
            raise c.error("DEPTH or MAXSIZE, once")
        if c.try_char(b")"):
            return depth, maxsize
        c.sp()


def setmetadata(c: Cursor, t: str) -> cmd.SetMetadata:
    """setmetadata = "SETMETADATA" SP mailbox SP entry-values
    entry-values = "(" entry-value *(SP entry-value) ")"
    entry-value = entry SP value
    value = nstring / literal8
    ; a repeated entry keeps its last value"""
    c.sp()
    name = mailbox(c)
    c.sp()
    c.char(b"(", "entry-values")
    values: dict[str, bytes | SpooledLiteral | None] = {}
    while True:
        c.count_arg()
        key = entry(c)
        c.sp()
        value: bytes | SpooledLiteral | None
        if c.match(NIL):
            value = None
        elif c.peek() in (ord("~"), ord("{")):  # a big one spooled: the handler says MAXSIZE
            value = message_literal(c, binary=c.peek() == ord("~"))
        else:
            value = string(c)
        values.pop(key, None)
        values[key] = value
        if c.try_char(b")"):
            break
        c.sp()
    return cmd.SetMetadata(t, name, tuple(values.items()))
