"""The grammar of the commands naming a mailbox: SELECT/EXAMINE, CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS and APPEND.

Owns: RFC 3501 §6.3 with SELECT's CONDSTORE and QRESYNC parameters (RFC 7162), CREATE's USE
(RFC 6154), LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438),
MULTIAPPEND (RFC 3502) and APPEND's UTF8 data (RFC 6855).
Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.errors import BadCommand
from imapd.protocol.parser.catenate import catenate
from imapd.protocol.parser.primitives import (
    Cursor,
    astring,
    atom,
    atom_list,
    date_time,
    flag_list,
    list_mailbox,
    mailbox,
    mailbox_text,
    message_literal,
    mod_sequence_value,
    nz_number,
    sequence_set,
)
from imapd.protocol.values import SequenceSet


def select_params(c: Cursor, t: str, readonly: bool) -> cmd.Select:
    """select = "SELECT" SP mailbox [select-params]   ; same for "EXAMINE"
    select-params = SP "(" select-param *(SP select-param) ")"  ; RFC 4466 §2.1
    select-param =/ "CONDSTORE"  ; RFC 7162 §3.1.8
    select-param =/ "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
                    [SP seq-match-data] ")"  ; RFC 7162 §3.2.5
    seq-match-data = "(" known-sequence-set SP known-uid-set ")" """
    c.sp()
    name = mailbox(c)
    condstore = False
    qresync: cmd.QResyncParams | None = None
    if c.try_char(b" "):
        c.char(b"(", "select parameters")
        while True:
            if c.keyword(b"CONDSTORE") and not condstore:
                condstore = True
            elif c.keyword(b"QRESYNC") and qresync is None:
                qresync = _qresync(c)
            else:
                raise c.error("CONDSTORE or QRESYNC, once")
            if c.try_char(b")"):
                break
            c.sp()
    return cmd.Select(t, name, readonly, condstore, qresync)


def _qresync(c: Cursor) -> cmd.QResyncParams:
    c.sp()
    c.char(b"(", '"("')
    uidvalidity = nz_number(c)
    c.sp()
    modseq = mod_sequence_value(c)
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if c.try_char(b" ") and not c.try_char(b"("):
        known = sequence_set(c)
        if c.try_char(b" "):
            c.char(b"(", "seq-match-data")
            match = _seq_match(c)
    elif c.text[c.pos - 1 : c.pos] == b"(":
        match = _seq_match(c)
    c.char(b")", '")"')
    return cmd.QResyncParams(uidvalidity, modseq, known, match)


def _seq_match(c: Cursor) -> tuple[SequenceSet, SequenceSet]:
    seqs = sequence_set(c)
    c.sp()
    uids = sequence_set(c)
    c.char(b")", '")"')
    return seqs, uids


_USE_ATTRS: Final = {
    a.lower(): a
    for a in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}


def create(c: Cursor, t: str) -> cmd.Create:
    """create = "CREATE" SP mailbox [create-params]  ; RFC 4466 §2.2
    create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"  ; RFC 6154 §6
    use-attr = "\\All" / "\\Archive" / "\\Drafts" / "\\Flagged" / "\\Junk" / "\\Sent" /
               "\\Trash" / use-attr-ext  ; use-attr-ext = "\\" atom"""
    c.sp()
    name = mailbox(c, new=True)
    uses: list[str] = []
    if c.try_char(b" "):
        c.char(b"(", "create parameters")
        if not c.keyword(b"USE"):
            raise c.error("USE")
        c.sp()
        c.char(b"(", '"("')
        while not c.try_char(b")"):
            if uses:
                c.sp()
            c.count_arg()
            c.char(b"\\", "use-attr")
            attr = "\\" + atom(c)
            uses.append(_USE_ATTRS.get(attr.lower(), attr))
        c.char(b")", '")"')
    return cmd.Create(t, name, tuple(dict.fromkeys(uses)))


def one_mailbox(
    kind: Callable[[str, str], cmd.Delete | cmd.Subscribe | cmd.Unsubscribe],
) -> Callable[[Cursor, str], cmd.Command]:
    """delete / subscribe / unsubscribe = name SP mailbox"""

    def parse(c: Cursor, t: str) -> cmd.Command:
        c.sp()
        return kind(t, mailbox(c))

    return parse


def rename(c: Cursor, t: str) -> cmd.Rename:
    """rename = "RENAME" SP mailbox SP mailbox"""
    c.sp()
    old = mailbox(c)
    c.sp()
    return cmd.Rename(t, old, mailbox(c, new=True))


_STATUS_ATTS: Final = frozenset(
    {
        "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE",
        "DELETED", "APPENDLIMIT", "DELETED-STORAGE", "MAILBOXID",
    }
)  # fmt: skip


def status_atts(c: Cursor) -> tuple[str, ...]:
    """ "(" status-att *(SP status-att) ")"
    status-att = "MESSAGES" / "RECENT" / "UIDNEXT" / "UIDVALIDITY" / "UNSEEN"
               / "HIGHESTMODSEQ" (RFC 7162 §7) / "SIZE" (RFC 8438 §3) / "DELETED" (RFC 9051 §9)
               / "APPENDLIMIT" (RFC 7889 §3) / "DELETED-STORAGE" (RFC 9208 §4.1.4)
               / "MAILBOXID" (RFC 8474 §7)"""
    return atom_list(
        c, _STATUS_ATTS, "status attribute", empty=False, opening="status attribute list"
    )


def status(c: Cursor, t: str) -> cmd.Status:
    """status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")" """
    c.sp()
    name = mailbox(c)
    c.sp()
    return cmd.Status(t, name, status_atts(c))


_SELECT_OPTS: Final = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_RETURN_OPTS: Final = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS", "MYRIGHTS"})


def list_(c: Cursor, t: str) -> cmd.List:
    """list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
    list-select-opts = "(" [list-select-opt *(SP list-select-opt)] ")"   ; RFC 5258 §6
    list-select-opt = "SUBSCRIBED" / "REMOTE" / "RECURSIVEMATCH" / "SPECIAL-USE" (RFC 6154)
    mbox-or-pat = list-mailbox / patterns
    patterns = "(" list-mailbox *(SP list-mailbox) ")"
    list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
    return-option = "SUBSCRIBED" / "CHILDREN" / "SPECIAL-USE" / "STATUS" SP "(" status-att
                    *(SP status-att) ")"   ; RFC 5819
    return-option =/ "MYRIGHTS"   ; RFC 8440 §5
    ; RECURSIVEMATCH needs a base option (SUBSCRIBED or SPECIAL-USE), RFC 5258 §3"""
    c.sp()
    extended = False
    selection: tuple[str, ...] = ()
    if c.peek() == ord("("):
        extended = True
        selection = atom_list(c, _SELECT_OPTS, "list selection option")
        if "RECURSIVEMATCH" in selection and not {"SUBSCRIBED", "SPECIAL-USE"} & set(selection):
            raise BadCommand("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE", tag=c.tag)
        c.sp()
    reference = mailbox_text(c, astring(c), pattern=True)
    bad_reference, c.invalid_name = c.invalid_name, False
    c.sp()
    patterns: list[str] = []
    if c.try_char(b"("):
        extended = True
        while True:
            c.count_arg()
            patterns += _valid_pattern(c)
            if c.try_char(b")"):
                break
            c.sp()
    else:
        patterns += _valid_pattern(c)
    if bad_reference:
        patterns = []
    returns: tuple[str, ...] = ()
    status_items: tuple[str, ...] | None = None

    def status(opt: str) -> None:
        nonlocal status_items
        if opt == "STATUS":
            c.sp()
            status_items = status_atts(c)

    if c.try_char(b" "):
        extended = True
        if not c.keyword(b"RETURN"):
            raise c.error("RETURN")
        c.sp()
        returns = atom_list(c, _RETURN_OPTS, "list return option", then=status)
    return cmd.List(
        t,
        reference,
        tuple(patterns),
        selection=selection,
        return_opts=returns,
        status_items=status_items,
        extended=extended,
    )


def _valid_pattern(c: Cursor) -> list[str]:
    """A list-mailbox, or nothing when it is not valid modified UTF-7: such a pattern can
    match no mailbox name, so LIST/LSUB answer an empty OK for it, never BAD or NO."""
    pattern = list_mailbox(c)
    if c.invalid_name:
        c.invalid_name = False
        return []
    return [pattern]


def lsub(c: Cursor, t: str) -> cmd.List:
    """lsub = "LSUB" SP mailbox SP list-mailbox"""
    c.sp()
    reference = mailbox_text(c, astring(c), pattern=True)
    bad_reference, c.invalid_name = c.invalid_name, False
    c.sp()
    patterns = _valid_pattern(c)
    return cmd.List(t, reference, () if bad_reference else tuple(patterns), lsub=True)


def append(c: Cursor, t: str) -> cmd.Append:
    """append = "APPEND" SP mailbox 1*append-message   ; RFC 3502 §6.3.11 (MULTIAPPEND)
    append-message = [SP flag-list] [SP date-time] SP (literal / literal8 / utf8-data)
    utf8-data = "UTF8" SP "(" literal8 ")"   ; RFC 6855 §4, only after ENABLE UTF8=ACCEPT
    append-data =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")"   ; RFC 4469 §5
    ; literal8 is RFC 3516's; NUL octets are accepted in the message (lenient), and a
    ; plain literal inside UTF8 ( ) too"""
    c.sp()
    name = mailbox(c)
    messages: list[cmd.AppendMessage] = []
    while not messages or not c.at_end():
        c.count_arg()
        c.sp()
        messages.append(append_message(c))
    return cmd.Append(t, name, tuple(messages))


def append_message(c: Cursor) -> cmd.AppendMessage:
    """One `append` message after its SP: [flag-list SP] [date-time SP] (literal / literal8
    / utf8-data); REPLACE's too (RFC 8508 §5)."""
    flags: tuple[str, ...] = ()
    when: dt.datetime | None = None
    if c.peek() == ord("("):
        flags = flag_list(c)
        c.sp()
    if c.peek() == ord('"'):
        when = date_time(c)
        c.sp()
    if c.keyword(b"CATENATE"):  # RFC 4469 §5 (parser/catenate.py)
        return cmd.AppendMessage(flags, when, catenate(c))
    if c.keyword(b"UTF8"):
        if not c.utf8:
            raise BadCommand("APPEND UTF8 needs ENABLE UTF8=ACCEPT", tag=c.tag)
        c.sp()
        c.char(b"(", '"("')
        content = message_literal(c)
        c.char(b")", '")"')
    else:
        content = message_literal(c)
    return cmd.AppendMessage(flags, when, content)
