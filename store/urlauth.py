"""URLAUTH mailbox access keys (RFC 4467 §2.2), the part both backends share.

Owns: what a key is: `KEY_OCTETS` random octets from `secrets` (at least 128 bits of
entropy, unpredictable, RFC 4467 §10), made by the store and never chosen by a client.
Keys are secrets: no module logs them, no Change carries them (a reset logs a
`store.changes.UrlKeysReset` naming only the user and the mailbox, RFC 4467 §7). The token
algorithm is imapd's (imapd/urlauth.py); the store only keeps one key per (user, mailbox).
"""

from __future__ import annotations

import secrets
from typing import Final

KEY_OCTETS: Final = 32


def new_key() -> bytes:
    return secrets.token_bytes(KEY_OCTETS)
