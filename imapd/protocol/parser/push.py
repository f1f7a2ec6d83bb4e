"""The grammar of XAPPLEPUSHSERVICE (no RFC: Cyrus imap/imapd.c, Dovecot's push plugins).

Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.errors import BadCommand
from imapd.protocol.parser.primitives import Cursor, astring, mailbox, utf8_text

_APS_PARAMS: Final = (
    "aps-version",
    "aps-account-id",
    "aps-device-token",
    "aps-subtopic",
    "mailboxes",
)
APS_DEFAULT_SUBTOPIC: Final = "com.apple.mobilemail"


def xapplepushservice(c: Cursor, t: str) -> cmd.XApplePushService:
    """xapplepushservice = "XAPPLEPUSHSERVICE" 1*(SP aps-param)
    aps-param = aps-key SP astring / "mailboxes" SP "(" [mailbox *(SP mailbox)] ")"
    aps-key   = astring  ; "aps-version" (digits), "aps-account-id", "aps-device-token",
                         ; "aps-subtopic", "mailboxes"; quoted or not, as Cyrus (getastring)
                         ; and Dovecot read them
    ; pairs in any order, each at most once, names case-insensitive. aps-version 1 needs the
    ; account and token (INBOX and com.apple.mobilemail implied, as in Cyrus); 2 and later
    ; need all five."""
    got: dict[str, str | tuple[str, ...]] = {}
    while True:
        c.sp()
        c.count_arg()
        start = c.pos
        key = astring(c).decode("ascii", "replace").lower()
        if key not in _APS_PARAMS or key in got:
            c.pos = start
            raise c.error(
                "aps-version, aps-account-id, aps-device-token, aps-subtopic or "
                "mailboxes, each once"
            )
        c.sp()
        if key == "mailboxes":
            got[key] = _aps_mailboxes(c)
        else:
            got[key] = utf8_text(c, astring(c), key)
        if c.at_end():
            break
    version = got.get("aps-version")
    if not isinstance(version, str) or not version.isdigit() or len(version) > 9:
        raise BadCommand("aps-version must be given as a number", tag=t)
    needed = _APS_PARAMS[1:3] if int(version) < 2 else _APS_PARAMS[1:]
    missing = [k for k in needed if k not in got]
    if missing:
        raise BadCommand(f"Missing {', '.join(missing)}", tag=t)
    mailboxes = got.get("mailboxes", ("INBOX",))
    subtopic = got.get("aps-subtopic", APS_DEFAULT_SUBTOPIC)
    account, token = got["aps-account-id"], got["aps-device-token"]
    assert isinstance(mailboxes, tuple) and isinstance(subtopic, str)
    assert isinstance(account, str) and isinstance(token, str)
    return cmd.XApplePushService(t, int(version), account, token, subtopic, mailboxes)


def _aps_mailboxes(c: Cursor) -> tuple[str, ...]:
    """ "(" [mailbox *(SP mailbox)] ")" """
    c.char(b"(", "mailbox list")
    out: list[str] = []
    if not c.try_char(b")"):
        while True:
            c.count_arg()
            out.append(mailbox(c))
            if c.try_char(b")"):
                break
            c.sp()
    return tuple(dict.fromkeys(out))
