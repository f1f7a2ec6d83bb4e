"""The grammar of the ACL commands (RFC 4314 §7): SETACL, DELETEACL, GETACL, LISTRIGHTS,
MYRIGHTS.

Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from imapd.protocol import commands as cmd
from imapd.protocol.parser.primitives import Cursor, astring, mailbox, utf8_text


def identifier(c: Cursor) -> str:
    """identifier = astring  ; UTF-8 (RFC 4314 §2), e.g. "anyone", "bob", "-bob" """
    return utf8_text(c, astring(c), "identifier")


def setacl(c: Cursor, t: str) -> cmd.SetAcl:
    """setacl = "SETACL" SP mailbox SP identifier SP mod-rights
    mod-rights = astring  ; +rights to add, -rights to remove, rights to replace"""
    c.sp()
    name = mailbox(c)
    c.sp()
    who = identifier(c)
    c.sp()
    return cmd.SetAcl(t, name, who, utf8_text(c, astring(c), "rights"))


def deleteacl(c: Cursor, t: str) -> cmd.DeleteAcl:
    """deleteacl = "DELETEACL" SP mailbox SP identifier"""
    c.sp()
    name = mailbox(c)
    c.sp()
    return cmd.DeleteAcl(t, name, identifier(c))


def getacl(c: Cursor, t: str) -> cmd.GetAcl:
    """getacl = "GETACL" SP mailbox"""
    c.sp()
    return cmd.GetAcl(t, mailbox(c))


def listrights(c: Cursor, t: str) -> cmd.ListRights:
    """listrights = "LISTRIGHTS" SP mailbox SP identifier"""
    c.sp()
    name = mailbox(c)
    c.sp()
    return cmd.ListRights(t, name, identifier(c))


def myrights(c: Cursor, t: str) -> cmd.MyRights:
    """myrights = "MYRIGHTS" SP mailbox"""
    c.sp()
    return cmd.MyRights(t, mailbox(c))
