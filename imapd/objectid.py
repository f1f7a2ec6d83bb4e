"""RFC 8474 OBJECTID on the wire: the values of MAILBOXID (SELECT/EXAMINE untagged OK,
CREATE's tagged OK, STATUS), EMAILID and THREADID (FETCH). The ids themselves come from
store/objectid.py; THREADID is not computed and always NIL (RFC 8474 §5.2 allows it)."""

from __future__ import annotations

from imapd.protocol.responses import Atom, Value
from store import objectid
from store.api import MailboxRow, MessageRecord


def mailbox_id(mailbox: MailboxRow) -> str:
    return objectid.mailbox_id(mailbox.id, mailbox.uidvalidity)


def mailbox_code(mailbox: MailboxRow) -> str:
    """resp-text-code =/ "MAILBOXID" SP "(" objectid ")"   ; RFC 8474 §7"""
    return f"MAILBOXID ({mailbox_id(mailbox)})"


def mailbox_value(mailbox: MailboxRow) -> Value:
    """status-att-val =/ "MAILBOXID" SP "(" objectid ")" """
    return (Atom(mailbox_id(mailbox)),)


def objectid_value(record: MessageRecord, name: str) -> Value:
    """fetch-emailid-resp = "EMAILID" SP "(" objectid ")"
    fetch-threadid-resp = "THREADID" SP ( "(" objectid ")" / nil )"""
    if name == "THREADID" or record.content_id is None:
        if name == "EMAILID":  # every stored message has a contents row
            raise ValueError("EMAILID of a record read without its content id")
        return None
    return (Atom(objectid.email_id(record.content_id)),)
