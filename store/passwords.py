"""Password hashing with hashlib scrypt, in a self-describing string.

Owns: the stored password format ``$scrypt$n=16384,r=8,p=1$<salt b64>$<hash b64>`` (unpadded
standard base64, as in PHC strings). Both functions are CPU-bound by design (tens of ms at
n=2**14): the store runs them in a worker thread (asyncio.to_thread) so they never block the
event loop. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

DEFAULT_N = 2**14  # RFC 7914 §2 suggests 2**14 for interactive logins (~16 MiB of memory)
_R = 8
_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # hashlib refuses more than maxmem (32 MiB by default); scrypt needs 128 * n * r * p.
    maxmem = 128 * n * r * p + 2**20
    # The octets the client sent: IMAP hands over a password's undecodable octets (and
    # Python argv the CLI's) surrogate-escaped; the same bytes as UTF-8 for any other text.
    return hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=maxmem,
        dklen=dklen,
    )


def hash_password(password: str, *, n: int = DEFAULT_N) -> str:
    """A new salted hash of ``password``; ``n`` must be a power of two > 1."""
    if n < 2 or n & (n - 1):
        raise ValueError("scrypt n must be a power of two greater than 1")
    salt = os.urandom(_SALT_BYTES)
    key = _scrypt(password, salt, n, _R, _P, _KEY_BYTES)
    return f"$scrypt$n={n},r={_R},p={_P}${_b64(salt)}${_b64(key)}"


def dummy_hash(*, n: int = DEFAULT_N) -> str:
    """A well-formed hash that no password matches (a random key, not derived from any
    password): verifying against it costs exactly what verifying a real hash of the same
    parameters costs. Authentication runs it for unknown users, so that a wrong user name
    takes the same work and time as a wrong password (user names are not separable by
    timing). Making it hashes nothing."""
    if n < 2 or n & (n - 1):
        raise ValueError("scrypt n must be a power of two greater than 1")
    salt, key = os.urandom(_SALT_BYTES), os.urandom(_KEY_BYTES)
    return f"$scrypt$n={n},r={_R},p={_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; a malformed ``stored`` never matches.
    The comparison is constant-time (hmac.compare_digest)."""
    try:
        _, scheme, params, salt_text, key_text = stored.split("$")
        if scheme != "scrypt":
            return False
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        salt, expected = _unb64(salt_text), _unb64(key_text)
    except (ValueError, KeyError, binascii.Error):
        return False
    if n < 2 or n & (n - 1) or n > 2**20 or not 0 < r <= 32 or not 0 < p <= 16 or not expected:
        return False
    actual = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


def parameters(stored: str) -> str | None:
    """The ``n=..,r=..,p=..`` part of a stored hash (to decide on rehashing), or None."""
    parts = stored.split("$")
    return parts[2] if len(parts) == 5 and parts[1] == "scrypt" else None
