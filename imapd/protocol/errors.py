"""The IMAP error tree; only the dispatcher in session.py turns these into replies.

```
ImapError(text, code=None)   `status` is a class attribute
 +- BadCommand        BAD   parser, unknown command, wrong state; carries the tag when known
 +- CommandRefused    NO    [CANNOT] [NOPERM] [LIMIT] [TOOBIG] [BADEVENT ...]
 +- ConnectionFatal   BYE   then close: oversize non-sync literal, too many BADs, shutdown
```
Response codes are plain strings (RFC 5530), e.g. ``"TOOBIG"`` or ``"BADCHARSET (UTF-8)"``.
Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations


class ImapError(Exception):
    status = "NO"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class BadCommand(ImapError):
    status = "BAD"

    def __init__(self, text: str, code: str | None = None, tag: str | None = None) -> None:
        super().__init__(text, code)
        self.tag = tag


class CommandRefused(ImapError):
    status = "NO"


class ConnectionFatal(ImapError):
    status = "BYE"
