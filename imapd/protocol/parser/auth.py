"""The grammar of the commands that set a connection up: AUTHENTICATE, LOGIN, ID, ENABLE,
COMPRESS.

Owns: AUTHENTICATE with SASL-IR (RFC 4959) and `decode_base64`, which the connection also uses
for SASL continuation lines; LOGIN (RFC 3501 §6.2.3); ID (RFC 2971); ENABLE (RFC 5161);
COMPRESS (RFC 4978). Their handlers are in imapd/commands/auth.py and compress.py.
Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import binascii
import re

from imapd.protocol import commands as cmd
from imapd.protocol.parser.primitives import (
    NIL,
    Cursor,
    astring,
    atom,
    nstring,
    string,
    utf8_text,
)
from imapd.protocol.values import Secret

_BASE64 = re.compile(rb"[A-Za-z0-9+/=]+")


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
    user = utf8_text(c, astring(c), "user name")
    c.sp()
    password = astring(c).decode("utf-8", "surrogateescape")
    return cmd.Login(t, user, Secret(password))


def id_(c: Cursor, t: str) -> cmd.Id:
    """id = "ID" SP id-params-list  ; RFC 2971 §4
    id-params-list = "(" *(string SP nstring) ")" / nil"""
    c.sp()
    if c.match(NIL):
        return cmd.Id(t, None)
    c.char(b"(", '"(" or NIL')
    params: list[tuple[str, str | None]] = []
    first = True
    while not c.try_char(b")"):
        if not first:
            c.sp()
        first = False
        c.count_arg()
        key = utf8_text(c, string(c), "ID field")
        c.sp()
        raw = nstring(c)
        params.append((key, None if raw is None else utf8_text(c, raw, "ID value")))
    return cmd.Id(t, tuple(params))


def enable(c: Cursor, t: str) -> cmd.Enable:
    """enable = "ENABLE" 1*(SP capability)  ; RFC 5161 §4
    capability = atom"""
    caps: list[str] = []
    while not caps or not c.at_end():
        c.count_arg()
        c.sp()
        caps.append(atom(c).upper())
    return cmd.Enable(t, tuple(dict.fromkeys(caps)))


def compress(c: Cursor, t: str) -> cmd.Compress:
    """compress = "COMPRESS" SP algorithm  ; RFC 4978 §5
    algorithm = "DEFLATE"  ; an unknown algorithm is BAD (§3)"""
    c.sp()
    start = c.pos
    if atom(c).upper() != "DEFLATE":
        c.pos = start
        raise c.error("DEFLATE")
    return cmd.Compress(t)
