"""The grammar of the commands on messages of the selected mailbox: SEARCH, FETCH, STORE,
COPY, MOVE and UID EXPUNGE.

Owns: RFC 3501 §6.4 with search keys (WITHIN RFC 5032, SAVEDATE RFC 8514, MODSEQ RFC 7162),
ESEARCH's RETURN options (RFC 4731, RFC 5182), fetch attributes with their sections and
partials (BINARY RFC 3516; `fetch_att` serves NOTIFY's MessageNew too), FETCH's CHANGEDSINCE
and VANISHED and STORE's UNCHANGEDSINCE (RFC 7162), MOVE (RFC 6851) and UID EXPUNGE
(RFC 4315). Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import re
from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.parser.context import ReturnOptions, return_options
from imapd.protocol.parser.primitives import (
    ATOM,
    Cursor,
    astring,
    atom,
    date,
    flag,
    flag_list,
    mailbox,
    mod_sequence_value,
    number,
    number64,
    nz_number,
    quoted,
    sequence_set,
    utf8_text,
)
from imapd.protocol.values import SYSTEM_FLAGS, FetchAtt, SearchKey, Section, canonical_flag

_NAME = re.compile(rb"[A-Za-z0-9.]+")  # fetch-att and section-text names


def uid_expunge(c: Cursor, t: str) -> cmd.Expunge:
    """uid-expunge = "UID" SP "EXPUNGE" SP sequence-set  ; RFC 4315 §4"""
    c.sp()
    return cmd.Expunge(t, sequence_set(c))


_RETURN_SEARCH: Final = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})
_CHARSETS: Final = frozenset({"UTF-8", "US-ASCII"})


def search(c: Cursor, t: str, uid: bool) -> cmd.Search:
    """search = "SEARCH" [search-return-opts] [SP "CHARSET" SP astring] 1*(SP search-key)
    search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"
    search-return-opt = "MIN" / "MAX" / "ALL" / "COUNT" / "SAVE"  ; RFC 4731, RFC 5182
    search-return-opt =/ CONTEXT / PARTIAL range / UPDATE [(atts)]  ; RFC 5267 (context.py)
    ; an empty RETURN () means ALL (RFC 4731 §3.1); an unknown CHARSET is a tagged
    ; NO [BADCHARSET] (RFC 3501 §6.4.4); after ENABLE UTF8=ACCEPT the client MUST NOT
    ; send CHARSET at all (RFC 6855 §3): BAD"""
    c.sp()
    returns: tuple[str, ...] | None = None
    opts = ReturnOptions(())
    if c.keyword(b"RETURN"):
        c.sp()
        opts = return_options(c, _RETURN_SEARCH, "search return option", fetch_att)
        returns = opts.names
        c.sp()
    charset: str | None = None
    if c.keyword(b"CHARSET"):
        if c.utf8:
            raise BadCommand("No CHARSET after ENABLE UTF8=ACCEPT", tag=c.tag)
        c.sp()
        charset = astring(c).decode("ascii", "replace").upper()
        if charset not in _CHARSETS:
            raise CommandRefused("Unsupported charset", code="BADCHARSET (UTF-8 US-ASCII)")
        c.sp()
    keys = [search_key(c)]
    while c.try_char(b" "):
        keys.append(search_key(c))
    key = SearchKey("AND", children=tuple(keys))
    return cmd.Search(t, uid, key, charset, returns, opts.partial, opts.update)


_SEARCH_FLAGS: Final = frozenset(
    {
        "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
        "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN", "SAVEDATESUPPORTED",
    }
)  # fmt: skip
_SEARCH_STRINGS: Final = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_SEARCH_DATES: Final = frozenset(
    {
        "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE",
        "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE",
    }
)  # fmt: skip


def search_key(c: Cursor) -> SearchKey:
    """search-key = "ALL" / "ANSWERED" / "BCC" SP astring / "BEFORE" SP date /
        "BODY" SP astring / "CC" SP astring / "DELETED" / "FLAGGED" / "FROM" SP astring /
        "KEYWORD" SP flag-keyword / "NEW" / "OLD" / "ON" SP date / "RECENT" / "SEEN" /
        "SINCE" SP date / "SUBJECT" SP astring / "TEXT" SP astring / "TO" SP astring /
        "UNANSWERED" / "UNDELETED" / "UNFLAGGED" / "UNKEYWORD" SP flag-keyword / "UNSEEN" /
        "DRAFT" / "HEADER" SP header-fld-name SP astring / "LARGER" SP number /
        "NOT" SP search-key / "OR" SP search-key SP search-key / "SENTBEFORE" SP date /
        "SENTON" SP date / "SENTSINCE" SP date / "SMALLER" SP number / "UID" SP sequence-set /
        "UNDRAFT" / sequence-set / "(" search-key *(SP search-key) ")"
    search-key =/ search-modsequence            ; RFC 7162 §7
    search-key =/ "OLDER" SP nz-number / "YOUNGER" SP nz-number   ; RFC 5032 §4
    search-key =/ "SAVEDBEFORE" SP date / "SAVEDON" SP date / "SAVEDSINCE" SP date /
                  "SAVEDATESUPPORTED"          ; RFC 8514 §4
    search-key =/ "EMAILID" SP objectid / "THREADID" SP objectid   ; RFC 8474 §7"""
    c.enter()
    c.count_arg()
    try:
        ch = c.peek()
        if ch == ord("("):
            c.pos += 1
            keys = [search_key(c)]
            while not c.try_char(b")"):
                c.sp()
                keys.append(search_key(c))
            return SearchKey("AND", children=tuple(keys))
        if ch in (ord("*"), ord("$")) or 0x30 <= ch <= 0x39:
            return SearchKey("SEQSET", sequence_set(c))
        start = c.pos
        name = c.expect(ATOM, "search key").group().decode("ascii").upper()
        if name in _SEARCH_FLAGS:
            return SearchKey(name)
        if name in _SEARCH_STRINGS:
            c.sp()
            return SearchKey(name, utf8_text(c, astring(c), "search string"))
        if name in _SEARCH_DATES:
            c.sp()
            return SearchKey(name, date(c))
        if name in ("KEYWORD", "UNKEYWORD"):
            c.sp()
            return SearchKey(name, atom(c))
        if name in ("LARGER", "SMALLER"):  # RFC 9051 §9: number64 (Appendix E item 1)
            c.sp()
            return SearchKey(name, number64(c))
        if name in ("OLDER", "YOUNGER"):
            c.sp()
            return SearchKey(name, nz_number(c))
        if name == "UID":
            c.sp()
            return SearchKey(name, sequence_set(c))
        if name == "HEADER":
            c.sp()
            field = utf8_text(c, astring(c), "header name")
            c.sp()
            return SearchKey(name, utf8_text(c, astring(c), "search string"), header=field)
        if name == "NOT":
            c.sp()
            return SearchKey(name, children=(search_key(c),))
        if name == "OR":
            c.sp()
            a = search_key(c)
            c.sp()
            return SearchKey(name, children=(a, search_key(c)))
        if name == "MODSEQ":
            return search_modsequence(c)
        if name in ("EMAILID", "THREADID"):
            c.sp()
            return SearchKey(name, objectid(c))
        c.pos = start
        raise c.error("search key")
    finally:
        c.leave()


# objectid = 1*255(ALPHA / DIGIT / "_" / "-"), and not the start of a longer atom.
_OBJECTID: Final = re.compile(rb'[A-Za-z0-9_-]{1,255}(?![^\x00-\x20\x7f-\xff(){%*"\\\]])')


def objectid(c: Cursor) -> str:
    """objectid = 1*255(ALPHA / DIGIT / "_" / "-")      ; RFC 8474 §7"""
    return c.expect(_OBJECTID, "object id (1 to 255 of A-Z a-z 0-9 _ -)").group().decode()


_ENTRY_TYPES: Final = frozenset({"PRIV", "SHARED", "ALL"})


def search_modsequence(c: Cursor) -> SearchKey:
    """search-modsequence = "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer
    search-modseq-ext = SP entry-name SP entry-type-req
    entry-name = DQUOTE "/flags/" attr-flag DQUOTE
    entry-type-req = "priv" / "shared" / "all"
    ; the entry name goes to SearchKey.header (e.g. "/flags/\\Seen"); the entry type is
    ; checked and dropped: one flag store serves both (RFC 7162 §3.1.5 lets servers merge)"""
    c.sp()
    entry: str | None = None
    if c.peek() == ord('"'):
        start = c.pos
        raw = quoted(c).decode("ascii", "replace")
        if not raw.lower().startswith("/flags/") or len(raw) <= 7:
            c.pos = start
            raise c.error("entry name /flags/...")
        entry = "/flags/" + canonical_flag(raw[7:])
        c.sp()
        start = c.pos
        if atom(c).upper() not in _ENTRY_TYPES:
            c.pos = start
            raise c.error("entry type (priv, shared or all)")
        c.sp()
    return SearchKey("MODSEQ", mod_sequence_value(c, zero=True), header=entry)


_SIMPLE_ATTS: Final = frozenset(
    {
        "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
        "RFC822.TEXT", "BODYSTRUCTURE", "UID", "MODSEQ", "SAVEDATE", "EMAILID", "THREADID",
    }
)  # fmt: skip
_MACROS: Final = {
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}


def fetch(c: Cursor, t: str, uid: bool) -> cmd.Fetch:
    """fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
               "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]
    fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"   ; RFC 4466 §2.4
    fetch-modifier = "CHANGEDSINCE" SP mod-sequence-value / "VANISHED"  ; RFC 7162 §3.1.4,
    ; §3.2.6: VANISHED needs UID FETCH and CHANGEDSINCE"""
    c.sp()
    seqs = sequence_set(c)
    c.sp()
    # The attributes and modifiers as parsed before from the same octets (no literal in
    # them): clients send the same few lists again and again.
    tail = c.text[c.pos :] if len(c.text) - c.pos <= _TAIL_MAX else b"{"
    if b"{" not in tail and (known := _FETCH_TAILS.get((tail, uid))) is not None:
        for _ in range(known[3]):
            c.count_arg()
        c.pos = len(c.text)
        return cmd.Fetch(t, uid, seqs, known[0], known[1], known[2])
    args = c.args
    atts: list[FetchAtt] = []
    if c.try_char(b"("):
        atts.append(fetch_att(c))
        while not c.try_char(b")"):
            c.sp()
            atts.append(fetch_att(c))
    else:
        start = c.pos
        word = c.expect(_NAME, "fetch attribute").group().decode("ascii").upper()
        if word in _MACROS:
            atts.extend(FetchAtt(n) for n in _MACROS[word])
        else:
            c.pos = start
            atts.append(fetch_att(c))
    changedsince: int | None = None
    vanished = False
    if c.try_char(b" "):
        c.char(b"(", "fetch modifiers")
        while True:
            if c.keyword(b"CHANGEDSINCE") and changedsince is None:
                c.sp()
                changedsince = mod_sequence_value(c)
            elif c.keyword(b"VANISHED") and not vanished:
                vanished = True
            else:
                raise c.error("CHANGEDSINCE or VANISHED, once")
            if c.try_char(b")"):
                break
            c.sp()
        if vanished and (not uid or changedsince is None):
            raise BadCommand("VANISHED needs UID FETCH and CHANGEDSINCE", tag=c.tag)
    if FetchAtt("PREVIEW") in atts:  # RFC 8970: PREVIEW with and without LAZY is PREVIEW
        atts = [a for a in atts if a != FetchAtt("PREVIEW", lazy=True)]
    unique = tuple(dict.fromkeys(atts))
    if b"{" not in tail and c.at_end():
        if len(_FETCH_TAILS) >= _TAILS_KEPT:
            _FETCH_TAILS.clear()
        _FETCH_TAILS[tail, uid] = (unique, changedsince, vanished, c.args - args)
    return cmd.Fetch(t, uid, seqs, unique, changedsince, vanished)


#: FETCH's attribute lists (and modifiers) parsed, by their octets and UID or not: the
#: parsed values (frozen) and how many arguments they counted. At most `_TAILS_KEPT` of
#: up to `_TAIL_MAX` octets (a few MiB per process at worst); emptied when full. A real
#: client sends a handful of lists; a load generator picking 1-4 of 8 attributes in random
#: order (imaptest's FETCH mix) sends 2,080 distinct ones, which 256 kept only churned.
_FETCH_TAILS: dict[tuple[bytes, bool], tuple[tuple[FetchAtt, ...], int | None, bool, int]] = {}
_TAILS_KEPT = 4096
_TAIL_MAX = 512


def fetch_att(c: Cursor) -> FetchAtt:
    """fetch-att = "ENVELOPE" / "FLAGS" / "INTERNALDATE" /
        "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] / "BODY" ["STRUCTURE"] / "UID" /
        "BODY" section ["<" number "." nz-number ">"] /
        "BODY.PEEK" section ["<" number "." nz-number ">"]
    fetch-att =/ "MODSEQ"                          ; RFC 7162 §7
    fetch-att =/ "SAVEDATE"                        ; RFC 8514 §4
    fetch-att =/ "EMAILID" / "THREADID"            ; RFC 8474 §7
    fetch-att =/ "BINARY" [".PEEK"] section-binary [partial] /
                 "BINARY.SIZE" section-binary     ; RFC 3516 §4.1
    section-binary = "[" [section-part] "]"
    fetch-att =/ "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]  ; RFC 8970 §6
    preview-mod = "LAZY" """
    c.count_arg()
    start = c.pos
    name = c.expect(_NAME, "fetch attribute").group().decode("ascii").upper()
    if name in _SIMPLE_ATTS:
        return FetchAtt(name)
    if name == "PREVIEW":
        return preview_att(c)
    if name in ("BODY", "BODY.PEEK"):
        if c.peek() != ord("["):
            if name == "BODY":
                return FetchAtt("BODY")
            raise c.error('"[" after BODY.PEEK')
        sec = section(c)
        return FetchAtt("BODY", sec, partial(c), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        c.char(b"[", '"["')
        part: list[int] = []
        while c.peek() != ord("]"):
            if part:
                c.char(b".", '"." or "]"')
            part.append(nz_number(c))
        c.pos += 1
        sec = Section(tuple(part))
        if name == "BINARY.SIZE":
            return FetchAtt(name, sec)
        return FetchAtt("BINARY", sec, partial(c), peek=name == "BINARY.PEEK")
    c.pos = start
    raise c.error("fetch attribute")


def preview_att(c: Cursor) -> FetchAtt:
    """[SP "(" preview-mod *(SP preview-mod) ")"] after PREVIEW (RFC 8970 §6): LAZY, the one
    modifier, any number of times. A " (" whose first word is not LAZY is left to the caller:
    ``FETCH 1 PREVIEW (CHANGEDSINCE 5)`` has fetch modifiers there (RFC 4466 §2.4)."""
    if c.text[c.pos : c.pos + 2] != b" (":
        return FetchAtt("PREVIEW")
    start = c.pos
    c.pos += 2
    if not c.keyword(b"LAZY"):
        c.pos = start
        return FetchAtt("PREVIEW")
    while not c.try_char(b")"):
        c.sp()
        c.count_arg()
        if not c.keyword(b"LAZY"):
            raise c.error("preview modifier LAZY")
    return FetchAtt("PREVIEW", lazy=True)


def partial(c: Cursor) -> tuple[int, int] | None:
    """["<" number "." nz-number ">"]"""
    if not c.try_char(b"<"):
        return None
    origin = number(c)
    c.char(b".", '"."')
    count = nz_number(c)
    c.char(b">", '">"')
    return origin, count


def section(c: Cursor) -> Section:
    """section = "[" [section-spec] "]"
    section-spec = section-msgtext / (section-part ["." section-text])
    section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
    section-part = nz-number *("." nz-number)
    section-text = section-msgtext / "MIME"
    header-list = "(" header-fld-name *(SP header-fld-name) ")" """
    c.char(b"[", '"["')
    part: list[int] = []
    text: str | None = None
    fields: list[str] = []
    if 0x30 <= c.peek() <= 0x39:
        part.append(nz_number(c))
        while c.try_char(b"."):
            if 0x30 <= c.peek() <= 0x39:
                part.append(nz_number(c))
            else:
                text = _section_text(c, mime=True)
                break
    elif c.peek() != ord("]"):
        text = _section_text(c, mime=False)
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        c.sp()
        c.char(b"(", "header list")
        while True:
            c.count_arg()
            raw = astring(c)
            if not raw.isascii():
                raise c.error("ASCII header name")
            fields.append(raw.decode("ascii").upper())
            if c.try_char(b")"):
                break
            c.sp()
    c.char(b"]", '"]"')
    return Section(tuple(part), text, tuple(fields))


def _section_text(c: Cursor, *, mime: bool) -> str:
    start = c.pos
    text = c.expect(_NAME, "section text").group().decode("ascii").upper()
    allowed = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"}
    if text not in allowed and not (mime and text == "MIME"):
        c.pos = start
        raise c.error("HEADER, HEADER.FIELDS[.NOT], TEXT or MIME")
    return text


def store(c: Cursor, t: str, uid: bool) -> cmd.Store:
    """store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags
    store-modifiers = SP "(" "UNCHANGEDSINCE" SP mod-sequence-valzer ")"  ; RFC 7162 §3.1.3
    store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
    ; a flag-extension ("\\" atom) other than the five system flags is BAD, naming it"""
    c.sp()
    seqs = sequence_set(c)
    c.sp()
    unchangedsince: int | None = None
    if c.try_char(b"("):
        if not c.keyword(b"UNCHANGEDSINCE"):
            raise c.error("UNCHANGEDSINCE")
        c.sp()
        unchangedsince = mod_sequence_value(c, zero=True)
        c.char(b")", '")"')
        c.sp()
    mode = ""
    if c.peek() in (ord("+"), ord("-")):
        mode = chr(c.peek())
        c.pos += 1
    if c.keyword(b"FLAGS.SILENT"):
        silent = True
    elif c.keyword(b"FLAGS"):
        silent = False
    else:
        raise c.error("[+|-]FLAGS[.SILENT]")
    c.sp()
    if c.peek() == ord("("):
        flags = flag_list(c)
    else:
        items = [flag(c)]
        while c.try_char(b" "):
            items.append(flag(c))
        flags = tuple(dict.fromkeys(items))
    unknown = [f for f in flags if f.startswith("\\") and f not in SYSTEM_FLAGS]
    if unknown:  # a flag-extension we do not know is not silently dropped (as Dovecot)
        raise BadCommand(f"Unknown system flag {unknown[0]}", tag=t)
    return cmd.Store(t, uid, seqs, mode, silent, flags, unchangedsince)


def copy(c: Cursor, t: str, uid: bool, move: bool) -> cmd.Copy:
    """copy = "COPY" SP sequence-set SP mailbox
    move = "MOVE" SP sequence-set SP mailbox  ; RFC 6851 §6"""
    c.sp()
    seqs = sequence_set(c)
    c.sp()
    return cmd.Copy(t, uid, seqs, mailbox(c), move)
