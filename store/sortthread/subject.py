"""Base subject extraction, exactly the procedure of RFC 5256 §2.1, and the "reply or
forward" test of its REFERENCES algorithm (§3: the extraction removed a subj-refwd, a
"(fwd)" subj-trailer, or a subj-fwd-hdr and subj-fwd-trl).

The ABNF of RFC 5256 §5 is matched case-insensitively (ABNF strings are), on the decoded
text (step 1 first turns encoded words into characters).
"""

from __future__ import annotations

import re
from typing import Final

from store.mime.headers import decode_words

_WSP: Final = " \t"
#: step 1: tabs and continuations (CR, LF) to space, then runs of spaces to one
_SPACES: Final = re.compile(r"[ \t\r\n]+")
#: subj-blob = "[" *BLOBCHAR "]" *WSP
_BLOB: Final = r"\[[^\[\]]*\][ \t]*"
#: subj-leader = (*subj-blob subj-refwd) / WSP, the subj-refwd alternative captured:
#: subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_LEADER: Final = re.compile(
    rf"(?:{_BLOB})*(?P<refwd>(?:re|fwd?)[ \t]*(?:{_BLOB})?:)|[ \t]", re.IGNORECASE
)
_BLOB_PREFIX: Final = re.compile(_BLOB)
_FWD_TRAILER: Final = "(fwd)"
_FWD_HDR: Final = "[fwd:"


def _strip_trailers(text: str) -> tuple[str, bool]:
    """Step 2: remove subj-trailer ("(fwd)" / WSP) from the end until none is left; True
    when a "(fwd)" went."""
    fwd = False
    while text:
        if text[-1] in _WSP:
            text = text[:-1]
        elif text[-5:].lower() == _FWD_TRAILER:
            text = text[:-5]
            fwd = True
        else:
            break
    return text, fwd


def _strip_leaders(text: str) -> tuple[str, bool]:
    """Steps 3 to 5: subj-leaders off the front, then a subj-blob when a non-empty subj-base
    is left behind it, until neither applies; True when a subj-refwd went."""
    refwd = False
    while True:
        start = text
        while (m := _LEADER.match(text)) is not None:  # (3)
            refwd = refwd or m.group("refwd") is not None
            text = text[m.end() :]
        m = _BLOB_PREFIX.match(text)  # (4): the rest starts with NONWSP after *WSP
        if m is not None and m.end() < len(text):
            text = text[m.end() :]
        if text == start:  # (5)
            return text, refwd


def base_subject(subject: str | None) -> tuple[str, bool]:
    """The base subject of a Subject header value (encoded words still encoded, as the
    envelope keeps it) and whether the extraction shows a reply or forward."""
    if not subject:
        return "", False
    text = _SPACES.sub(" ", decode_words(subject))  # (1)
    reply = False
    while True:
        text, fwd = _strip_trailers(text)  # (2)
        text, refwd = _strip_leaders(text)  # (3)-(5)
        reply = reply or fwd or refwd
        # (6) a whole "[fwd: ... ]": both ends go, and again from (2)
        if text[:5].lower() == _FWD_HDR and text.endswith("]"):
            text = text[5:-1]
            reply = True
            continue
        return text, reply  # (7)
