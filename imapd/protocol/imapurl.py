"""IMAP URLs (RFC 5092) with URLAUTH (RFC 4467 §3, §9): parse, resolve, serialise. Pure.

Owns: `ImapUrl` (one parsed URL), `parse` (an absolute ``imap://`` URL), `resolve` (a
CATENATE part's URL, usually relative: RFC 4469 §3 takes ``imap://user@server/`` or, in the
selected state, ``imap://user@server/mailbox`` as its base), `serialize`, and `split_rump`
(RFC 4467 §6: the rump URL is the text minus ``:mech:token`` and nothing else, no decoding,
no case folding). Mailbox names in URLs are percent-encoded UTF-8 (RFC 5092 §3.2); a decoded
name is a plain `str`, as the store's names are. Everything malformed raises `BadUrl`.

The grammar, RFC 5092 §11 (with RFC 4467 §9)::

    imapurl       = "imap://" iserver ipath-query
    iserver       = [iuserinfo "@"] host [":" port]
    iuserinfo     = enc-user [iauth] / [enc-user] iauth
    iauth         = ";AUTH=" ( "*" / enc-auth-type )
    ipath-query   = ["/" [ icommand ]]
    icommand      = imessagelist / imessagepart [iurlauth]
    imessagelist  = imailbox-ref [ "?" enc-search ]
    imessagepart  = imailbox-ref iuid [isection] [ipartial]
    imailbox-ref  = enc-mailbox [uidvalidity]
    uidvalidity   = ";UIDVALIDITY=" nz-number
    iuid          = "/" ";UID=" nz-number
    isection      = "/" ";SECTION=" enc-section
    ipartial      = "/" ";PARTIAL=" number ["." nz-number]
    iurlauth      = [";EXPIRE=" date-time] ";URLAUTH=" access [":" mechanism ":" enc-urlauth]
    access        = ("submit+" enc-user) / ("user+" enc-user) / "authuser" / "anonymous"
    mechanism     = "INTERNAL" / 1*(ALPHA / DIGIT / "-" / ".")
    enc-urlauth   = 32*HEXDIG
    enc-user, enc-auth-type = 1*achar    enc-mailbox, enc-section, enc-search = 1*bchar
    achar = uchar / "&" / "="            bchar = achar / ":" / "@" / "/"
    uchar = unreserved / pct-encoded / "!" / "$" / "'" / "(" / ")" / "*" / "+" / ","

Keywords (``;UID=``...) are case-insensitive, as the RFCs' own examples write them both ways.
Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Final

from imapd.protocol.errors import BadCommand
from imapd.protocol.parser.message import section as section_rule
from imapd.protocol.parser.primitives import Cursor
from imapd.protocol.values import Section

#: Longer URLs are refused before any work (a CATENATE may carry many; each is an astring).
MAX_URL: Final = 8192
MAX_NUMBER: Final = 2**32 - 1

_UNRESERVED = "A-Za-z0-9\\-._~"
_UCHAR = _UNRESERVED + "!$'()*+,"
_ACHAR = _UCHAR + "&="
_BCHAR = _ACHAR + ":@/"
_PCT = "%[0-9A-Fa-f]{2}"

_ACHARS = re.compile(f"(?:[{_ACHAR}]|{_PCT})+")
_BCHARS = re.compile(f"(?:[{_BCHAR}]|{_PCT})+")
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~]+")
_PORT = re.compile(r"[0-9]{1,5}")
_NZ = re.compile(r"[1-9][0-9]{0,9}")
_NUM = re.compile(r"[0-9]{1,10}")
_MECH = re.compile(r"[A-Za-z0-9\-.]+")
_TOKEN = re.compile(r"[0-9A-Fa-f]{32,}")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_URLAUTH_KEY = re.compile(";URLAUTH=", re.IGNORECASE)


class BadUrl(ValueError):
    """Not an IMAP URL we can use; the text says what was expected where."""


@dataclass(frozen=True, slots=True)
class UrlAuth:
    """``[;EXPIRE=date-time] ;URLAUTH=access[:mechanism:token]`` (RFC 4467 §3).
    ``mechanism`` and ``token`` are None in a rump URL (GENURLAUTH's argument)."""

    access: str  # "submit+<user>", "user+<user>" (user decoded), "authuser", "anonymous"
    expire: dt.datetime | None = None
    mechanism: str | None = None  # upper-cased
    token: str | None = None  # lower-cased hex

    @property
    def access_user(self) -> str | None:
        """The userid of a ``submit+`` or ``user+`` access identifier."""
        kind, _, user = self.access.partition("+")
        return user if kind in ("submit", "user") else None


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """One IMAP URL. ``host`` None: a reference without a server (resolve it first)."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    auth: str | None = None  # ";AUTH=" value: "*" or a SASL mechanism
    mailbox: str | None = None  # None: the URL names a server only
    uidvalidity: int | None = None
    uid: int | None = None
    section: str | None = None  # decoded, as written ("1.2.MIME"); `section_spec` parses it
    partial: tuple[int, int | None] | None = None  # (origin, length or None: to the end)
    search: str | None = None  # imessagelist's "?" part, decoded
    urlauth: UrlAuth | None = None

    @property
    def is_message(self) -> bool:
        """A message or message part (what CATENATE and URLFETCH can return): a UID."""
        return self.mailbox is not None and self.uid is not None and self.search is None

    @property
    def section_spec(self) -> Section:
        """The section as FETCH's BODY[...] (checked by `parse`; ``Section()``: whole)."""
        return _section(self.section) if self.section is not None else Section()


def _section(text: str) -> Section:
    """enc-section decoded is an IMAP section-spec (RFC 5092 §5: as in FETCH BODY[])."""
    raw = text.encode("utf-8")
    c = Cursor(b"[" + raw + b"]", max_args=100, max_depth=4)
    try:
        spec = section_rule(c)
        c.finish()
    except BadCommand as exc:
        raise BadUrl("a section as FETCH BODY[] takes") from exc
    return spec


def _decode(text: str, what: str) -> str:
    """Percent-decoding to UTF-8 (RFC 5092 §3.2); refuses what is not valid UTF-8."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            out.append(int(text[i + 1 : i + 3], 16))  # the regexes matched _PCT
            i += 3
        else:
            out += ch.encode("ascii")
            i += 1
    try:
        decoded = out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUrl(f"{what} in percent-encoded UTF-8") from exc
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
        raise BadUrl(f"{what} without control characters")
    return decoded


def _encode(text: str, safe: str) -> str:
    """Percent-encode everything of ``text``'s UTF-8 outside ``safe`` (a class body)."""
    keep = re.compile(f"[{safe}]")
    return "".join(
        ch if ch.isascii() and keep.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode())
        for ch in text
    )


class _Scan:
    """A position in a URL's text, with case-insensitive keywords."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos == len(self.text)

    def keyword(self, word: str) -> bool:
        end = self.pos + len(word)
        if self.text[self.pos : end].upper() == word:
            self.pos = end
            return True
        return False

    def take(self, pattern: re.Pattern[str], what: str) -> str:
        m = pattern.match(self.text, self.pos)
        if m is None:
            raise BadUrl(f"expected {what} at offset {self.pos}")
        self.pos = m.end()
        return m.group()

    def number(self, pattern: re.Pattern[str], what: str) -> int:
        value = int(self.take(pattern, what))
        if value > MAX_NUMBER:
            raise BadUrl(f"{what} below 2^32")
        return value


def _check_length(text: str) -> None:
    if len(text) > MAX_URL:
        raise BadUrl(f"a URL of at most {MAX_URL} characters")
    if not text.isascii():
        raise BadUrl("a URL in ASCII (non-ASCII characters are percent-encoded)")


def parse(text: str) -> ImapUrl:
    """imapurl = "imap://" iserver ipath-query  (RFC 5092 §11; URLAUTH: RFC 4467 §9)"""
    _check_length(text)
    s = _Scan(text)
    if not s.keyword("IMAP://"):
        raise BadUrl('expected "imap://"')
    user = auth = None
    at = text.find("@", s.pos)
    slash = text.find("/", s.pos)
    if at != -1 and (slash == -1 or at < slash):  # iuserinfo "@"
        if not text.startswith(";", s.pos):
            user = _decode(s.take(_ACHARS, "enc-user"), "user")
        if s.keyword(";AUTH="):
            auth = "*" if text.startswith("*", s.pos) else None
            if auth is not None:
                s.pos += 1
            else:
                auth = _decode(s.take(_ACHARS, "enc-auth-type"), "auth type")
        if s.pos != at:
            raise BadUrl(f'expected "@" at offset {s.pos}')
        s.pos += 1
    host = s.take(_HOST, "host").lower()
    port = None
    if text.startswith(":", s.pos):
        s.pos += 1
        port = int(s.take(_PORT, "port"))
        if not 0 < port < 65536:
            raise BadUrl("port in 1-65535")
    base = ImapUrl(host=host, port=port, user=user, auth=auth)
    if s.at_end():
        return base
    if not text.startswith("/", s.pos):
        raise BadUrl(f'expected "/" at offset {s.pos}')
    s.pos += 1
    if s.at_end():
        return base
    return _command(s, base)


def _command(s: _Scan, base: ImapUrl) -> ImapUrl:
    """icommand = imessagelist / imessagepart [iurlauth]  (after the server's "/")"""
    raw = s.take(_BCHARS, "enc-mailbox")
    uidvalidity = uid = None
    if raw.endswith("/") and s.text[s.pos : s.pos + 5].upper() == ";UID=":
        raw = raw[:-1]  # the "/" of iuid
        s.pos -= 1
    mailbox = _decode(raw, "mailbox")
    if s.keyword(";UIDVALIDITY="):
        uidvalidity = s.number(_NZ, "nz-number")
    if s.text.startswith("?", s.pos):
        s.pos += 1
        search = _decode(s.take(_BCHARS, "enc-search"), "search")
        if not s.at_end():
            raise BadUrl(f"end of URL at offset {s.pos}")
        return replace(base, mailbox=mailbox, uidvalidity=uidvalidity, search=search)
    if s.at_end():
        return replace(base, mailbox=mailbox, uidvalidity=uidvalidity)
    if not s.keyword("/;UID="):
        raise BadUrl(f'expected "/;UID=" at offset {s.pos}')
    uid = s.number(_NZ, "nz-number")
    section = partial = None
    if s.keyword("/;SECTION="):
        raw = s.take(_BCHARS, "enc-section")
        if raw.endswith("/") and s.text[s.pos : s.pos + 9].upper() == ";PARTIAL=":
            raw = raw[:-1]  # the "/" of ipartial (bchar takes "/" too)
            s.pos -= 1
        section = _decode(raw, "section")
        _section(section)
    if s.keyword("/;PARTIAL="):
        origin = s.number(_NUM, "number")
        length = s.number(_NZ, "nz-number") if s.keyword(".") else None
        partial = (origin, length)
    urlauth = _urlauth(s) if not s.at_end() else None
    if not s.at_end():
        raise BadUrl(f"end of URL at offset {s.pos}")
    return replace(
        base,
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
        section=section,
        partial=partial,
        urlauth=urlauth,
    )


def _urlauth(s: _Scan) -> UrlAuth:
    """iurlauth = [";EXPIRE=" date-time] ";URLAUTH=" access [":" mechanism ":" enc-urlauth]"""
    expire = None
    if s.keyword(";EXPIRE="):
        text = s.take(_DATE_TIME, "date-time (RFC 3339)")
        try:
            expire = dt.datetime.fromisoformat(text.upper())
        except ValueError as exc:
            raise BadUrl("a valid date-time") from exc
    if not s.keyword(";URLAUTH="):
        raise BadUrl(f'expected ";URLAUTH=" at offset {s.pos}')
    if s.keyword("SUBMIT+"):
        access = "submit+" + _decode(s.take(_ACHARS, "enc-user"), "user")
    elif s.keyword("USER+"):
        access = "user+" + _decode(s.take(_ACHARS, "enc-user"), "user")
    elif s.keyword("AUTHUSER"):
        access = "authuser"
    elif s.keyword("ANONYMOUS"):
        access = "anonymous"
    else:
        raise BadUrl("an access identifier (submit+, user+, authuser, anonymous)")
    mechanism = token = None
    if s.text.startswith(":", s.pos):
        s.pos += 1
        mechanism = s.take(_MECH, "mechanism").upper()
        if not s.keyword(":"):
            raise BadUrl(f'expected ":" at offset {s.pos}')
        token = s.take(_TOKEN, "authorization token (32 or more hex digits)").lower()
    return UrlAuth(access, expire, mechanism, token)


def split_rump(text: str) -> tuple[str, str, str] | None:
    """RFC 4467 §6: (rump URL, mechanism, token) of a URLAUTH-authorized URL's text, cut at
    the ":" after the access identifier; None when the text carries no ``:mech:token``.
    Removal of ``:mech:token`` is the only operation applied (no decoding, no folding)."""
    starts = [m.end() for m in _URLAUTH_KEY.finditer(text)]
    if not starts:
        return None
    colon = text.find(":", starts[-1])
    if colon == -1:
        return None
    mech, sep, token = text[colon + 1 :].partition(":")
    if not sep:
        return None
    return text[:colon], mech.upper(), token.lower()


def resolve(text: str, user: str, host: str, mailbox: str | None) -> ImapUrl:
    """A CATENATE part's URL against RFC 4469 §3's base: ``imap://user@host/`` or, with a
    mailbox selected, ``imap://user@host/mailbox``. An absolute ``imap://`` URL is parsed as
    it is (the caller checks it names this server and user, or carries a URLAUTH); an
    absolute path ``/mailbox...`` takes the base's server; a reference starting ``;UID=``
    (a message of the selected mailbox, RFC 5092 §7.1's relative form) takes its mailbox."""
    _check_length(text)
    if text[:7].upper() == "IMAP://":
        return parse(text)
    if text.startswith("//"):
        return parse("imap:" + text)
    server = "imap://" + _encode(user, _ACHAR) + "@" + host
    if text.startswith("/"):
        return parse(server + text)
    if text[:5].upper() == ";UID=" and mailbox is not None:
        return parse(server + "/" + _encode(mailbox, _BCHAR) + "/" + text)
    raise BadUrl("an IMAP URL: absolute, an absolute path, or ;UID= in the selected mailbox")


def serialize(url: ImapUrl, *, server: bool = True) -> str:
    """The URL's text, percent-encoding what must be; ``server=False``: from the path on
    (the relative form CATENATE takes). `parse` of the result gives ``url`` back."""
    out = []
    if server:
        if url.host is None:
            raise ValueError("a URL without a server has no absolute form")
        out.append("imap://")
        if url.user is not None or url.auth is not None:
            if url.user is not None:
                out.append(_encode(url.user, _ACHAR))
            if url.auth is not None:
                out.append(";AUTH=" + ("*" if url.auth == "*" else _encode(url.auth, _ACHAR)))
            out.append("@")
        out.append(url.host)
        if url.port is not None:
            out.append(f":{url.port}")
    if url.mailbox is None:
        return "".join(out) + ("/" if server else "")
    mailbox = _encode(url.mailbox, _BCHAR)
    if mailbox.startswith("/"):  # "//" would begin an authority (RFC 3986 §4.2)
        mailbox = "%2F" + mailbox[1:]
    out.append("/" + mailbox)
    if url.uidvalidity is not None:
        out.append(f";UIDVALIDITY={url.uidvalidity}")
    if url.search is not None:
        return "".join(out) + "?" + _encode(url.search, _BCHAR)
    if url.uid is None:
        return "".join(out)
    out.append(f"/;UID={url.uid}")
    if url.section is not None:
        out.append("/;SECTION=" + _encode(url.section, _BCHAR))
    if url.partial is not None:
        origin, length = url.partial
        out.append(f"/;PARTIAL={origin}" + (f".{length}" if length is not None else ""))
    if url.urlauth is not None:
        out.append(rump_suffix(url.urlauth))
        if url.urlauth.mechanism is not None and url.urlauth.token is not None:
            out.append(f":{url.urlauth.mechanism}:{url.urlauth.token}")
    return "".join(out)


def rump_suffix(auth: UrlAuth) -> str:
    """``[;EXPIRE=...];URLAUTH=access`` as `serialize` writes it."""
    text = ""
    if auth.expire is not None:
        text += ";EXPIRE=" + auth.expire.isoformat().replace("+00:00", "Z")
    kind, plus, user = auth.access.partition("+")
    return text + ";URLAUTH=" + (kind + plus + _encode(user, _ACHAR) if plus else kind)
