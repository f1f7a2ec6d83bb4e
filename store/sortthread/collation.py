"""The i;unicode-casemap collation (RFC 5051 §2), which RFC 5256 §7 requires for SORT and
THREAD: each string is mapped to a canonical key, and keys compare as octet strings.

The key: every code point replaced by its (simple) titlecase mapping, then the result fully
decomposed (Unicode canonical decomposition, NFD). Python compares `str` values by code
point, which orders exactly as their UTF-8 octets do, so the keys sort as RFC 5051 orders.
The titlecase mapping is the one-to-one (UnicodeData.txt) mapping: where Python's
`str.title` gives several code points (the SpecialCasing full mapping, e.g. for U+00DF), the
simple mapping is the code point itself.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache


@lru_cache(maxsize=4096)
def _title(ch: str) -> str:
    mapped = ch.title()
    return mapped if len(mapped) == 1 else ch


def casemap(text: str) -> str:
    """The i;unicode-casemap key of ``text``: equal keys mean equal strings under the
    collation, and key order is the collation's order."""
    if text.isascii():
        return text.upper()  # ASCII: titlecase is uppercase and NFD changes nothing
    return unicodedata.normalize("NFD", "".join(map(_title, text)))
