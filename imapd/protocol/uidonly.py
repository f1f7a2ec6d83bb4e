"""UIDONLY (RFC 9586): which commands name messages by number. Pure, no I/O.

RFC 9586 §3: once UIDONLY is enabled "the client MUST NOT use message sequence numbers
(including the special marker "*") in any arguments to IMAP commands, and the server MUST
return a tagged BAD response if the client uses message sequence numbers. The server MUST
include the UIDREQUIRED response code in such BAD responses". The rows:

- §3.2: FETCH, STORE, SEARCH, COPY and MOVE (their non-UID forms) "are prohibited and MUST
  result in a tagged BAD response";
- §3.5: the ``<sequence set>`` UID SEARCH criterion is prohibited (``UID n:m`` is not);
- §3.7: the fourth SELECT QRESYNC parameter (message sequence match data);
- §3.8: other commands taking a sequence-set of message numbers: SORT, THREAD (their UID
  forms are allowed), and REPLACE (RFC 8508: ``REPLACE seq-number``).

``$`` (RFC 5182) names the saved result, kept as UIDs: it is no message number, so ``UID
FETCH $`` and a ``$`` search key stay allowed. Plain EXPUNGE takes no numbers and stays.
"""

from __future__ import annotations

from imapd.protocol import commands as c
from imapd.protocol.values import SearchKey, SequenceSet

#: The response code of the BAD (RFC 9586 §3).
UIDREQUIRED = "UIDREQUIRED"


def message_numbers(cmd: c.Command) -> str | None:
    """Why ``cmd`` uses message numbers (the text of the BAD), or None when it does not."""
    match cmd:
        case c.Fetch(uid=False) | c.Store(uid=False) | c.Search(uid=False):
            return f"{type(cmd).__name__.upper()} takes message numbers: use UID {_name(cmd)}"
        case c.Copy(uid=False, move=move):
            name = "MOVE" if move else "COPY"
            return f"{name} takes message numbers: use UID {name}"
        case c.Sort(uid=False) | c.Thread(uid=False) | c.Replace(uid=False):
            return f"{_name(cmd)} takes message numbers: use UID {_name(cmd)}"
        case c.Search(key=key) | c.Sort(key=key) | c.Thread(key=key) if _numbers_in(key):
            return "A sequence set search key names message numbers: use UID set"
        case c.Select(qresync=c.QResyncParams(seq_match=(_, _))):
            return "QRESYNC message sequence match data names message numbers"
        case _:
            return None


def _name(cmd: c.Command) -> str:
    return type(cmd).__name__.upper()


def _numbers_in(key: SearchKey) -> bool:
    """A ``sequence-set`` key (not ``$``) anywhere in the program; iterative, so a deep
    program costs no recursion (the parser bounds the depth anyway)."""
    stack = [key]
    while stack:
        k = stack.pop()
        if k.name == "SEQSET" and isinstance(k.value, SequenceSet) and not k.value.saved:
            return True
        stack.extend(k.children)
    return False
