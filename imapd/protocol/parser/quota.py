"""The grammar of the QUOTA commands (RFC 9208 §7): GETQUOTA, GETQUOTAROOT, SETQUOTA.

Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.parser.primitives import DIGITS, Cursor, astring, atom, mailbox, utf8_text

MAX_NUMBER64: Final = 2**63 - 1  # RFC 9051 §9: number64 is a signed 63-bit positive number


def quota_root_name(c: Cursor) -> str:
    """quota-root-name = astring  ; not a mailbox name: UTF-8, no modified UTF-7"""
    return utf8_text(c, astring(c), "quota root name")


def getquota(c: Cursor, t: str) -> cmd.GetQuota:
    """getquota = "GETQUOTA" SP quota-root-name"""
    c.sp()
    return cmd.GetQuota(t, quota_root_name(c))


def getquotaroot(c: Cursor, t: str) -> cmd.GetQuotaRoot:
    """getquotaroot = "GETQUOTAROOT" SP mailbox"""
    c.sp()
    return cmd.GetQuotaRoot(t, mailbox(c))


def setquota(c: Cursor, t: str) -> cmd.SetQuota:
    """setquota = "SETQUOTA" SP quota-root-name SP setquota-list
    setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"
    setquota-resource = resource-name SP resource-limit
    resource-name = "STORAGE" / "MESSAGE" / "MAILBOX" / "ANNOTATION-STORAGE" / atom
    resource-limit = number64  ; RFC 9051: 0 <= n < 2^63
    ; resource names upper-cased (case-insensitive, §7); each at most once"""
    c.sp()
    root = quota_root_name(c)
    c.sp()
    c.char(b"(", "setquota-list")
    limits: list[tuple[str, int]] = []
    if not c.try_char(b")"):
        while True:
            c.count_arg()
            start = c.pos
            name = atom(c).upper()
            if any(name == n for n, _ in limits):
                c.pos = start
                raise c.error("each resource once")
            c.sp()
            m = c.expect(DIGITS, "resource limit")
            if len(m.group()) > 19 or int(m.group()) > MAX_NUMBER64:
                c.pos = m.start()
                raise c.error("resource limit below 2^63")
            limits.append((name, int(m.group())))
            if c.try_char(b")"):
                break
            c.sp()
    return cmd.SetQuota(t, root, tuple(limits))
