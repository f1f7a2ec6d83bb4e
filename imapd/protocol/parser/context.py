"""The grammar of RFC 5267 §4 contexts (CONTEXT=SEARCH, CONTEXT=SORT): the return options
of SEARCH and SORT with CONTEXT, UPDATE (with RFC 5465 §8's fetch attributes) and PARTIAL,
and the CANCELUPDATE command. Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.errors import BadCommand
from imapd.protocol.parser.primitives import Cursor, atom, nz_number, quoted
from imapd.protocol.values import FetchAtt

#: RFC 5267 §5: the return options contexts add to SEARCH's (RFC 4731) and SORT's (§3.1).
CONTEXT_OPTIONS: Final = frozenset({"CONTEXT", "UPDATE", "PARTIAL"})


@dataclass(frozen=True, slots=True)
class ReturnOptions:
    """A parsed RETURN list: the option names in order (duplicates of MIN, MAX, ALL, COUNT,
    SAVE and CONTEXT dropped), PARTIAL's range as sent, UPDATE's fetch attributes (None:
    no UPDATE; (): UPDATE without them)."""

    names: tuple[str, ...]
    partial: tuple[int, int] | None = None
    update: tuple[FetchAtt, ...] | None = None


def return_options(
    c: Cursor, allowed: frozenset[str], what: str, fetch_att: Callable[[Cursor], FetchAtt]
) -> ReturnOptions:
    """search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"
    search-return-opt =/ modifier-context / modifier-partial / modifier-update  ; RFC 5267 §5
    modifier-context = "CONTEXT"
    modifier-partial = "PARTIAL" SP partial-range
    partial-range = nz-number ":" nz-number      ; 500:400 is 400:500; no "*", no sign
    modifier-update = "UPDATE" [ "(" fetch-att *(SP fetch-att) ")" ]   ; RFC 5465 §8
    ; the "(" may follow UPDATE after SP too, as RFC 5465 §7's example writes it.
    ; RFC 5267 §4.4: "either one PARTIAL, one ALL, or neither"; UPDATE once (as Dovecot).

    ``c`` is at the "(" ; ``allowed`` are the other option names (ESEARCH's, ESORT's);
    ``fetch_att`` parses one fetch-att (parser/message.py, which imports this module)."""
    c.char(b"(", '"("')
    names: list[str] = []
    partial: tuple[int, int] | None = None
    update: tuple[FetchAtt, ...] | None = None
    while not c.try_char(b")"):
        if names:
            c.sp()
        c.count_arg()
        start = c.pos
        name = atom(c).upper()
        if name not in allowed and name not in CONTEXT_OPTIONS:
            c.pos = start
            raise c.error(what)
        if name == "PARTIAL":
            if partial is not None:
                raise BadCommand("PARTIAL may be given once (RFC 5267 §4.4)", tag=c.tag)
            c.sp()
            partial = partial_range(c)
        elif name == "UPDATE":
            if update is not None:
                raise BadCommand("UPDATE may be given once", tag=c.tag)
            update = _update_atts(c, fetch_att)
        if name not in names:
            names.append(name)
    if partial is not None and "ALL" in names:
        raise BadCommand("PARTIAL and ALL exclude each other (RFC 5267 §4.4)", tag=c.tag)
    return ReturnOptions(tuple(names), partial, update)


def partial_range(c: Cursor) -> tuple[int, int]:
    """partial-range = nz-number ":" nz-number  ; RFC 5267 §5, kept in the order sent"""
    low = nz_number(c)
    c.char(b":", '":" in a partial range')
    return low, nz_number(c)


def _update_atts(c: Cursor, fetch_att: Callable[[Cursor], FetchAtt]) -> tuple[FetchAtt, ...]:
    """[ [SP] "(" fetch-att *(SP fetch-att) ")" ] after UPDATE (RFC 5465 §7, §8)."""
    if c.text[c.pos : c.pos + 1] == b"(":
        c.pos += 1
    elif c.text[c.pos : c.pos + 2] == b" (":
        c.pos += 2
    else:
        return ()
    atts = [fetch_att(c)]
    while not c.try_char(b")"):
        c.sp()
        atts.append(fetch_att(c))
    return tuple(dict.fromkeys(atts))


def cancelupdate(c: Cursor, t: str) -> cmd.CancelUpdate:
    """command-select =/ "CANCELUPDATE" 1*(SP quoted)   ; RFC 5267 §5"""
    tags: list[str] = []
    while True:
        c.sp()
        c.count_arg()
        tags.append(quoted(c).decode("utf-8", "replace"))
        if c.at_end():
            return cmd.CancelUpdate(t, tuple(dict.fromkeys(tags)))
