"""The cursor and the lexical rules every command's grammar is built from.

Owns: `Cursor` (a position in one framed command, its literals, its depth and argument limits)
and the RFC 3501 §9 rules below the commands: tag, numbers and mod-sequences, sequence sets
(with RFC 5182's "$"), quoted strings, literals (RFC 7888 LITERAL+, RFC 3516 literal8),
astring, nstring, atom, mailbox names (modified UTF-7, or UTF-8 under RFC 6855), flags, dates
and date-times (pymap's parsing/primitives.py). The character classes derive from the ABNF
(`atomChar` in mox's parse.go). The command modules share `ATOM`, `NIL`, `DIGITS`, `utf8_text`
and `mailbox_text` with it. Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Final

from imapd.protocol import utf7
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.values import SequenceSet, SpooledLiteral, canonical_flag

MAX_NUMBER: Final = 2**32 - 1  # RFC 3501 §9: number is an unsigned 32-bit integer
MAX_MODSEQ: Final = 2**63 - 1  # RFC 7162 §7: mod-sequence-value is a positive 63-bit integer

# Character classes from RFC 3501 §9 (cf. `atomChar` in mox's parse.go).
# atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
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
DIGITS = re.compile(rb"[0-9]+")
NIL = re.compile(rb"NIL(?![^\x00-\x20\x7f-\xff(){%*\"\\\]])", re.IGNORECASE)

_MONTHS: Final = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}


class Cursor:
    """A position in one framed command, with its literals and its limits."""

    __slots__ = (
        "_literals", "args", "depth", "invalid_name", "max_args", "max_depth",
        "max_mailbox_level", "max_mailbox_name", "pos", "tag", "text", "utf8",
    )  # fmt: skip

    def __init__(
        self,
        text: bytes,
        literals: tuple[tuple[int, bytes | SpooledLiteral], ...] = (),
        *,
        utf8: bool = False,
        max_depth: int = 32,
        max_args: int = 10000,
        max_mailbox_name: int = 1024,
        max_mailbox_level: int = 255,
    ) -> None:
        self.text = text
        self.max_mailbox_name = max_mailbox_name
        self.max_mailbox_level = max_mailbox_level
        self.pos = 0
        self._literals = list(reversed(literals))
        self.utf8 = utf8
        self.max_depth = max_depth
        self.max_args = max_args
        self.depth = 0
        self.args = 0
        self.tag: str | None = None
        #: A mailbox name that parsed but is not valid modified UTF-7 (see `mailbox_text`).
        self.invalid_name = False

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
        if nxt and ATOM.match(nxt):
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

    def take_literal(self, end_of_marker: int, size: int) -> bytes | SpooledLiteral:
        """The literal announced by the marker ending at ``end_of_marker``."""
        if not self._literals or self._literals[-1][0] != end_of_marker:
            raise self.error("literal at end of line")
        _, data = self._literals.pop()
        got = data.size if isinstance(data, SpooledLiteral) else len(data)
        if got != size:  # the framer read exactly `size` octets; defensive
            raise self.error("literal of announced size")
        return data

    def finish(self) -> None:
        if not self.at_end():
            raise self.error("end of command")
        if self._literals:
            raise self.error("no further literal")


# -- tag ---------------------------------------------------------------------------------------


def tag(c: Cursor) -> str:
    """tag = 1*<any ASTRING-CHAR except "+">"""
    value = c.expect(_TAG, "tag").group().decode("ascii")
    if c.peek() not in (ord(" "), -1):
        raise c.error("tag")  # c.tag stays None: the reply is "* BAD"
    c.tag = value
    return value


# -- numbers and sets --------------------------------------------------------------------------


def number(c: Cursor) -> int:
    """number = 1*DIGIT  ; unsigned 32-bit integer (0 <= n < 4,294,967,296)"""
    m = c.expect(DIGITS, "number")
    if len(m.group()) > 10 or int(m.group()) > MAX_NUMBER:
        c.pos = m.start()
        raise c.error("number below 2^32")
    return int(m.group())


def number64(c: Cursor) -> int:
    """number64 = 1*DIGIT  ; unsigned 63-bit integer (RFC 9051 §9: 0 <= n <= 9,223,372,036,
    854,775,807; Appendix D: 63-bit message sizes, as SEARCH LARGER/SMALLER take them)"""
    m = c.expect(DIGITS, "number")
    if len(m.group()) > 19 or int(m.group()) > 2**63 - 1:
        c.pos = m.start()
        raise c.error("number below 2^63")
    return int(m.group())


def nz_number(c: Cursor) -> int:
    """nz-number = digit-nz *DIGIT  ; non-zero unsigned 32-bit integer"""
    if c.peek() == ord("0"):
        raise c.error("non-zero number")
    return number(c)


def mod_sequence_value(c: Cursor, *, zero: bool = False) -> int:
    """mod-sequence-value = 1*DIGIT ; positive unsigned 63-bit integer (RFC 7162 §7)
    mod-sequence-valzer = "0" / mod-sequence-value"""
    m = c.expect(DIGITS, "mod-sequence")
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
    literal8 = "~{" number ["+"] "}" CRLF *OCTET ; RFC 3516, only where ``binary``

    A spooled literal (`SpooledLiteral`) is a message's place only (`message_literal`):
    anywhere else it is refused with ``NO [TOOBIG]`` (RFC 7889 §4)."""
    data = message_literal(c, binary=binary)
    if isinstance(data, SpooledLiteral):
        raise CommandRefused("Literal too big for this argument", "TOOBIG")
    return data


def message_literal(c: Cursor, *, binary: bool = True) -> bytes | SpooledLiteral:
    """`literal` where a message goes (APPEND): the octets, or the `SpooledLiteral` standing
    for those the session spooled to a file."""
    start = c.pos
    m = c.expect(_LITERAL, "literal")
    if m.group(1) and not binary:
        c.pos = start
        raise c.error("literal (not literal8)")
    size = int(m.group(2)) if len(m.group(2)) <= 20 else -1
    data = c.take_literal(m.end(), size)
    if isinstance(data, SpooledLiteral):
        return data
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
    if c.match(NIL):
        return None
    return string(c)


def atom(c: Cursor) -> str:
    """atom = 1*ATOM-CHAR"""
    return c.expect(ATOM, "atom").group().decode("ascii")


def atom_list(
    c: Cursor,
    allowed: frozenset[str],
    what: str,
    *,
    empty: bool = True,
    opening: str = '"("',
    then: Callable[[str], None] | None = None,
) -> tuple[str, ...]:
    """ "(" [item *(SP item)] ")" where each item is an atom among ``allowed`` (compared
    upper-cased; ``what`` names them in the error): the parenthesised option lists of
    STATUS, LIST (selection and RETURN) and SEARCH RETURN. Without ``empty`` "()" is an
    error. ``then(item)`` parses what follows an item (LIST RETURN's ``STATUS (...)``).
    Duplicates are dropped, first one kept."""
    c.char(b"(", opening)
    items: list[str] = []
    if not empty and c.try_char(b")"):
        c.pos -= 1
        raise c.error(what)
    while not c.try_char(b")"):
        if items:
            c.sp()
        c.count_arg()
        start = c.pos
        item = atom(c).upper()
        if item not in allowed:
            c.pos = start
            raise c.error(what)
        if then is not None:
            then(item)
        items.append(item)
    return tuple(dict.fromkeys(items))


def utf8_text(c: Cursor, data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise c.error(f"UTF-8 {what}") from None


#: Wire octets per octet of UTF-8 a mailbox name may take, with room to spare: modified
#: UTF-7 spells a lone 2-octet character in 5 (``&AOk-``), a 4-octet one in 8. Longer names
#: are refused before decoding.
_WIRE_PER_OCTET = 3


def mailbox_text(c: Cursor, data: bytes, *, new: bool = False, pattern: bool = False) -> str:
    """Raw name octets -> Unicode: modified UTF-7 (RFC 3501 §5.1.3) or UTF-8 (RFC 6855 §3).

    A name longer on the wire than any name within ``limits.max_mailbox_name`` can be is
    refused before it is decoded (issue 14: decoding a 10 MB name stalled the loop for
    seconds, on every command naming it): CREATE/RENAME's ``new`` name and LIST patterns
    with NO [LIMIT], any other (it cannot exist) with NO [NONEXISTENT].

    A name that is a good astring but not valid modified UTF-7 is not a syntax error: the
    command parsed, so it must not be BAD (BAD says it could not be parsed; clients drop
    the connection). It sets ``c.invalid_name`` and returns ``""``: `parse_command` refuses
    the command with NO once the whole of it parsed, and LIST/LSUB drop such a pattern
    (it can match no name: an empty OK)."""
    if len(data) > _WIRE_PER_OCTET * c.max_mailbox_name + 16:
        raise _name_too_long(c, new=new, pattern=pattern)
    if c.utf8:
        return utf8_text(c, data, "mailbox name")
    try:
        return utf7.decode(data.decode("ascii"))
    except ValueError:  # UnicodeDecodeError is a ValueError
        c.invalid_name = True
        return ""


def _name_too_long(c: Cursor, *, new: bool, pattern: bool = False) -> CommandRefused:
    if pattern:
        return CommandRefused("Mailbox pattern too long", "LIMIT")
    if new:
        return CommandRefused(
            f"Mailbox name too long (limit {c.max_mailbox_name} octets, "
            f"{c.max_mailbox_level} per level)",
            "LIMIT",
        )
    return CommandRefused("No such mailbox (name too long)", "NONEXISTENT")


def mailbox(c: Cursor, *, new: bool = False) -> str:
    """mailbox = "INBOX" / astring
    ; INBOX is case-insensitive (RFC 3501 §5.1); other names are case-sensitive

    ``new``: a name to be created (CREATE, RENAME's second), held to the level limit too."""
    name = mailbox_text(c, astring(c), new=new)
    octets = len(name.encode("utf-8", "surrogatepass"))
    if octets > c.max_mailbox_name or (
        new
        and any(
            len(level.encode("utf-8", "surrogatepass")) > c.max_mailbox_level
            for level in name.split("/")
        )
    ):
        raise _name_too_long(c, new=new)
    return "INBOX" if name.upper() == "INBOX" else name


def list_mailbox(c: Cursor) -> str:
    """list-mailbox = 1*list-char / string"""
    if c.peek() in (ord('"'), ord("{")):
        return mailbox_text(c, string(c), pattern=True)
    return mailbox_text(c, c.expect(_LIST_CHARS, "list-mailbox").group(), pattern=True)


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
