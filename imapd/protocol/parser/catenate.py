"""The grammar of CATENATE's append data (RFC 4469 §5), used by APPEND (with MULTIAPPEND)
and REPLACE (RFC 8508 §4.2).

Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.parser.primitives import Cursor, astring, message_literal

#: A URL longer than this is not one (imapd/protocol/imapurl.py's MAX_URL): BAD at once.
MAX_URL_OCTETS: Final = 8192


def catenate(c: Cursor) -> cmd.Catenation:
    """append-data =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")"   ; after "CATENATE"
    cat-part = text-literal / url
    text-literal = "TEXT" SP literal
    url = "URL" SP astring

    A TEXT literal follows RFC 3501's ``literal`` (CHAR8: no NUL); a literal8 ``~{n}`` is
    taken too, as in APPEND under BINARY (RFC 3516 §4.4), and may carry NUL."""
    c.sp()
    c.char(b"(", '"("')
    c.enter()
    parts: list[cmd.CatText | cmd.CatUrl] = []
    while True:
        c.count_arg()
        if c.keyword(b"TEXT"):
            c.sp()
            binary = c.text[c.pos : c.pos + 1] == b"~"
            parts.append(cmd.CatText(message_literal(c, binary=binary), binary))
        elif c.keyword(b"URL"):
            c.sp()
            raw = astring(c)
            if len(raw) > MAX_URL_OCTETS:
                raise c.error(f"a URL of at most {MAX_URL_OCTETS} octets")
            try:
                url = raw.decode("ascii")
            except UnicodeDecodeError:
                raise c.error("a URL in ASCII") from None
            parts.append(cmd.CatUrl(url))
        else:
            raise c.error('"TEXT" or "URL"')
        if c.try_char(b")"):
            break
        c.sp()
    c.leave()
    return cmd.Catenation(tuple(parts))
