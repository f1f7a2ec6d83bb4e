"""The ENVELOPE of a message: RFC 5322 address lists read into `Address` values.

Owns: the lenient address-list parser (groups, obsolete routes, comments as names, as
Dovecot reads them) and `envelope_from_fields`, which builds the RFC 3501 §7.4.2 `Envelope`
from a header's first field values. Strings are unfolded but not RFC 2047-decoded (IMAP
sends encoded words as they are). Stdlib only; imports nothing of imapd or notify.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from store.mime.bodystructure import Address, Envelope
from store.mime.headers import quoted_string

# Address placeholders for a missing local part or domain: a NIL host would read as a group
# start (RFC 3501 §7.4.2), so Dovecot fills these in, and so do we.
MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"

# --------------------------------------------------------------------- address parsing

_ADDR_TOKEN = re.compile(
    r'\s*(?:([<>@,;:.])|("(?:[^"\\]|\\.)*"?)|(\[[^\]]*\]?)|([^\s<>@,;:."(\[]+)|(\())', re.S
)


@dataclass(slots=True)
class _Tok:
    kind: str  # "s" special, "q" quoted, "a" atom (incl. domain literal), "c" comment
    text: str
    space: bool  # preceded by whitespace


def _tokens(s: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    n = len(s)
    while pos < n:
        m = _ADDR_TOKEN.match(s, pos)
        if m is None:  # only trailing whitespace is left
            break
        space = m.start(m.lastindex or 0) != m.start()
        pos = m.end()
        if m.group(1) is not None:
            toks.append(_Tok("s", m.group(1), space))
        elif m.group(2) is not None:
            body, _ = quoted_string(m.group(2), 0)
            toks.append(_Tok("q", body, space))
        elif m.group(3) is not None:
            toks.append(_Tok("a", m.group(3), space))
        elif m.group(4) is not None:
            toks.append(_Tok("a", m.group(4), space))
        else:  # comment: nested parentheses, backslash escapes, maybe unterminated
            depth = 1
            i = pos
            while i < n and depth:
                c = s[i]
                if c == "\\":
                    i += 1
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                i += 1
            toks.append(_Tok("c", s[pos : max(pos, i - 1 if not depth else i)].strip(), space))
            pos = i
    return toks


_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


def _join(toks: Sequence[_Tok], *, spaced: bool) -> str:
    """Words of a phrase (``spaced``: whitespace kept as one space) or of an addr-spec."""
    out: list[str] = []
    for tok in toks:
        if tok.kind == "c":
            continue
        text = tok.text
        if not spaced and tok.kind == "q" and _ATEXT.fullmatch(text) is None:
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if spaced and out and tok.space:
            out.append(" ")
        out.append(text)
    return "".join(out)


def _comment(toks: Sequence[_Tok]) -> str | None:
    for tok in toks:
        if tok.kind == "c" and tok.text:
            return tok.text
    return None


def _addr_spec(toks: Sequence[_Tok], name: str | None, adl: str | None) -> Address | None:
    """``local@domain`` tokens (no angle brackets) to an Address."""
    at = next((i for i, t in enumerate(toks) if t.kind == "s" and t.text == "@"), -1)
    local = toks if at < 0 else toks[:at]
    domain = () if at < 0 else [t for t in toks[at + 1 :] if t.kind != "s" or t.text == "."]
    mailbox = _join(local, spaced=False)
    host = _join(domain, spaced=False)
    if not mailbox and not host:
        return None
    return Address(name, adl, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN)


def _mailbox(toks: list[_Tok]) -> Address | None:
    """RFC 5322 §3.4 mailbox: ``name-addr`` or ``addr-spec`` (with a trailing comment as
    the name, as Dovecot does)."""
    lt = next((i for i, t in enumerate(toks) if t.kind == "s" and t.text == "<"), -1)
    if lt < 0:
        return _addr_spec(toks, _comment(toks), None)
    gt = next(
        (i for i in range(lt + 1, len(toks)) if toks[i].text == ">" and toks[i].kind == "s"),
        len(toks),
    )
    phrase = toks[:lt]
    name = _join(phrase, spaced=True) or _comment(phrase) or _comment(toks[gt:]) or None
    inner = toks[lt + 1 : gt]
    adl = None
    if inner and inner[0].kind == "s" and inner[0].text == "@":
        colon = next((i for i, t in enumerate(inner) if t.kind == "s" and t.text == ":"), -1)
        if colon >= 0:  # RFC 5322 §4.4 obs-route: <@a,@b:user@host>
            adl = _join(inner[:colon], spaced=False) or None
            inner = inner[colon + 1 :]
    return _addr_spec(inner, name, adl)


def _addresses(value: str | None) -> tuple[Address, ...]:
    """An RFC 5322 §3.4 address-list, groups as RFC 3501 §7.4.2 start and end markers."""
    if value is None:
        return ()
    toks = _tokens(value)
    out: list[Address] = []
    current: list[_Tok] = []
    in_group = False
    angle = False

    def flush() -> None:
        if current:
            addr = _mailbox(current)
            if addr is not None:
                out.append(addr)
            current.clear()

    for tok in toks:
        if tok.kind == "s":
            if tok.text == "<":
                angle = True
            elif tok.text == ">":
                angle = False
            elif not angle and tok.text == ",":
                flush()
                continue
            elif not angle and tok.text == ":" and not in_group:
                name = _join(current, spaced=True)
                current.clear()
                out.append(Address(None, None, name, None))
                in_group = True
                continue
            elif not angle and tok.text == ";" and in_group:
                flush()
                out.append(Address(None, None, None, None))
                in_group = False
                continue
            elif tok.text == ";":
                continue
        current.append(tok)
    flush()
    if in_group:  # unterminated group: close it, or the list is not well formed
        out.append(Address(None, None, None, None))
    return tuple(out)


def envelope_from_fields(h: dict[bytes, str]) -> Envelope:
    """RFC 3501 §7.4.2 ENVELOPE from a message's first header values."""
    from_ = _addresses(h.get(b"from"))
    return Envelope(
        date=h.get(b"date"),
        subject=h.get(b"subject"),
        from_=from_,
        sender=_addresses(h.get(b"sender")) or from_,  # RFC 3501 §7.4.2 defaults
        reply_to=_addresses(h.get(b"reply-to")) or from_,
        to=_addresses(h.get(b"to")),
        cc=_addresses(h.get(b"cc")),
        bcc=_addresses(h.get(b"bcc")),
        in_reply_to=h.get(b"in-reply-to"),
        message_id=h.get(b"message-id"),
    )
