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
CHARSET (RFC 3501 §6.4.4: tagged NO [BADCHARSET]). Error texts say what was expected where and never
echo the input. Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import binascii
import datetime as dt
import re
from collections.abc import Callable
from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol import utf7
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.values import FetchAtt, SearchKey, Secret, Section, SequenceSet, canonical_flag

MAX_NUMBER: Final = 2**32 - 1  # RFC 3501 §9: number is an unsigned 32-bit integer
MAX_MODSEQ: Final = 2**63 - 1  # RFC 7162 §7: mod-sequence-value is a positive 63-bit integer

# Character classes from RFC 3501 §9 (cf. `atomChar` in mox's parse.go).
# atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# ASTRING-CHAR = ATOM-CHAR / resp-specials
_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
# list-char = ATOM-CHAR / list-wildcards / resp-specials
_LIST_CHARS = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
# tag = 1*<any ASTRING-CHAR except "+">
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
# quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR = <TEXT-CHAR except quoted-specials> /
#          "\" quoted-specials; TEXT-CHAR = <CHAR except CR, LF>; CHAR = %x01-7F
_QUOTED = re.compile(rb'"((?:[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]|\\["\\])*)"')
# RFC 6855 §3: with UTF8=ACCEPT enabled, quoted strings may carry UTF-8 (checked on decode).
_QUOTED_UTF8 = re.compile(rb'"((?:[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\xff]|\\["\\])*)"')
_UNESCAPE = re.compile(rb"\\([\\\"])")
_LITERAL = re.compile(rb"(~?)\{([0-9]+)(\+?)\}")
_DIGITS = re.compile(rb"[0-9]+")
_NAME = re.compile(rb"[A-Za-z0-9.]+")  # fetch-att and section-text names
_BASE64 = re.compile(rb"[A-Za-z0-9+/=]+")
_NIL = re.compile(rb"NIL(?![^\x00-\x20\x7f-\xff(){%*\"\\\]])", re.IGNORECASE)

_MONTHS: Final = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}


class Cursor:
    """A position in one framed command, with its literals and its limits."""

    __slots__ = (
        "_literals", "args", "depth", "max_args", "max_depth", "pos", "tag", "text", "utf8",
    )  # fmt: skip

    def __init__(
        self,
        text: bytes,
        literals: tuple[tuple[int, bytes], ...] = (),
        *,
        utf8: bool = False,
        max_depth: int = 32,
        max_args: int = 10000,
    ) -> None:
        self.text = text
        self.pos = 0
        self._literals = list(reversed(literals))
        self.utf8 = utf8
        self.max_depth = max_depth
        self.max_args = max_args
        self.depth = 0
        self.args = 0
        self.tag: str | None = None

    def error(self, expected: str) -> BadCommand:
        return BadCommand(f"Expected {expected} at octet {self.pos}", tag=self.tag)

    def peek(self) -> int:
        return self.text[self.pos] if self.pos < len(self.text) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def match(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        m = pattern.match(self.text, self.pos)
        if m is not None:
            self.pos = m.end()
        return m

    def expect(self, pattern: re.Pattern[bytes], what: str) -> re.Match[bytes]:
        m = self.match(pattern)
        if m is None:
            raise self.error(what)
        return m

    def char(self, ch: bytes, what: str | None = None) -> None:
        if self.text[self.pos : self.pos + 1] != ch:
            raise self.error(what or repr(ch.decode("ascii")))
        self.pos += 1

    def try_char(self, ch: bytes) -> bool:
        if self.text[self.pos : self.pos + 1] == ch:
            self.pos += 1
            return True
        return False

    def sp(self) -> None:
        self.char(b" ", "SP")

    def keyword(self, word: bytes) -> bool:
        """Consume ``word`` (case-insensitive) if it is next and ends at a delimiter."""
        end = self.pos + len(word)
        if self.text[self.pos : end].upper() != word:
            return False
        nxt = self.text[end : end + 1]
        if nxt and _ATOM.match(nxt):
            return False
        self.pos = end
        return True

    def count_arg(self) -> None:
        self.args += 1
        if self.args > self.max_args:
            raise BadCommand("Too many arguments", tag=self.tag)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise BadCommand("Nesting too deep", tag=self.tag)

    def leave(self) -> None:
        self.depth -= 1

    def take_literal(self, end_of_marker: int, size: int) -> bytes:
        """The literal announced by the marker ending at ``end_of_marker``."""
        if not self._literals or self._literals[-1][0] != end_of_marker:
            raise self.error("literal at end of line")
        _, data = self._literals.pop()
        if len(data) != size:  # the framer read exactly `size` octets; defensive
            raise self.error("literal of announced size")
        return data

    def finish(self) -> None:
        if not self.at_end():
            raise self.error("end of command")
        if self._literals:
            raise self.error("no further literal")


# -- numbers and sets --------------------------------------------------------------------------


def number(c: Cursor) -> int:
    """number = 1*DIGIT  ; unsigned 32-bit integer (0 <= n < 4,294,967,296)"""
    m = c.expect(_DIGITS, "number")
    if len(m.group()) > 10 or int(m.group()) > MAX_NUMBER:
        c.pos = m.start()
        raise c.error("number below 2^32")
    return int(m.group())


def nz_number(c: Cursor) -> int:
    """nz-number = digit-nz *DIGIT  ; non-zero unsigned 32-bit integer"""
    if c.peek() == ord("0"):
        raise c.error("non-zero number")
    return number(c)


def mod_sequence_value(c: Cursor, *, zero: bool = False) -> int:
    """mod-sequence-value = 1*DIGIT ; positive unsigned 63-bit integer (RFC 7162 §7)
    mod-sequence-valzer = "0" / mod-sequence-value"""
    m = c.expect(_DIGITS, "mod-sequence")
    text = m.group()
    if len(text) > 19 or int(text) > MAX_MODSEQ or (int(text) == 0 and not zero):
        c.pos = m.start()
        raise c.error("mod-sequence in range")
    return int(text)


def seq_number(c: Cursor) -> int | None:
    """seq-number = nz-number / "*" """
    if c.try_char(b"*"):
        return None
    return nz_number(c)


def sequence_set(c: Cursor) -> SequenceSet:
    """sequence-set = (seq-number / seq-range) ["," sequence-set]
    seq-range = seq-number ":" seq-number
    sequence-set =/ seq-last-command ; RFC 5182: "$" """
    if c.try_char(b"$"):
        return SequenceSet(saved=True)
    ranges: list[tuple[int | None, int | None]] = []
    while True:
        c.count_arg()
        if not (c.peek() == ord("*") or 0x30 <= c.peek() <= 0x39):
            raise c.error("sequence set")
        a = seq_number(c)
        b = seq_number(c) if c.try_char(b":") else a
        ranges.append((a, b))
        if not c.try_char(b","):
            return SequenceSet(tuple(ranges))


# -- strings -----------------------------------------------------------------------------------


def quoted(c: Cursor) -> bytes:
    """quoted = DQUOTE *QUOTED-CHAR DQUOTE"""
    m = c.expect(_QUOTED_UTF8 if c.utf8 else _QUOTED, "quoted string")
    return _UNESCAPE.sub(rb"\1", m.group(1))


def literal(c: Cursor, *, binary: bool = False) -> bytes:
    """literal = "{" number ["+"] "}" CRLF *CHAR8  ; RFC 7888 adds the "+"
    literal8 = "~{" number ["+"] "}" CRLF *OCTET ; RFC 3516, only where ``binary``"""
    start = c.pos
    m = c.expect(_LITERAL, "literal")
    if m.group(1) and not binary:
        c.pos = start
        raise c.error("literal (not literal8)")
    size = int(m.group(2)) if len(m.group(2)) <= 20 else -1
    data = c.take_literal(m.end(), size)
    if not binary and b"\x00" in data:  # CHAR8 = %x01-ff
        raise c.error("literal without NUL")
    return data


def string(c: Cursor) -> bytes:
    """string = quoted / literal"""
    if c.peek() == ord('"'):
        return quoted(c)
    if c.peek() == ord("{"):
        return literal(c)
    raise c.error("string")


def astring(c: Cursor) -> bytes:
    """astring = 1*ASTRING-CHAR / string"""
    if c.peek() in (ord('"'), ord("{")):
        return string(c)
    return c.expect(_ASTRING_ATOM, "astring").group()


def nstring(c: Cursor) -> bytes | None:
    """nstring = string / nil"""
    if c.match(_NIL):
        return None
    return string(c)


def atom(c: Cursor) -> str:
    """atom = 1*ATOM-CHAR"""
    return c.expect(_ATOM, "atom").group().decode("ascii")


def _utf8(c: Cursor, data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise c.error(f"UTF-8 {what}") from None


def _mailbox_text(c: Cursor, data: bytes) -> str:
    """Raw name octets -> Unicode: modified UTF-7 (RFC 3501 §5.1.3) or UTF-8 (RFC 6855 §3)."""
    if c.utf8:
        return _utf8(c, data, "mailbox name")
    try:
        return utf7.decode(data.decode("ascii"))
    except ValueError:  # UnicodeDecodeError is a ValueError
        raise c.error("mailbox name in modified UTF-7") from None


def mailbox(c: Cursor) -> str:
    """mailbox = "INBOX" / astring
    ; INBOX is case-insensitive (RFC 3501 §5.1); other names are case-sensitive"""
    name = _mailbox_text(c, astring(c))
    return "INBOX" if name.upper() == "INBOX" else name


def list_mailbox(c: Cursor) -> str:
    """list-mailbox = 1*list-char / string"""
    if c.peek() in (ord('"'), ord("{")):
        return _mailbox_text(c, string(c))
    return _mailbox_text(c, c.expect(_LIST_CHARS, "list-mailbox").group())


# -- flags and dates ---------------------------------------------------------------------------


def flag(c: Cursor, *, store: bool = True) -> str:
    """flag = "\\Answered" / "\\Flagged" / "\\Deleted" / "\\Seen" / "\\Draft" /
           flag-keyword / flag-extension
    flag-keyword = atom
    flag-extension = "\\" atom
    ; \\Recent cannot be set by a client (RFC 3501 §2.3.2); \\* only appears in PERMANENTFLAGS"""
    c.count_arg()
    if c.try_char(b"\\"):
        if c.peek() == ord("*"):
            raise c.error("flag (\\* is not a flag)")
        value = canonical_flag("\\" + atom(c))
        if store and value == "\\Recent":
            raise BadCommand("\\Recent cannot be set", tag=c.tag)
        return value
    return atom(c)


def flag_list(c: Cursor) -> tuple[str, ...]:
    """flag-list = "(" [flag *(SP flag)] ")" """
    c.char(b"(", "flag list")
    flags: list[str] = []
    if not c.try_char(b")"):
        flags.append(flag(c))
        while not c.try_char(b")"):
            c.sp()
            flags.append(flag(c))
    return tuple(dict.fromkeys(flags))


def _month(c: Cursor, text: bytes) -> int:
    month = _MONTHS.get(text.upper().decode("ascii"))
    if month is None:
        raise c.error("month name")
    return month


_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")


def date(c: Cursor) -> dt.date:
    """date = date-text / DQUOTE date-text DQUOTE
    date-text = date-day "-" date-month "-" date-year"""
    q = c.try_char(b'"')
    start = c.pos
    m = c.expect(_DATE, "date (dd-Mon-yyyy)")
    try:
        value = dt.date(int(m.group(3)), _month(c, m.group(2)), int(m.group(1)))
    except ValueError:
        c.pos = start
        raise c.error("valid date") from None
    if q:
        c.char(b'"', "closing DQUOTE")
    return value


_DATE_TIME = re.compile(
    rb'"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) '  # date-day-fixed "-" date-month "-" date-year
    rb"([0-9]{2}):([0-9]{2}):([0-9]{2}) "  # time
    rb'([+-])([0-9]{2})([0-9]{2})"'  # zone
)


def date_time(c: Cursor) -> dt.datetime:
    """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
    date-day-fixed = (SP DIGIT) / 2DIGIT  ; a single digit is accepted too (lenient)
    time = 2DIGIT ":" 2DIGIT ":" 2DIGIT
    zone = ("+" / "-") 4DIGIT"""
    start = c.pos
    m = c.expect(_DATE_TIME, "date-time")
    g = m.groups()
    try:
        zh, zm = int(g[7]), int(g[8])
        if zm > 59:
            raise ValueError("zone minutes")
        offset = dt.timedelta(hours=zh, minutes=zm)
        tz = dt.timezone(-offset if g[6] == b"-" else offset)
        return dt.datetime(
            int(g[2]), _month(c, g[1]), int(g[0].strip()),
            int(g[3]), int(g[4]), int(g[5]), tzinfo=tz,
        )  # fmt: skip
    except ValueError:
        c.pos = start
        raise c.error("valid date-time") from None


# -- commands: any state -----------------------------------------------------------------------


def tag(c: Cursor) -> str:
    """tag = 1*<any ASTRING-CHAR except "+">"""
    value = c.expect(_TAG, "tag").group().decode("ascii")
    if c.peek() not in (ord(" "), -1):
        raise c.error("tag")  # c.tag stays None: the reply is "* BAD"
    c.tag = value
    return value


def authenticate(c: Cursor, t: str) -> cmd.Authenticate:
    """authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")]  ; RFC 4959
    auth-type = atom
    ; the initial response is base64-decoded; its octets are kept losslessly in the Secret's
    ; str (UTF-8, undecodable octets surrogate-escaped); "=" is the empty response"""
    c.sp()
    mech = atom(c).upper()
    initial: Secret | None = None
    if c.try_char(b" "):
        if c.try_char(b"="):
            initial = Secret("")
        else:
            initial = Secret(sasl_base64(c, c.expect(_BASE64, "base64")))
    return cmd.Authenticate(t, mech, initial)


def decode_base64(data: bytes) -> str | None:
    """base64 = *(4base64-char) [base64-terminal]; None when malformed. The octets come back
    as a str: UTF-8, undecodable octets surrogate-escaped (``.encode("utf-8",
    "surrogateescape")`` restores them exactly)."""
    if len(data) % 4:
        return None
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        return None
    return raw.decode("utf-8", "surrogateescape")


def sasl_base64(c: Cursor, m: re.Match[bytes]) -> str:
    value = decode_base64(m.group())
    if value is None:
        c.pos = m.start()
        raise c.error("base64")
    return value


def login(c: Cursor, t: str) -> cmd.Login:
    """login = "LOGIN" SP userid SP password
    userid = astring; password = astring"""
    c.sp()
    user = _utf8(c, astring(c), "user name")
    c.sp()
    password = astring(c).decode("utf-8", "surrogateescape")
    return cmd.Login(t, user, Secret(password))


def id_(c: Cursor, t: str) -> cmd.Id:
    """id = "ID" SP id-params-list  ; RFC 2971 §4
    id-params-list = "(" *(string SP nstring) ")" / nil"""
    c.sp()
    if c.match(_NIL):
        return cmd.Id(t, None)
    c.char(b"(", '"(" or NIL')
    params: list[tuple[str, str | None]] = []
    first = True
    while not c.try_char(b")"):
        if not first:
            c.sp()
        first = False
        c.count_arg()
        key = _utf8(c, string(c), "ID field")
        c.sp()
        raw = nstring(c)
        params.append((key, None if raw is None else _utf8(c, raw, "ID value")))
    return cmd.Id(t, tuple(params))


# -- commands: authenticated state -------------------------------------------------------------


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
    name = mailbox(c)
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
    return cmd.Rename(t, old, mailbox(c))


_STATUS_ATTS: Final = frozenset(
    {
        "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE",
        "DELETED", "APPENDLIMIT", "DELETED-STORAGE",
    }
)  # fmt: skip


def status_atts(c: Cursor) -> tuple[str, ...]:
    """ "(" status-att *(SP status-att) ")"
    status-att = "MESSAGES" / "RECENT" / "UIDNEXT" / "UIDVALIDITY" / "UNSEEN"
               / "HIGHESTMODSEQ" (RFC 7162 §7) / "SIZE" (RFC 8438 §3) / "DELETED" (RFC 9051 §9)
               / "APPENDLIMIT" (RFC 7889 §3) / "DELETED-STORAGE" (RFC 9208 §4.1.4)"""
    c.char(b"(", "status attribute list")
    items: list[str] = []
    while True:
        c.count_arg()
        start = c.pos
        item = atom(c).upper()
        if item not in _STATUS_ATTS:
            c.pos = start
            raise c.error("status attribute")
        items.append(item)
        if c.try_char(b")"):
            return tuple(dict.fromkeys(items))
        c.sp()


def status(c: Cursor, t: str) -> cmd.Status:
    """status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")" """
    c.sp()
    name = mailbox(c)
    c.sp()
    return cmd.Status(t, name, status_atts(c))


_SELECT_OPTS: Final = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_RETURN_OPTS: Final = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


def list_(c: Cursor, t: str) -> cmd.List:
    """list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
    list-select-opts = "(" [list-select-opt *(SP list-select-opt)] ")"   ; RFC 5258 §6
    list-select-opt = "SUBSCRIBED" / "REMOTE" / "RECURSIVEMATCH" / "SPECIAL-USE" (RFC 6154)
    mbox-or-pat = list-mailbox / patterns
    patterns = "(" list-mailbox *(SP list-mailbox) ")"
    list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
    return-option = "SUBSCRIBED" / "CHILDREN" / "SPECIAL-USE" / "STATUS" SP "(" status-att
                    *(SP status-att) ")"   ; RFC 5819
    ; RECURSIVEMATCH needs a base option (SUBSCRIBED or SPECIAL-USE), RFC 5258 §3"""
    c.sp()
    extended = False
    selection: list[str] = []
    if c.try_char(b"("):
        extended = True
        while not c.try_char(b")"):
            if selection:
                c.sp()
            c.count_arg()
            start = c.pos
            opt = atom(c).upper()
            if opt not in _SELECT_OPTS:
                c.pos = start
                raise c.error("list selection option")
            selection.append(opt)
        if "RECURSIVEMATCH" in selection and not {"SUBSCRIBED", "SPECIAL-USE"} & set(selection):
            raise BadCommand("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE", tag=c.tag)
        c.sp()
    reference = _mailbox_text(c, astring(c))
    c.sp()
    patterns: list[str] = []
    if c.try_char(b"("):
        extended = True
        while True:
            c.count_arg()
            patterns.append(list_mailbox(c))
            if c.try_char(b")"):
                break
            c.sp()
    else:
        patterns.append(list_mailbox(c))
    returns: list[str] = []
    status_items: tuple[str, ...] | None = None
    if c.try_char(b" "):
        extended = True
        if not c.keyword(b"RETURN"):
            raise c.error("RETURN")
        c.sp()
        c.char(b"(", '"("')
        while not c.try_char(b")"):
            if returns:
                c.sp()
            c.count_arg()
            start = c.pos
            opt = atom(c).upper()
            if opt not in _RETURN_OPTS:
                c.pos = start
                raise c.error("list return option")
            if opt == "STATUS":
                c.sp()
                status_items = status_atts(c)
            returns.append(opt)
    return cmd.List(
        t,
        reference,
        tuple(patterns),
        selection=tuple(dict.fromkeys(selection)),
        return_opts=tuple(dict.fromkeys(returns)),
        status_items=status_items,
        extended=extended,
    )


def lsub(c: Cursor, t: str) -> cmd.List:
    """lsub = "LSUB" SP mailbox SP list-mailbox"""
    c.sp()
    reference = _mailbox_text(c, astring(c))
    c.sp()
    return cmd.List(t, reference, (list_mailbox(c),), lsub=True)


def append(c: Cursor, t: str) -> cmd.Append:
    """append = "APPEND" SP mailbox 1*append-message   ; RFC 3502 §6.3.11 (MULTIAPPEND)
    append-message = [SP flag-list] [SP date-time] SP (literal / literal8 / utf8-data)
    utf8-data = "UTF8" SP "(" literal8 ")"   ; RFC 6855 §4, only after ENABLE UTF8=ACCEPT
    ; literal8 is RFC 3516's; NUL octets are accepted in the message (lenient), and a
    ; plain literal inside UTF8 ( ) too"""
    c.sp()
    name = mailbox(c)
    messages: list[cmd.AppendMessage] = []
    while not messages or not c.at_end():
        c.count_arg()
        c.sp()
        flags: tuple[str, ...] = ()
        when: dt.datetime | None = None
        if c.peek() == ord("("):
            flags = flag_list(c)
            c.sp()
        if c.peek() == ord('"'):
            when = date_time(c)
            c.sp()
        if c.keyword(b"UTF8"):
            if not c.utf8:
                raise BadCommand("APPEND UTF8 needs ENABLE UTF8=ACCEPT", tag=c.tag)
            c.sp()
            c.char(b"(", '"("')
            content = literal(c, binary=True)
            c.char(b")", '")"')
        else:
            content = literal(c, binary=True)
        messages.append(cmd.AppendMessage(flags, when, content))
    return cmd.Append(t, name, tuple(messages))


def enable(c: Cursor, t: str) -> cmd.Enable:
    """enable = "ENABLE" 1*(SP capability)  ; RFC 5161 §4
    capability = atom"""
    caps: list[str] = []
    while not caps or not c.at_end():
        c.count_arg()
        c.sp()
        caps.append(atom(c).upper())
    return cmd.Enable(t, tuple(dict.fromkeys(caps)))


# -- commands: selected state ------------------------------------------------------------------


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
    ; an empty RETURN () means ALL (RFC 4731 §3.1); an unknown CHARSET is a tagged
    ; NO [BADCHARSET] (RFC 3501 §6.4.4); after ENABLE UTF8=ACCEPT the client MUST NOT
    ; send CHARSET at all (RFC 6855 §3): BAD"""
    c.sp()
    returns: tuple[str, ...] | None = None
    if c.keyword(b"RETURN"):
        c.sp()
        c.char(b"(", '"("')
        opts: list[str] = []
        while not c.try_char(b")"):
            if opts:
                c.sp()
            c.count_arg()
            start = c.pos
            opt = atom(c).upper()
            if opt not in _RETURN_SEARCH:
                c.pos = start
                raise c.error("search return option")
            opts.append(opt)
        returns = tuple(dict.fromkeys(opts))
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
    return cmd.Search(t, uid, SearchKey("AND", children=tuple(keys)), charset, returns)


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
                  "SAVEDATESUPPORTED"          ; RFC 8514 §4"""
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
        name = c.expect(_ATOM, "search key").group().decode("ascii").upper()
        if name in _SEARCH_FLAGS:
            return SearchKey(name)
        if name in _SEARCH_STRINGS:
            c.sp()
            return SearchKey(name, _utf8(c, astring(c), "search string"))
        if name in _SEARCH_DATES:
            c.sp()
            return SearchKey(name, date(c))
        if name in ("KEYWORD", "UNKEYWORD"):
            c.sp()
            return SearchKey(name, atom(c))
        if name in ("LARGER", "SMALLER"):
            c.sp()
            return SearchKey(name, number(c))
        if name in ("OLDER", "YOUNGER"):
            c.sp()
            return SearchKey(name, nz_number(c))
        if name == "UID":
            c.sp()
            return SearchKey(name, sequence_set(c))
        if name == "HEADER":
            c.sp()
            field = _utf8(c, astring(c), "header name")
            c.sp()
            return SearchKey(name, _utf8(c, astring(c), "search string"), header=field)
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
        c.pos = start
        raise c.error("search key")
    finally:
        c.leave()


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
        "RFC822.TEXT", "BODYSTRUCTURE", "UID", "MODSEQ", "SAVEDATE",
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
    return cmd.Fetch(t, uid, seqs, tuple(dict.fromkeys(atts)), changedsince, vanished)


def fetch_att(c: Cursor) -> FetchAtt:
    """fetch-att = "ENVELOPE" / "FLAGS" / "INTERNALDATE" /
        "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] / "BODY" ["STRUCTURE"] / "UID" /
        "BODY" section ["<" number "." nz-number ">"] /
        "BODY.PEEK" section ["<" number "." nz-number ">"]
    fetch-att =/ "MODSEQ"                          ; RFC 7162 §7
    fetch-att =/ "SAVEDATE"                        ; RFC 8514 §4
    fetch-att =/ "BINARY" [".PEEK"] section-binary [partial] /
                 "BINARY.SIZE" section-binary     ; RFC 3516 §4.1
    section-binary = "[" [section-part] "]" """
    c.count_arg()
    start = c.pos
    name = c.expect(_NAME, "fetch attribute").group().decode("ascii").upper()
    if name in _SIMPLE_ATTS:
        return FetchAtt(name)
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
    store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))"""
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
    return cmd.Store(t, uid, seqs, mode, silent, flags, unchangedsince)


def copy(c: Cursor, t: str, uid: bool, move: bool) -> cmd.Copy:
    """copy = "COPY" SP sequence-set SP mailbox
    move = "MOVE" SP sequence-set SP mailbox  ; RFC 6851 §6"""
    c.sp()
    seqs = sequence_set(c)
    c.sp()
    return cmd.Copy(t, uid, seqs, mailbox(c), move)


# -- ACL (RFC 4314 §7) --------------------------------------------------------------------------


def identifier(c: Cursor) -> str:
    """identifier = astring  ; UTF-8 (RFC 4314 §2), e.g. "anyone", "bob", "-bob" """
    return _utf8(c, astring(c), "identifier")


def setacl(c: Cursor, t: str) -> cmd.SetAcl:
    """setacl = "SETACL" SP mailbox SP identifier SP mod-rights
    mod-rights = astring  ; +rights to add, -rights to remove, rights to replace"""
    c.sp()
    name = mailbox(c)
    c.sp()
    who = identifier(c)
    c.sp()
    return cmd.SetAcl(t, name, who, _utf8(c, astring(c), "rights"))


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


# -- METADATA (RFC 5464) and COMPRESS (RFC 4978) -----------------------------------------------

_DEPTHS: Final = {"0": 0, "1": 1, "infinity": None}


def entry(c: Cursor, *, prefix: bool = False) -> str:
    """entry = astring  ; slash-separated path to entry, MUST NOT contain "*" or "%"
    ; RFC 5464 §3.2: ASCII without controls, no "//", no trailing "/", first component
    ; "private" or "shared", at least 2 components (4 under .../vendor/); case-insensitive,
    ; so lower-cased here. ``prefix`` (GETMETADATA) also admits "/private" and "/shared"
    ; alone, as a DEPTH root. Invalid names are BAD in any command (§3.2)."""
    start = c.pos
    raw = astring(c)
    text = raw.decode("ascii", "replace").lower()
    parts = text.split("/")
    valid = (
        raw.isascii()
        and not any(b < 0x20 or b == 0x7F for b in raw)
        and "*" not in text
        and "%" not in text
        and parts[0] == ""
        and all(parts[1:])
        and len(parts) >= 2
        and parts[1] in ("private", "shared")
        and (len(parts) >= 3 or prefix)
        and (len(parts) < 3 or parts[2] != "vendor" or len(parts) >= 5 or prefix)
    )
    if not valid:
        c.pos = start
        raise c.error("entry name /private/... or /shared/...")
    return text


def getmetadata(c: Cursor, t: str) -> cmd.GetMetadata:
    """getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries
    getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")"
    getmetadata-option = maxsize-opt / scope-opt   ; others are BAD
    maxsize-opt = "MAXSIZE" SP number
    scope-opt = "DEPTH" SP ("0" / "1" / "infinity")
    entries = entry / "(" entry *(SP entry) ")"
    ; lenient, as the RFC's own examples are: the options may also follow the mailbox
    ; (§4.2.1-4.2.2: GETMETADATA "INBOX" (DEPTH 1) (...)), and the entries may come without
    ; parentheses (§4.4.1)"""
    c.sp()
    options: tuple[int | None, int | None] = (0, None)
    given = False
    if c.peek() == ord("("):
        options, given = _getmetadata_options(c), True
        c.sp()
    name = mailbox(c)
    c.sp()
    if not given and c.peek() == ord("(") and _OPTION_AHEAD.match(c.text, c.pos):
        options = _getmetadata_options(c)
        c.sp()
    entries: list[str] = []
    if c.try_char(b"("):
        while True:
            c.count_arg()
            entries.append(entry(c, prefix=True))
            if c.try_char(b")"):
                break
            c.sp()
    else:
        entries.append(entry(c, prefix=True))
        while c.try_char(b" "):
            c.count_arg()
            entries.append(entry(c, prefix=True))
    return cmd.GetMetadata(t, name, tuple(dict.fromkeys(entries)), *options)


_OPTION_AHEAD = re.compile(rb"\((?:DEPTH|MAXSIZE) ", re.IGNORECASE)


def _getmetadata_options(c: Cursor) -> tuple[int | None, int | None]:
    """getmetadata-options -> (depth, maxsize); each option at most once."""
    depth: int | None = 0
    maxsize: int | None = None
    seen: set[str] = set()
    c.char(b"(", "GETMETADATA options")
    while True:
        c.count_arg()
        start = c.pos
        if c.keyword(b"DEPTH") and "DEPTH" not in seen:
            seen.add("DEPTH")
            c.sp()
            value_at = c.pos
            word = atom(c).lower()
            if word not in _DEPTHS:
                c.pos = value_at
                raise c.error("DEPTH 0, 1 or infinity")
            depth = _DEPTHS[word]
        elif c.keyword(b"MAXSIZE") and "MAXSIZE" not in seen:
            seen.add("MAXSIZE")
            c.sp()
            maxsize = number(c)
        else:
            c.pos = start
            raise c.error("DEPTH or MAXSIZE, once")
        if c.try_char(b")"):
            return depth, maxsize
        c.sp()


def setmetadata(c: Cursor, t: str) -> cmd.SetMetadata:
    """setmetadata = "SETMETADATA" SP mailbox SP entry-values
    entry-values = "(" entry-value *(SP entry-value) ")"
    entry-value = entry SP value
    value = nstring / literal8
    ; a repeated entry keeps its last value"""
    c.sp()
    name = mailbox(c)
    c.sp()
    c.char(b"(", "entry-values")
    values: dict[str, bytes | None] = {}
    while True:
        c.count_arg()
        key = entry(c)
        c.sp()
        value: bytes | None
        if c.match(_NIL):
            value = None
        elif c.peek() == ord("~"):
            value = literal(c, binary=True)
        else:
            value = string(c)
        values.pop(key, None)
        values[key] = value
        if c.try_char(b")"):
            break
        c.sp()
    return cmd.SetMetadata(t, name, tuple(values.items()))


def compress(c: Cursor, t: str) -> cmd.Compress:
    """compress = "COMPRESS" SP algorithm  ; RFC 4978 §5
    algorithm = "DEFLATE"  ; an unknown algorithm is BAD (§3)"""
    c.sp()
    start = c.pos
    if atom(c).upper() != "DEFLATE":
        c.pos = start
        raise c.error("DEFLATE")
    return cmd.Compress(t)


# -- XAPPLEPUSHSERVICE (no RFC: Cyrus imap/imapd.c, Dovecot's push plugins) ---------------------

_APS_PARAMS: Final = ("aps-version", "aps-account-id", "aps-device-token", "aps-subtopic",
                      "mailboxes")
APS_DEFAULT_SUBTOPIC: Final = "com.apple.mobilemail"


def xapplepushservice(c: Cursor, t: str) -> cmd.XApplePushService:
    """xapplepushservice = "XAPPLEPUSHSERVICE" 1*(SP aps-param)
    aps-param = "aps-version" SP astring     ; digits
              / "aps-account-id" SP astring / "aps-device-token" SP astring
              / "aps-subtopic" SP astring
              / "mailboxes" SP "(" [mailbox *(SP mailbox)] ")"
    ; pairs in any order, each at most once, names case-insensitive. aps-version 1 needs the
    ; account and token (INBOX and com.apple.mobilemail implied, as in Cyrus); 2 and later
    ; need all five."""
    got: dict[str, str | tuple[str, ...]] = {}
    while True:
        c.sp()
        c.count_arg()
        start = c.pos
        key = atom(c).lower()
        if key not in _APS_PARAMS or key in got:
            c.pos = start
            raise c.error("aps-version, aps-account-id, aps-device-token, aps-subtopic or "
                          "mailboxes, each once")
        c.sp()
        if key == "mailboxes":
            got[key] = _aps_mailboxes(c)
        else:
            got[key] = _utf8(c, astring(c), key)
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


# -- QUOTA (RFC 9208 §7) ------------------------------------------------------------------------

MAX_NUMBER64: Final = 2**63 - 1  # RFC 9051 §9: number64 is a signed 63-bit positive number


def quota_root_name(c: Cursor) -> str:
    """quota-root-name = astring  ; not a mailbox name: UTF-8, no modified UTF-7"""
    return _utf8(c, astring(c), "quota root name")


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
            m = c.expect(_DIGITS, "resource limit")
            if len(m.group()) > 19 or int(m.group()) > MAX_NUMBER64:
                c.pos = m.start()
                raise c.error("resource limit below 2^63")
            limits.append((name, int(m.group())))
            if c.try_char(b")"):
                break
            c.sp()
    return cmd.SetQuota(t, root, tuple(limits))


# -- NOTIFY (RFC 5465 §8) ----------------------------------------------------------------------

#: The events of RFC 5465 §5 by upper-cased name -> canonical name.
NOTIFY_EVENTS: Final[dict[str, str]] = {
    name.upper(): name
    for name in ("MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange",
                 "MailboxName", "SubscriptionChange", "MailboxMetadataChange",
                 "ServerMetadataChange")
}
_MESSAGE_EVENTS: Final = frozenset({"MessageNew", "MessageExpunge", "FlagChange",
                                    "AnnotationChange"})
_NOTIFY_FILTERS: Final = ("selected-delayed", "selected", "inboxes", "personal",
                          "subscribed", "subtree", "mailboxes")


def notify(c: Cursor, t: str) -> cmd.Notify:
    """notify = "NOTIFY" SP (notify-set / notify-none)
    notify-none = "NONE"
    notify-set = "SET" [SP status-indicator] SP event-groups
    status-indicator = "STATUS"
    event-groups = event-group *(SP event-group)
    ; RFC 5465 §8, with the §5 and §6.1 rules (each a BAD): MessageNew and MessageExpunge
    ; together; FlagChange/AnnotationChange need both; at most one selected group, holding
    ; message events only; fetch-atts only after MessageNew in a selected group. The §3.1
    ; example without parentheses round the events is not the ABNF (NOTIFY.md C.1)."""
    c.sp()
    if c.keyword(b"NONE"):
        return cmd.Notify(t, False, None)
    if not c.keyword(b"SET"):
        raise c.error("SET or NONE")
    c.sp()
    status = c.keyword(b"STATUS")
    if status:
        c.sp()
    groups = [event_group(c)]
    while c.try_char(b" "):
        groups.append(event_group(c))
    if sum(g.filter.startswith("selected") for g in groups) > 1:
        raise BadCommand("At most one selected or selected-delayed group", tag=c.tag)
    return cmd.Notify(t, status, tuple(groups))


def event_group(c: Cursor) -> cmd.NotifyGroup:
    """event-group = "(" filter-mailboxes SP events ")"
    filter-mailboxes = filter-mailboxes-selected / filter-mailboxes-other
    filter-mailboxes-selected = "selected" / "selected-delayed"
    filter-mailboxes-other = "inboxes" / "personal" / "subscribed" /
                             ( "subtree" SP one-or-more-mailbox ) /
                             ( "mailboxes" SP one-or-more-mailbox )
    events = ( "(" event *(SP event) ")" ) / "NONE" """
    c.char(b"(", "event group")
    c.enter()
    start = c.pos
    word = c.expect(_ATOM, "mailbox filter").group().decode("ascii").lower()
    if word not in _NOTIFY_FILTERS:
        c.pos = start
        raise c.error("mailbox filter")
    c.sp()
    names: tuple[str, ...] = ()
    if word in ("subtree", "mailboxes"):
        names = one_or_more_mailbox(c)
        c.sp()
    selected = word.startswith("selected")
    events: tuple[cmd.NotifyEvent, ...] | None = None
    if not c.keyword(b"NONE"):
        c.char(b"(", "event list or NONE")
        found = [notify_event(c, selected)]
        while not c.try_char(b")"):
            c.sp()
            found.append(notify_event(c, selected))
        events = tuple(found)
        _check_events(c, events, selected)
    c.char(b")", "')' closing the event group")
    c.leave()
    return cmd.NotifyGroup(word, names, events)


def one_or_more_mailbox(c: Cursor) -> tuple[str, ...]:
    """one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")" """
    if not c.try_char(b"("):
        c.count_arg()
        return (mailbox(c),)
    names = []
    while True:
        c.count_arg()
        names.append(mailbox(c))
        if c.try_char(b")"):
            return tuple(dict.fromkeys(names))
        c.sp()


def notify_event(c: Cursor, selected: bool) -> cmd.NotifyEvent:
    """event = message-event / mailbox-event / user-event / event-ext
    message-event = ( "MessageNew" [SP "(" fetch-att *(SP fetch-att) ")" ] )
                    / "MessageExpunge" / "FlagChange" / "AnnotationChange"
    mailbox-event = "MailboxName" / "SubscriptionChange" / "MailboxMetadataChange"
    user-event = "ServerMetadataChange"
    event-ext = atom"""
    c.count_arg()
    raw = atom(c)
    name = NOTIFY_EVENTS.get(raw.upper(), raw)
    atts: list[FetchAtt] = []
    if name == "MessageNew" and c.text[c.pos : c.pos + 2] == b" (":
        if not selected:
            raise BadCommand("MessageNew fetch attributes need a selected group", tag=c.tag)
        c.pos += 2
        atts.append(fetch_att(c))
        while not c.try_char(b")"):
            c.sp()
            atts.append(fetch_att(c))
    return cmd.NotifyEvent(name, tuple(dict.fromkeys(atts)))


def _check_events(c: Cursor, events: tuple[cmd.NotifyEvent, ...], selected: bool) -> None:
    """RFC 5465 §5 and §6.1: the pairing rules of one group, each a BAD (NOTIFY.md N40-N42)."""
    names = {e.name for e in events}
    if ("MessageNew" in names) != ("MessageExpunge" in names):
        raise BadCommand("MessageNew and MessageExpunge go together", tag=c.tag)
    if names & {"FlagChange", "AnnotationChange"} and "MessageNew" not in names:
        raise BadCommand("FlagChange and AnnotationChange need MessageNew and MessageExpunge",
                         tag=c.tag)
    if selected and any(n.upper() in NOTIFY_EVENTS and n not in _MESSAGE_EVENTS
                        for n in names):
        raise BadCommand("Only message events in a selected group", tag=c.tag)


# -- dispatch ----------------------------------------------------------------------------------

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
}

#: uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)
UID_COMMANDS: Final[dict[str, tuple[type[cmd.Command], _Parser]]] = {
    "SEARCH": (cmd.Search, lambda c, t: search(c, t, True)),
    "FETCH": (cmd.Fetch, lambda c, t: fetch(c, t, True)),
    "STORE": (cmd.Store, lambda c, t: store(c, t, True)),
    "COPY": (cmd.Copy, lambda c, t: copy(c, t, True, False)),
    "MOVE": (cmd.Copy, lambda c, t: copy(c, t, True, True)),
    "EXPUNGE": (cmd.Expunge, uid_expunge),
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
        raise c.error("FETCH, STORE, COPY, MOVE, SEARCH or EXPUNGE after UID")
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


def parse_command(
    text: bytes,
    literals: tuple[tuple[int, bytes], ...] = (),
    *,
    utf8: bool = False,
    max_depth: int = 32,
    max_args: int = 10000,
) -> cmd.Command:
    """command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF

    ``text`` is the framed command without line ends, ``literals`` its literals with their
    offsets (see `framing.Frame`). Raises `BadCommand` (``UnknownCommand`` for an unknown
    name) with ``.tag`` set when the tag parsed, or `CommandRefused` (BADCHARSET).
    """
    c = Cursor(text, literals, utf8=utf8, max_depth=max_depth, max_args=max_args)
    t = tag(c)
    c.sp()
    entry = _command_name(c)
    if entry is None:
        raise UnknownCommand("Unknown command", tag=t)
    result = entry[1](c, t)
    c.finish()
    return result
