"""URLAUTH's INTERNAL mechanism (RFC 4467 §2.4.1, §5, §6): the token of a rump URL.

Owns: the token algorithm. A token is ``"01"`` (the algorithm's number, so a later one can
be told apart and both honoured for a while: RFC 4467 §2.4.1 SHOULD) followed by the hex
HMAC-SHA256 of the rump URL's octets, keyed with the user's mailbox access key
(store/urlauth.py): 66 hex digits, above the 32 the RFC asks for. Verification compares in
constant time, and a URL naming no known mailbox or user is checked against a random
"plausible" key, so that failing costs the same either way (RFC 4467 §6, §10). Keys and
tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

MECHANISM: Final = "INTERNAL"
_VERSION: Final = "01"
#: RFC 4467 §6: the key a token is checked against when the mailbox cannot be identified.
_PLAUSIBLE: Final = secrets.token_bytes(32)


def token(key: bytes, rump: str) -> str:
    """The INTERNAL token of ``rump`` (the URL text up to and with ``;URLAUTH=access``)."""
    digest = hmac.new(key, rump.encode("ascii"), hashlib.sha256).hexdigest()
    return _VERSION + digest


def verify(key: bytes | None, rump: str, given: str) -> bool:
    """Whether ``given`` is ``rump``'s token under ``key``; None (no such mailbox, user or
    key) computes one with a plausible key all the same and fails."""
    expected = token(key if key is not None else _PLAUSIBLE, rump)
    return hmac.compare_digest(expected, given.lower()) and key is not None
