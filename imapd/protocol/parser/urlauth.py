"""The grammar of URLAUTH's commands (RFC 4467 §9) and URLAUTH=BINARY's URLFETCH
parameters (RFC 5524 §5). URLs are astrings here; imapd/protocol/imapurl.py reads them.

Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import re
from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.parser.primitives import ATOM, Cursor, astring, mailbox

#: mechanism = "INTERNAL" / 1*(ALPHA / DIGIT / "-" / ".")   ; case-insensitive
_MECHANISM: Final = re.compile(rb"[A-Za-z0-9\-.]+(?![^\x00-\x20\x7f-\xff(){%*\"\\\]])")
_MAX_URL: Final = 8192


def _url(c: Cursor) -> str:
    """url-full / url-rump = astring  ; an IMAP URL, ASCII"""
    raw = astring(c)
    if len(raw) > _MAX_URL or not raw.isascii():
        raise c.error(f"an IMAP URL of at most {_MAX_URL} ASCII characters")
    return raw.decode("ascii")


def _mechanism(c: Cursor) -> str:
    return c.expect(_MECHANISM, "mechanism").group().decode("ascii").upper()


def genurlauth(c: Cursor, t: str) -> cmd.GenUrlAuth:
    """genurlauth = "GENURLAUTH" 1*(SP url-rump SP mechanism)"""
    pairs: list[tuple[str, str]] = []
    while not pairs or not c.at_end():
        c.count_arg()
        c.sp()
        url = _url(c)
        c.sp()
        pairs.append((url, _mechanism(c)))
    return cmd.GenUrlAuth(t, tuple(pairs))


def resetkey(c: Cursor, t: str) -> cmd.ResetKey:
    """resetkey = "RESETKEY" [SP mailbox *(SP mechanism)]"""
    if c.at_end():
        return cmd.ResetKey(t, None, ())
    c.sp()
    name = mailbox(c)
    mechanisms: list[str] = []
    while not c.at_end():
        c.count_arg()
        c.sp()
        mechanisms.append(_mechanism(c))
    return cmd.ResetKey(t, name, tuple(mechanisms))


def urlfetch(c: Cursor, t: str) -> cmd.UrlFetch:
    """urlfetch = "URLFETCH" 1*(SP url-fetch-arg)                      ; RFC 5524 §5
    url-fetch-arg = url-fetch-simple / url-fetch-ext
    url-fetch-simple = url-full
    url-fetch-ext = "(" url-full *(SP url-fetch-param) ")"
    url-fetch-param = "BODY" / "BINARY" / "BODYPARTSTRUCTURE" / atom"""
    urls: list[tuple[str, tuple[str, ...] | None]] = []
    while not urls or not c.at_end():
        c.count_arg()
        c.sp()
        if c.try_char(b"("):
            url = _url(c)
            params: list[str] = []
            while not c.try_char(b")"):
                c.count_arg()
                c.sp()
                params.append(c.expect(ATOM, "url-fetch-param").group().decode("ascii").upper())
            urls.append((url, tuple(params)))
        else:
            urls.append((_url(c), None))
    return cmd.UrlFetch(t, tuple(urls))
