"""The grammar of REPLACE and UID REPLACE (RFC 8508 §5).

Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from imapd.protocol import commands as cmd
from imapd.protocol.parser.mailbox import append_message
from imapd.protocol.parser.primitives import Cursor, mailbox, seq_number


def replace(c: Cursor, t: str, uid: bool) -> cmd.Replace:
    """replace = "REPLACE" SP seq-number SP mailbox append-message   ; RFC 8508 §5
    uid =/ "UID" SP replace
    append-message = [SP flag-list] [SP date-time] SP (literal / literal8 / utf8-data)
    ; one message: REPLACE has no MULTIAPPEND form (RFC 8508 §4.7)"""
    c.sp()
    if not (c.peek() == ord("*") or 0x31 <= c.peek() <= 0x39):
        raise c.error("seq-number")
    number = seq_number(c)
    c.sp()
    name = mailbox(c)
    c.sp()
    return cmd.Replace(t, uid, number, name, append_message(c))
