"""Recursive-descent parser: one framed command -> one `Command` value.

Owns: the client grammar of RFC 3501 §9 and the extensions we speak (LITERAL+ RFC 7888,
SASL-IR RFC 4959, CONDSTORE/QRESYNC RFC 7162, ESEARCH RFC 4731, SEARCHRES RFC 5182,
LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154, MOVE RFC 6851, UIDPLUS
RFC 4315, ID RFC 2971, ENABLE RFC 5161, MULTIAPPEND RFC 3502, WITHIN RFC 5032, SAVEDATE
RFC 8514, BINARY RFC 3516, METADATA RFC 5464, COMPRESS RFC 4978, UTF8=ACCEPT RFC 6855,
STATUS=SIZE RFC 8438, APPENDLIMIT RFC 7889). One function per ABNF rule, the ABNF in its
docstring, over a `Cursor` (imap-codec's command.rs; mox's parse.go). It parses once, after
the framer has delivered every line and literal of the command. It raises `BadCommand` (with
the tag when known) for anything malformed, and `CommandRefused` only for SEARCH's unknown
CHARSET (RFC 3501 §6.4.4: tagged NO [BADCHARSET]) and for a mailbox name that parsed but
is not valid modified UTF-7 (NO [CANNOT]; a LIST/LSUB pattern is dropped instead). Error
texts say what was expected where and never echo the input. Must not import asyncio,
socket, ssl, store or notify.

Here: the entry points `parse_command` and `peek_command` and the tables from command name to
grammar. The rules live in modules named for what they parse (pymap's parsing/):

    primitives.py  `Cursor`; tag, numbers, sequence sets, strings, literals, mailbox names,
                   flags, dates
    auth.py        AUTHENTICATE, LOGIN, ID, ENABLE, COMPRESS
    mailbox.py     SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB,
                   STATUS, APPEND
    message.py     SEARCH, FETCH, STORE, COPY, MOVE, UID EXPUNGE
    acl.py         SETACL, DELETEACL, GETACL, LISTRIGHTS, MYRIGHTS (RFC 4314)
    metadata.py    GETMETADATA, SETMETADATA (RFC 5464)
    quota.py       GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208)
    notify.py      NOTIFY (RFC 5465)
    push.py        XAPPLEPUSHSERVICE
    sort.py        SORT, THREAD (RFC 5256, RFC 5957, ESORT RFC 5267)
    context.py     RETURN's CONTEXT, UPDATE, PARTIAL and CANCELUPDATE (RFC 5267 §4)
    replace.py     REPLACE, UID REPLACE (RFC 8508)
    catenate.py    APPEND's CATENATE data (RFC 4469)
    urlauth.py     GENURLAUTH, RESETKEY, URLFETCH (RFC 4467, RFC 5524)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.parser.acl import deleteacl, getacl, listrights, myrights, setacl
from imapd.protocol.parser.auth import authenticate, compress, decode_base64, enable, id_, login
from imapd.protocol.parser.context import cancelupdate
from imapd.protocol.parser.mailbox import (
    append,
    create,
    list_,
    lsub,
    one_mailbox,
    rename,
    select_params,
    status,
)
from imapd.protocol.parser.message import copy, fetch, search, store, uid_expunge
from imapd.protocol.parser.metadata import getmetadata, setmetadata
from imapd.protocol.parser.notify import notify
from imapd.protocol.parser.primitives import Cursor, sequence_set, tag
from imapd.protocol.parser.push import xapplepushservice
from imapd.protocol.parser.quota import getquota, getquotaroot, setquota
from imapd.protocol.parser.replace import replace
from imapd.protocol.parser.sort import sort, thread
from imapd.protocol.parser.urlauth import genurlauth, resetkey, urlfetch
from imapd.protocol.values import SpooledLiteral

__all__ = [
    "COMMANDS",
    "UID_COMMANDS",
    "Cursor",
    "UnknownCommand",
    "decode_base64",
    "literal8_misplaced",
    "parse_command",
    "peek_command",
    "sequence_set",
]

_Parser = Callable[[Cursor, str], cmd.Command]


def _bare(kind: Callable[[str], cmd.Command]) -> _Parser:
    return lambda c, t: kind(t)


def _sel(readonly: bool) -> _Parser:
    return lambda c, t: select_params(c, t, readonly)


COMMANDS: Final[dict[str, tuple[type[cmd.Command], _Parser]]] = {
    "CAPABILITY": (cmd.Capability, _bare(cmd.Capability)),
    "NOOP": (cmd.Noop, _bare(cmd.Noop)),
    "LOGOUT": (cmd.Logout, _bare(cmd.Logout)),
    "STARTTLS": (cmd.StartTLS, _bare(cmd.StartTLS)),
    "AUTHENTICATE": (cmd.Authenticate, authenticate),
    "LOGIN": (cmd.Login, login),
    "SELECT": (cmd.Select, _sel(False)),
    "EXAMINE": (cmd.Select, _sel(True)),
    "CREATE": (cmd.Create, create),
    "DELETE": (cmd.Delete, one_mailbox(cmd.Delete)),
    "RENAME": (cmd.Rename, rename),
    "SUBSCRIBE": (cmd.Subscribe, one_mailbox(cmd.Subscribe)),
    "UNSUBSCRIBE": (cmd.Unsubscribe, one_mailbox(cmd.Unsubscribe)),
    "LIST": (cmd.List, list_),
    "LSUB": (cmd.List, lsub),
    "STATUS": (cmd.Status, status),
    "APPEND": (cmd.Append, append),
    "CHECK": (cmd.Check, _bare(cmd.Check)),
    "CLOSE": (cmd.Close, _bare(cmd.Close)),
    "UNSELECT": (cmd.Unselect, _bare(cmd.Unselect)),
    "EXPUNGE": (cmd.Expunge, _bare(cmd.Expunge)),
    "SEARCH": (cmd.Search, lambda c, t: search(c, t, False)),
    "FETCH": (cmd.Fetch, lambda c, t: fetch(c, t, False)),
    "STORE": (cmd.Store, lambda c, t: store(c, t, False)),
    "COPY": (cmd.Copy, lambda c, t: copy(c, t, False, False)),
    "MOVE": (cmd.Copy, lambda c, t: copy(c, t, False, True)),
    "IDLE": (cmd.Idle, _bare(cmd.Idle)),
    "NAMESPACE": (cmd.Namespace, _bare(cmd.Namespace)),
    "SETACL": (cmd.SetAcl, setacl),
    "DELETEACL": (cmd.DeleteAcl, deleteacl),
    "GETACL": (cmd.GetAcl, getacl),
    "LISTRIGHTS": (cmd.ListRights, listrights),
    "MYRIGHTS": (cmd.MyRights, myrights),
    "ENABLE": (cmd.Enable, enable),
    "ID": (cmd.Id, id_),
    "GETMETADATA": (cmd.GetMetadata, getmetadata),
    "SETMETADATA": (cmd.SetMetadata, setmetadata),
    "COMPRESS": (cmd.Compress, compress),
    "XAPPLEPUSHSERVICE": (cmd.XApplePushService, xapplepushservice),
    "GETQUOTA": (cmd.GetQuota, getquota),
    "GETQUOTAROOT": (cmd.GetQuotaRoot, getquotaroot),
    "SETQUOTA": (cmd.SetQuota, setquota),
    "NOTIFY": (cmd.Notify, notify),
    "SORT": (cmd.Sort, lambda c, t: sort(c, t, False)),  # RFC 5256, sort.py
    "CANCELUPDATE": (cmd.CancelUpdate, cancelupdate),  # RFC 5267 §4.3.5, context.py
    "THREAD": (cmd.Thread, lambda c, t: thread(c, t, False)),
    "REPLACE": (cmd.Replace, lambda c, t: replace(c, t, False)),  # RFC 8508, replace.py
    "GENURLAUTH": (cmd.GenUrlAuth, genurlauth),  # RFC 4467, urlauth.py
    "RESETKEY": (cmd.ResetKey, resetkey),
    "URLFETCH": (cmd.UrlFetch, urlfetch),  # RFC 5524's parameters too
}

#: uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)
UID_COMMANDS: Final[dict[str, tuple[type[cmd.Command], _Parser]]] = {
    "SEARCH": (cmd.Search, lambda c, t: search(c, t, True)),
    "FETCH": (cmd.Fetch, lambda c, t: fetch(c, t, True)),
    "STORE": (cmd.Store, lambda c, t: store(c, t, True)),
    "COPY": (cmd.Copy, lambda c, t: copy(c, t, True, False)),
    "MOVE": (cmd.Copy, lambda c, t: copy(c, t, True, True)),
    "EXPUNGE": (cmd.Expunge, uid_expunge),
    "SORT": (cmd.Sort, lambda c, t: sort(c, t, True)),
    "THREAD": (cmd.Thread, lambda c, t: thread(c, t, True)),
    "REPLACE": (cmd.Replace, lambda c, t: replace(c, t, True)),
}

_COMMAND_NAME = re.compile(rb"[A-Za-z]+(?![^\x00-\x20\x7f-\xff(){%*\"\\\]])")


def _command_name(c: Cursor) -> tuple[type[cmd.Command], _Parser] | None:
    """command name, upper-cased; None when unknown (the caller decides BAD or BYE)."""
    m = c.match(_COMMAND_NAME)
    if m is None:
        return None
    name = m.group().decode("ascii").upper()
    if name != "UID":
        return COMMANDS.get(name)
    c.sp()
    m = c.match(_COMMAND_NAME)
    if m is None or (entry := UID_COMMANDS.get(m.group().decode("ascii").upper())) is None:
        raise c.error(
            "FETCH, STORE, COPY, MOVE, SEARCH, EXPUNGE, SORT, THREAD or REPLACE after UID"
        )
    return entry


class UnknownCommand(BadCommand):
    """The command name is not one we know (before login this ends the connection)."""


def peek_command(text: bytes) -> tuple[str | None, type[cmd.Command] | None]:
    """Tag and command type of a command's first line, without parsing its arguments; used
    to refuse a synchronizing literal early. Raises `BadCommand` / `UnknownCommand`."""
    c = Cursor(text)
    tag(c)
    c.sp()
    entry = _command_name(c)
    if entry is None:
        raise UnknownCommand("Unknown command", tag=c.tag)
    return c.tag, entry[0]


_LITERAL8_AT_END: Final = re.compile(rb"~\{[0-9]+\}\Z")
#: Where a literal8 may be announced: an APPEND's message, after the mailbox and any flag
#: list and date-time (``... SP ~{n}``) or inside ``UTF8 (`` (RFC 3516 §4.4, RFC 6855 §4),
#: REPLACE's the same (RFC 8508 §5 append-message);
#: a SETMETADATA value, inside its entry-values list (RFC 5464 §5: value = nstring / literal8).
_LITERAL8_PLACES: Final = re.compile(
    rb"\A\S+ (?:(?:APPEND |(?:UID )?REPLACE \S+ )(?:\S.*)?\S(?: | UTF8 \()"
    rb"|SETMETADATA \S.* \(.*\S )~\{[0-9]+\}\Z",
    re.IGNORECASE | re.DOTALL,
)

#: CATENATE's ``URL ~{n}``: a URL is an astring, never a literal8 (a TEXT part may be one).
_LITERAL8_AS_URL: Final = re.compile(
    rb"\bCATENATE \((?:.* )?URL ~\{[0-9]+\}\Z", re.IGNORECASE | re.DOTALL
)


def literal8_misplaced(text: bytes) -> bool:
    """True when ``text`` (a command up to a synchronizing literal) ends in a literal8
    ``~{n}`` where the grammar cannot take one: only an APPEND's message data (RFC 3516
    §4.4 append-data, RFC 6855 §4 utf8-data) and a SETMETADATA value (RFC 5464 §5) may be a
    literal8. Such a command is BAD at once, before the client is invited to upload it."""
    if _LITERAL8_AT_END.search(text) is None:
        return False
    if _LITERAL8_AS_URL.search(text) is not None:  # RFC 4469 §5: url = "URL" SP astring
        return True
    return _LITERAL8_PLACES.match(text) is None


def parse_command(
    text: bytes,
    literals: tuple[tuple[int, bytes | SpooledLiteral], ...] = (),
    *,
    utf8: bool = False,
    max_depth: int = 32,
    max_args: int = 10000,
    max_mailbox_name: int = 1024,
    max_mailbox_level: int = 255,
) -> cmd.Command:
    """command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF

    ``text`` is the framed command without line ends, ``literals`` its literals with their
    offsets (see `framing.Frame`). Raises `BadCommand` (``UnknownCommand`` for an unknown
    name) with ``.tag`` set when the tag parsed, or `CommandRefused` (BADCHARSET, or
    [CANNOT] for a mailbox name that is not valid modified UTF-7).
    """
    c = Cursor(
        text,
        literals,
        utf8=utf8,
        max_depth=max_depth,
        max_args=max_args,
        max_mailbox_name=max_mailbox_name,
        max_mailbox_level=max_mailbox_level,
    )
    t = tag(c)
    c.sp()
    entry = _command_name(c)
    if entry is None:
        raise UnknownCommand("Unknown command", tag=t)
    result = entry[1](c, t)
    c.finish()
    if c.invalid_name:  # parsed, but names no mailbox that can exist (see `mailbox_text`)
        raise CommandRefused("Mailbox name is not valid modified UTF-7", "CANNOT")
    return result
